"""OPTIONS validation, DATABASE_URL helpers, and the ENGINE used end to end without libpq."""

import copy
import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections, transaction
from django.db.utils import ConnectionHandler
from django.test.utils import CaptureQueriesContext

from django_rustpg.base import DatabaseWrapper


def wrapper(**options):
    settings = copy.deepcopy(connection.settings_dict)
    settings["OPTIONS"] = options
    return DatabaseWrapper(settings, alias="probe")


@pytest.mark.parametrize(
    "options,needle",
    [
        ({"poool": True}, "'poool'"),
        ({"materialize": "yes"}, "OPTIONS['materialize'] must be bool"),
        ({"pool": {"max_size": "10"}}, "OPTIONS['pool']['max_size']"),
        ({"pool": {"maxsize": 10}}, "'maxsize'"),
        ({"sslmode": "sometimes"}, "OPTIONS['sslmode']"),
        ({"isolation_level": True}, "OPTIONS['isolation_level']"),
        ({"reset_on_return": "never"}, "reset_on_return"),
        ({"cursor_factory": dict}, "cursor_factory"),
    ],
)
def test_bad_options_name_the_key(options, needle):
    with pytest.raises(ImproperlyConfigured) as exc:
        wrapper(**options).get_connection_params()
    assert needle in str(exc.value)


def test_pool_with_persistent_connections_is_refused():
    w = wrapper(pool=True)
    w.settings_dict["CONN_MAX_AGE"] = 60
    with pytest.raises(ImproperlyConfigured, match="persistent"):
        w.get_connection_params()


def test_good_options_reach_the_driver():
    params = wrapper(pool={"max_size": 3, "timeout": 2}, application_name="probe").get_connection_params()
    assert params["pool"] == {"max_size": 3, "timeout": 2}
    assert params["application_name"] == "probe"
    assert "context" not in params and "cursor_factory" not in params


def test_prepare_threshold_reaches_the_driver():
    assert wrapper().get_connection_params()["prepare_threshold"] is None  # Django's default
    config = copy.deepcopy(connection.settings_dict)
    config["OPTIONS"] = {"prepare_threshold": 2}
    w = ConnectionHandler({"default": config})["default"]
    try:
        with w.cursor() as cursor:
            for _ in range(3):
                cursor.execute("SELECT %s::int + 1", [1])
            cursor.execute(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["SELECT $1::int + 1%"]
            )
            assert cursor.fetchall() == [("SELECT $1::int + 1",)]
    finally:
        w.close()


def test_dj_database_url_with_the_engine_mapping():
    if os.environ.get("CI"):
        import dj_database_url  # the Makefile installs it: under CI this test must run
    else:
        dj_database_url = pytest.importorskip("dj_database_url")
    s = connection.settings_dict
    host = s["HOST"] or "127.0.0.1"
    url = f"postgres://{s['USER']}@{host if not host.startswith('/') else ''}:{s['PORT'] or 5432}/{s['NAME']}"
    config = dj_database_url.parse(url, engine="django_rustpg")
    if host.startswith("/"):
        config["HOST"] = host
    assert config["ENGINE"] == "django_rustpg"
    handler = ConnectionHandler({"default": config})
    conn = handler["default"]
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone()[0] == s["NAME"]
    finally:
        conn.close()


def test_engine_end_to_end_without_libpq():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE probe (id serial PRIMARY KEY, name text)")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO probe (name) VALUES (%s), (%s)", ["a", "b"])
    with CaptureQueriesContext(connection) as ctx:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM probe WHERE name = %s", ["b"])
            assert cursor.fetchall() == [("b",)]
    assert ctx.captured_queries[-1]["sql"] == "SELECT name FROM probe WHERE name = 'b'"
    assert connection.vendor == "postgresql"


def test_hstore_and_citext_registration_via_contrib_postgres():
    with connection.cursor() as cursor:
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS hstore")
            cursor.execute("CREATE EXTENSION IF NOT EXISTS citext")
        except Exception as exc:  # pgserver builds ship no contrib; .ci/run installs it
            if os.environ.get("CI"):
                raise
            pytest.skip(f"hstore/citext extension unavailable: {exc}")
    connections.close_all()
    from django.contrib.postgres.signals import get_citext_oids, get_hstore_oids

    get_hstore_oids.cache_clear()
    get_citext_oids.cache_clear()
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::hstore, ARRAY['A','b']::citext[]", [{"a": "1", "b": None}])
        assert cursor.fetchone() == ({"a": "1", "b": None}, ["A", "b"])
        # contrib.postgres told the driver the hstore OID: dicts go out as hstore.
        cursor.execute("SELECT pg_typeof(%s)::text", [{"k": "v"}])
        assert cursor.fetchone()[0] == "hstore"


# --------------------------------------------------------------------------- OPTIONS["pool"]["check"]
def _pooled(check=..., health_checks=False):
    config = copy.deepcopy(connection.settings_dict)
    config["OPTIONS"] = {"pool": {"max_size": 2, "timeout": 2} if check is ... else {"max_size": 2, "timeout": 2, "check": check}}
    config["CONN_HEALTH_CHECKS"] = health_checks
    return ConnectionHandler({"default": config})["default"]


def test_pool_check_must_be_callable():
    with pytest.raises(ImproperlyConfigured, match=r"OPTIONS\['pool'\]\['check'\]"):
        wrapper(pool={"check": "yes"}).get_connection_params()


@pytest.mark.parametrize("health_checks", [False, True])
def test_pool_check_as_django(health_checks):
    """Django's meaning: the pool's check is OPTIONS["pool"]["check"] if given, else a
    connection check when CONN_HEALTH_CHECKS is on, else none."""
    from django_rustpg.base import check_connection

    def custom(conn):
        pass

    assert _pooled(custom, health_checks).pool._check is custom
    assert _pooled(None, health_checks).pool._check is None
    assert _pooled(health_checks=health_checks).pool._check is (check_connection if health_checks else None)
    assert "check" not in _pooled(custom).get_connection_params()["pool"]  # not a driver key


def test_pool_check_runs_on_each_checkout():
    seen = []
    w = _pooled(lambda conn: seen.append(conn))
    try:
        for _ in range(2):
            with w.cursor() as cursor:
                cursor.execute("SELECT 1")
            w.close()
        assert len(seen) == 2 and all(c is not None for c in seen)
    finally:
        w.close()


def test_failing_pool_check_takes_another_session():
    from django_rustpg import dbapi

    calls = []

    def flaky(conn):
        calls.append(conn)
        if len(calls) == 1:
            raise dbapi.OperationalError("session failed the check")

    w = _pooled(flaky)
    try:
        with w.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
        assert len(calls) == 2
    finally:
        w.close()


def test_pool_check_that_always_fails_times_out():
    from django.db import OperationalError

    def broken(conn):
        raise ValueError("never healthy")

    w = _pooled(broken)
    w.settings_dict["OPTIONS"]["pool"]["timeout"] = 0.3
    with pytest.raises(OperationalError, match="check"):
        w.ensure_connection()


def test_default_health_check_is_a_round_trip():
    w = _pooled(health_checks=True)
    try:
        with w.cursor() as cursor:
            cursor.execute("SELECT 2")
            assert cursor.fetchone() == (2,)
    finally:
        w.close()
