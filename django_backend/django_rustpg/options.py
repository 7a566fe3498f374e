"""OPTIONS validation and the mapping from Django's settings to driver keywords."""

from django.core.exceptions import ImproperlyConfigured

from . import _native, dbapi

# Keys with Django's meaning (see Django's PostgreSQL notes) plus libpq keywords the
# driver understands.
_LIBPQ_KEYS = {
    "sslmode": str,
    "sslrootcert": str,
    "application_name": str,
    "options": str,
    "connect_timeout": (int, str),
    "client_encoding": str,
    "target_session_attrs": str,
    "load_balance_hosts": str,
    "hostaddr": str,
    "keepalives": (int, str),
    "keepalives_idle": (int, str),
}
_DJANGO_KEYS = {
    "pool": (bool, dict),
    "isolation_level": int,
    "assume_role": str,
    "server_side_binding": bool,
    "prepare_threshold": (int, type(None)),
    "service": str,
    "cursor_factory": type,
}
# Our own.
_OWN_KEYS = {
    "materialize": bool,
    "reset_on_return": str,
}
_ALL = {**_LIBPQ_KEYS, **_DJANGO_KEYS, **_OWN_KEYS}
_POOL_KEYS = {"min_size": int, "max_size": int, "timeout": (int, float), "max_lifetime": (int, float), "max_idle": (int, float), "check": object}
DEFAULT_POOL_MAX_SIZE = 20
# libpq keywords whose values the driver checks (src/connect_params.rs), asked here already so
# a bad value is an ImproperlyConfigured when the settings are read.
_CHECKED_VALUES = ("sslmode", "target_session_attrs", "load_balance_hosts", "keepalives", "keepalives_idle")


def _type_names(types):
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def validate_options(options, settings_dict):
    for key, value in options.items():
        expected = _ALL.get(key)
        if expected is None:
            raise ImproperlyConfigured(
                f"Unknown OPTIONS key {key!r} for the django_rustpg backend. "
                f"Known keys: {', '.join(sorted(_ALL))}."
            )
        if isinstance(value, bool) and expected is int:
            ok = False
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise ImproperlyConfigured(
                f"OPTIONS[{key!r}] must be {_type_names(expected)}, "
                f"not {type(value).__name__} ({value!r})."
            )
    for key in _CHECKED_VALUES:
        if key in options:
            try:
                _native.check_connect_value(key, str(options[key]))
            except dbapi.ProgrammingError as e:
                raise ImproperlyConfigured(f"OPTIONS[{key!r}]: {e}") from None
    if options.get("reset_on_return", "auto") not in ("auto", "always"):
        raise ImproperlyConfigured("OPTIONS['reset_on_return'] must be 'auto' or 'always'.")
    pool = options.get("pool")
    if isinstance(pool, dict):
        for key, value in pool.items():
            expected = _POOL_KEYS.get(key)
            if expected is None:
                raise ImproperlyConfigured(
                    f"Unknown OPTIONS['pool'] key {key!r}. Known keys: {', '.join(sorted(_POOL_KEYS))}."
                )
            if key == "check":
                # Django's meaning: a callable run on each checkout (overrides CONN_HEALTH_CHECKS).
                if value is not None and not callable(value):
                    raise ImproperlyConfigured(
                        f"OPTIONS['pool']['check'] must be a callable taking the connection, or None, not {value!r}."
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, expected):
                raise ImproperlyConfigured(
                    f"OPTIONS['pool'][{key!r}] must be {_type_names(expected)}, not {value!r}."
                )
        _check_pool_values(pool)
    level = options.get("isolation_level")
    if level is not None and level not in (1, 2, 3, 4):
        raise ImproperlyConfigured(
            f"Invalid transaction isolation level {level} specified. Use one of the "
            "psycopg.IsolationLevel values. (OPTIONS['isolation_level'])"
        )
    if pool and settings_dict.get("CONN_MAX_AGE", 0) != 0:
        raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
    factory = options.get("cursor_factory")
    if factory is not None:
        from ._native import Cursor

        if not issubclass(factory, Cursor):
            raise ImproperlyConfigured(
                "OPTIONS['cursor_factory'] must be a subclass of django_rustpg.dbapi.Cursor "
                f"(psycopg cursor classes cannot drive this backend), not {factory!r}."
            )


def _check_pool_values(pool):
    min_size = pool.get("min_size", 0)
    max_size = pool.get("max_size", DEFAULT_POOL_MAX_SIZE)
    if min_size < 0:
        raise ImproperlyConfigured(f"OPTIONS['pool']['min_size'] must be 0 or more, not {min_size!r}.")
    if max_size < 1:
        raise ImproperlyConfigured(f"OPTIONS['pool']['max_size'] must be at least 1, not {max_size!r}.")
    if min_size > max_size:
        raise ImproperlyConfigured(
            f"OPTIONS['pool']['min_size'] ({min_size}) must not exceed OPTIONS['pool']['max_size'] ({max_size})."
        )
    for key in ("timeout", "max_lifetime", "max_idle"):
        value = pool.get(key)
        if value is not None and not value > 0:
            raise ImproperlyConfigured(f"OPTIONS['pool'][{key!r}] must be a positive number of seconds, not {value!r}.")


def driver_params(params, options, timezone_name):
    """Django's psycopg connect() keywords → the driver's."""
    params = dict(params)
    if "cursor_factory" not in options:
        params.pop("cursor_factory", None)  # Django's default is a psycopg class
    for key in ("context", "server_side_binding", "materialize"):
        params.pop(key, None)
    if timezone_name:
        # Set at session start, so Django's TimeZone check needs no query and a reused
        # pooled session returns to it on reset.
        params["timezone"] = timezone_name
    pool = options.get("pool")
    if isinstance(pool, dict):
        # "check" runs in the backend on checkout (base.DatabaseWrapper), not in the driver.
        params["pool"] = {k: v for k, v in pool.items() if k != "check"}
    elif pool is False:
        params["pool"] = False
    return params
