"""The PEP 249 module that ``DatabaseWrapper.Database`` points at.

The connection and cursor are native (``_native``). Exceptions are psycopg's own classes,
so code that catches ``psycopg.errors.UniqueViolation`` or reads ``e.diag.sqlstate`` keeps
working; psycopg itself never opens a connection here.
"""

import atexit
import threading

from psycopg import (  # noqa: F401  (re-exported PEP 249 names)
    DataError,
    DatabaseError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
    errors,
)

from . import _native
from ._native import Connection, ConnectionInfo, Cursor, close_all_pools, close_idle_sessions, close_pool, mogrify

# At interpreter exit the pooled sessions end with a Terminate, as psycopg's connections do
# when they are closed: else each socket just drops, and the server counts the session as
# abandoned (pg_stat_database.sessions_abandoned) and may log a reset connection.
atexit.register(close_idle_sessions, 1.0)


_POOL_TIMEOUT_LOCK = threading.Lock()


def __getattr__(name):
    # PoolTimeout is made on first use, not at import: code written for psycopg_pool
    # catches its PoolTimeout, so ours subclasses it when psycopg_pool is installed, but
    # importing psycopg_pool (15 modules) for every process that never times out costs
    # start-up time and heap (every full collection walks it).
    if name == "PoolTimeout":
        with _POOL_TIMEOUT_LOCK:  # one class, however many threads time out at once
            if "PoolTimeout" not in globals():
                try:
                    from psycopg_pool import PoolTimeout as base
                except ImportError:
                    base = OperationalError
                globals()["PoolTimeout"] = type("PoolTimeout", (base,), {
                    "__doc__": "No pooled connection became free within the pool's ``timeout``.",
                    "__module__": __name__,
                })
        return globals()["PoolTimeout"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

apilevel = "2.0"
threadsafety = 2
paramstyle = "pyformat"

# Django parses this with split(" ")[0] and checks psycopg 3 semantics (>= 3.1.8): the
# driver implements that interface, so it reports the psycopg API level it provides.
__version__ = f"3.2.0 (django_rustpg {_native.__version__})"


def connect(**params):
    """Check a connection out of this process's pool for ``params``.

    Keywords: dbname, user, password, host (TCP host or socket directory), port, sslmode,
    sslrootcert, application_name, options, connect_timeout, timezone, autocommit,
    isolation_level, cursor_factory, pool (True/False or a dict of min_size, max_size,
    timeout, max_lifetime, max_idle) and reset_on_return ("auto" or "always").
    ``prepare_threshold`` (psycopg's meaning; Django sends None unless OPTIONS sets it):
    None runs every statement unnamed (PgBouncer transaction mode works); N prepares a
    statement on a session once it ran N times there. ``context`` is accepted and ignored.
    """
    params.pop("context", None)
    return _native.connect(**params)


def Binary(value):
    """Wrap binary data for a bytea parameter."""
    return bytes(value)


STRING = "STRING"
BINARY = "BINARY"
NUMBER = "NUMBER"
DATETIME = "DATETIME"
ROWID = "ROWID"
