"""DatabaseWrapper for ENGINE "django_rustpg": Django's PostgreSQL backend on the Rust driver.

Only what touches the driver is overridden; everything else (SQL generation, features,
introspection queries) is Django's own postgresql backend.
"""

import atexit
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as pg_base
from django.db.backends.postgresql.psycopg_any import IsolationLevel
from django.db.backends.base.base import NO_DB_ALIAS
from django.utils.asyncio import async_unsafe
from psycopg.pq import TransactionStatus

from . import _threads, bulk_update, dbapi, materialize
from .client import DatabaseClient
from .creation import DatabaseCreation
from .features import DatabaseFeatures
from .introspection import DatabaseIntrospection
from .operations import DatabaseOperations
from .options import driver_params, validate_options
from .schema import DatabaseSchemaEditor
from .validation import DatabaseValidation


class DatabaseWrapper(pg_base.DatabaseWrapper):
    Database = dbapi
    SchemaEditorClass = DatabaseSchemaEditor
    client_class = DatabaseClient
    creation_class = DatabaseCreation
    features_class = DatabaseFeatures
    introspection_class = DatabaseIntrospection
    ops_class = DatabaseOperations
    validation_class = DatabaseValidation
    # materialize: the plan hook for the next unnamed cursor (see create_cursor), or False.
    _rustpg_plan_hook = None

    @property
    def pool(self):
        """The driver's pool for this alias when OPTIONS["pool"] is set, else None.

        Connections are always pooled by the driver (per process, keyed by connection
        parameters); OPTIONS["pool"] sizes that pool. Django's psycopg_pool path is never
        taken: get_new_connection, _close and init_connection_state are overridden.
        """
        options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not options:
            return None
        if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
            raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
        return DriverPool(self)

    def close_pool(self):
        pool = self.pool
        if pool is not None:
            pool.close()

    def init_connection_state(self):
        if not hasattr(pg_base.DatabaseWrapper, "_configure_connection"):
            # Django < 5.1 has no pool option and configures every connection itself.
            return super().init_connection_state()
        # Django skips time zone and role setup when self.pool is set (psycopg_pool's
        # configure callback does it there); the driver's pool needs it done here.
        super(pg_base.DatabaseWrapper, self).init_connection_state()
        if self.connection is not None:
            commit = self._configure_connection(self.connection)
            if commit and not self.get_autocommit():
                self.connection.commit()

    def _close(self):
        if self.connection is not None:
            with self.wrap_database_errors:
                return self.connection.close()

    def get_connection_params(self):
        options = self.settings_dict["OPTIONS"]
        validate_options(options, self.settings_dict)
        params = super().get_connection_params()
        params = driver_params(params, options, self.timezone_name)
        if self.settings_dict.get("CONN_HEALTH_CHECKS") and not options.get("pool"):
            # (an explicit pool runs its check in _checked_connection instead)
            # A reused pooled session is proven with a round trip at checkout.
            params["health_check"] = True
        return params

    @async_unsafe
    def get_new_connection(self, conn_params):
        options = self.settings_dict["OPTIONS"]
        isolation_level = options.get("isolation_level")
        if isolation_level is None:
            self.isolation_level = IsolationLevel.READ_COMMITTED
        else:
            try:
                self.isolation_level = IsolationLevel(isolation_level)
            except ValueError:
                raise ImproperlyConfigured(
                    f"Invalid transaction isolation level {isolation_level} "
                    f"specified. Use one of the psycopg.IsolationLevel values."
                )
        _threads.close_orphans()
        connection = self._checked_connection(conn_params)
        _threads.track(self, connection)
        if isolation_level is not None:
            connection.isolation_level = self.isolation_level
        self._apply_timestamptz_zone(connection)
        return connection

    def _checked_connection(self, conn_params):
        """A session from the driver's pool that passed the pool's check, as psycopg_pool's
        getconn() does for Django: a session failing it is closed (the driver discards a
        broken one) and another is taken, until the pool's checkout timeout."""
        pool = self.pool
        check = pool._check if pool is not None else None
        if check is None:
            return self.Database.connect(**conn_params)
        pool_options = conn_params.get("pool")
        timeout = pool_options.get("timeout", 30) if isinstance(pool_options, dict) else 30
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            connection = self.Database.connect(**conn_params)
            try:
                check(connection)
            except Exception as exc:
                connection.close()
                if time.monotonic() + delay > deadline:
                    raise dbapi.PoolTimeout(
                        f"couldn't get a connection passing OPTIONS['pool']['check'] after {timeout} s"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except BaseException:
                connection.close()
                raise
            else:
                return connection

    def _apply_timestamptz_zone(self, connection):
        # Django loads timestamptz in the session time zone, then gives it
        # self.timezone (or strips it when USE_TZ is False).
        tz = self.timezone
        connection.set_timestamptz_tzinfo(tz, naive=tz is None)
        self._rustpg_tz = tz

    @async_unsafe
    def create_cursor(self, name=None):
        if name:
            cursor = self.connection.cursor(
                name, scrollable=False, withhold=self.connection.autocommit
            )
        else:
            cursor = self.connection.cursor()
            # Set by materialize around one execute_sql (a hook, or False: fetched by plan,
            # no tuples built early). Every cursor made meanwhile gets it, not only the
            # first: connecting can make cursors of its own before the statement's.
            if self._rustpg_plan_hook is not None:
                cursor.set_plan_hook(self._rustpg_plan_hook or None)
        if getattr(self, "_rustpg_tz", None) is not self.timezone:
            self._apply_timestamptz_zone(self.connection)
        return cursor

    def close_if_health_check_failed(self):
        return super(pg_base.DatabaseWrapper, self).close_if_health_check_failed()

    @property
    def rustpg_materialize(self):
        return self.settings_dict["OPTIONS"].get("materialize", True)


materialize.install()
bulk_update.install()




def check_connection(connection):
    """psycopg_pool's ``ConnectionPool.check_connection`` for driver sessions: one round
    trip, outside any transaction; raises when the session is not usable."""
    autocommit = connection.autocommit
    if not autocommit:
        connection.autocommit = True
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    finally:
        if not autocommit:
            try:
                connection.autocommit = False
            except Exception:
                pass  # keep the check's own exception


class DriverPool:
    """What ``DatabaseWrapper.pool`` returns: a handle on the driver's pool for an alias."""

    def __init__(self, wrapper):
        self._wrapper = wrapper
        # Django's meaning (as its psycopg_pool setup): OPTIONS["pool"]["check"] if given,
        # else a round trip on checkout when CONN_HEALTH_CHECKS is on, else none.
        options = wrapper.settings_dict["OPTIONS"].get("pool")
        if isinstance(options, dict) and "check" in options:
            self._check = options["check"]
        elif wrapper.settings_dict.get("CONN_HEALTH_CHECKS"):
            self._check = check_connection
        else:
            self._check = None

    def _params(self):
        return self._wrapper.get_connection_params()

    def open(self, *args, **kwargs):
        pass

    def close(self):
        dbapi.close_pool(**self._params())

    def get_stats(self):
        conn = dbapi.connect(**self._params())
        try:
            return conn.pool_status()
        finally:
            conn.close()


def _return_idle_connections_at_exit():
    """At exit, this thread's idle connections go back to the pool, whose sessions the
    driver's own exit hook (registered first, so run after this) then ends with a
    Terminate. One inside a transaction is left for the server to roll back, as stock's
    would be: closing it here would wait on a ROLLBACK."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        native = conn.connection if isinstance(conn, DatabaseWrapper) else None
        if native is None or conn.in_atomic_block:
            continue
        try:
            if native.info.transaction_status == TransactionStatus.IDLE:
                conn.close()
        except Exception:  # noqa: BLE001 - best effort at exit, as a finalizer's close is
            pass


atexit.register(_return_idle_connections_at_exit)
