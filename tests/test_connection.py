"""The connection (driver contract §3): transactions, info, pool hygiene, context managers."""
import gc
import time
import uuid

import psycopg
import pytest
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus

from django_rustpg import dbapi

IDLE, INTRANS, INERROR, UNKNOWN = (
    TransactionStatus.IDLE,
    TransactionStatus.INTRANS,
    TransactionStatus.INERROR,
    TransactionStatus.UNKNOWN,
)


def run(conn, query, params=None):
    cur = conn.cursor()
    try:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else None
    finally:
        cur.close()


def scalar(conn, query, params=None):
    return run(conn, query, params)[0][0]


@pytest.fixture
def table(pg):
    name = f"t_conn_{uuid.uuid4().hex[:10]}"
    pg.execute(f"CREATE TABLE {name} (id int PRIMARY KEY)")
    yield name
    pg.execute(f"DROP TABLE IF EXISTS {name}")


def count(pg, table):
    return pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def single_pool(dsn_params, **extra):
    """Parameters for a private pool of one session: the next connect() gets the same one."""
    return {**dsn_params, "application_name": f"single-{uuid.uuid4().hex[:8]}", "pool": {"max_size": 1, "timeout": 5}, **extra}


# ---------------------------------------------------------------- autocommit and transactions


def test_autocommit_off_by_default_and_first_statement_opens_a_transaction(dsn_params, pg, table):
    c = dbapi.connect(**dsn_params)
    try:
        assert c.autocommit is False
        assert c.info.transaction_status == IDLE
        run(c, f"INSERT INTO {table} VALUES (%s)", [1])
        assert c.info.transaction_status == INTRANS
        # The server agrees: the session sits in an open transaction, invisible to others.
        state = pg.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [c.info.backend_pid]).fetchone()[0]
        assert state == "idle in transaction"
        assert count(pg, table) == 0
        # One transaction across statements.
        xid = scalar(c, "SELECT txid_current()")
        assert scalar(c, "SELECT txid_current()") == xid
        c.commit()
        assert c.info.transaction_status == IDLE
        assert count(pg, table) == 1
        run(c, f"INSERT INTO {table} VALUES (%s)", [2])
        c.rollback()
        assert c.info.transaction_status == IDLE
        assert count(pg, table) == 1
        # commit/rollback with nothing open are no-ops.
        c.commit()
        c.rollback()
        assert c.info.transaction_status == IDLE
    finally:
        c.close()


def test_autocommit_on(conn, pg, table):
    assert conn.autocommit is True
    run(conn, f"INSERT INTO {table} VALUES (1)")
    assert conn.info.transaction_status == IDLE
    assert count(pg, table) == 1
    # An explicit BEGIN is followed.
    run(conn, "BEGIN")
    assert conn.info.transaction_status == INTRANS
    run(conn, f"INSERT INTO {table} VALUES (2)")
    assert count(pg, table) == 1
    run(conn, "COMMIT")
    assert conn.info.transaction_status == IDLE
    assert count(pg, table) == 2


def test_autocommit_cannot_change_inside_a_transaction(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        run(c, "SELECT 1")
        with pytest.raises(dbapi.ProgrammingError, match="autocommit"):
            c.autocommit = True
        c.rollback()
        c.autocommit = True
        assert c.autocommit is True
        run(c, "SELECT 1")
        assert c.info.transaction_status == IDLE
    finally:
        c.close()


def test_connect_autocommit_keyword(dsn_params):
    c = dbapi.connect(**dsn_params, autocommit=True)
    try:
        assert c.autocommit is True
        run(c, "SELECT 1")
        assert c.info.transaction_status == IDLE
    finally:
        c.close()


def test_error_puts_transaction_in_error_state(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        with pytest.raises(psycopg.errors.DivisionByZero):
            run(c, "SELECT 1/0")
        assert c.info.transaction_status == INERROR
        c.rollback()
        assert c.info.transaction_status == IDLE
        assert scalar(c, "SELECT 1") == 1
        # An error as the very first statement (pipelined behind BEGIN) too.
        c.rollback()
        with pytest.raises(psycopg.errors.UndefinedTable):
            run(c, "SELECT * FROM no_such_table_xyz")
        assert c.info.transaction_status == INERROR
        c.rollback()
    finally:
        c.close()


def test_savepoints(dsn_params, pg, table):
    c = dbapi.connect(**dsn_params)
    try:
        run(c, f"INSERT INTO {table} VALUES (1)")
        run(c, "SAVEPOINT s1")
        run(c, f"INSERT INTO {table} VALUES (2)")
        run(c, "ROLLBACK TO SAVEPOINT s1")
        assert c.info.transaction_status == INTRANS
        run(c, "SAVEPOINT s2")
        run(c, f"INSERT INTO {table} VALUES (3)")
        run(c, "RELEASE SAVEPOINT s2")
        assert c.info.transaction_status == INTRANS
        c.commit()
        assert pg.execute(f"SELECT id FROM {table} ORDER BY id").fetchall() == [(1,), (3,)]
    finally:
        c.close()


def test_savepoint_rollback_recovers_from_an_error(dsn_params, pg, table):
    # Django's atomic(): an IntegrityError inside a savepoint, ROLLBACK TO, carry on.
    c = dbapi.connect(**dsn_params)
    try:
        run(c, f"INSERT INTO {table} VALUES (1)")
        run(c, "SAVEPOINT s1")
        with pytest.raises(psycopg.errors.UniqueViolation):
            run(c, f"INSERT INTO {table} VALUES (1)")
        run(c, "ROLLBACK TO SAVEPOINT s1")
        run(c, f"INSERT INTO {table} VALUES (2)")
        c.commit()
        assert pg.execute(f"SELECT id FROM {table} ORDER BY id").fetchall() == [(1,), (2,)]
    finally:
        c.close()


def test_transaction_status_after_rollback_to_savepoint(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        run(c, "SAVEPOINT s1")
        with pytest.raises(psycopg.errors.DivisionByZero):
            run(c, "SELECT 1/0")
        assert c.info.transaction_status == INERROR
        run(c, "ROLLBACK TO SAVEPOINT s1")
        # The server is back in a usable transaction block.
        assert c.info.transaction_status == INTRANS
    finally:
        c.close()


def test_isolation_level(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        assert c.isolation_level is None
        assert scalar(c, "SHOW transaction_isolation") == "read committed"
        c.rollback()
        for level, name in [
            (IsolationLevel.SERIALIZABLE, "serializable"),
            (IsolationLevel.REPEATABLE_READ, "repeatable read"),
            (IsolationLevel.READ_UNCOMMITTED, "read uncommitted"),
            (IsolationLevel.READ_COMMITTED, "read committed"),
        ]:
            c.isolation_level = level
            assert c.isolation_level == level and isinstance(c.isolation_level, IsolationLevel)
            assert scalar(c, "SHOW transaction_isolation") == name
            with pytest.raises(dbapi.ProgrammingError):
                c.isolation_level = IsolationLevel.SERIALIZABLE  # not inside a transaction
            c.rollback()
        c.isolation_level = None
        assert c.isolation_level is None
        with pytest.raises(dbapi.ProgrammingError):
            c.isolation_level = 9
    finally:
        c.close()
    c = dbapi.connect(**dsn_params, isolation_level=IsolationLevel.REPEATABLE_READ)
    try:
        assert c.isolation_level == IsolationLevel.REPEATABLE_READ
        assert scalar(c, "SHOW transaction_isolation") == "repeatable read"
    finally:
        c.close()


def test_read_only_and_deferrable(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        c.read_only = True
        c.isolation_level = IsolationLevel.SERIALIZABLE
        c.deferrable = True
        assert scalar(c, "SHOW transaction_read_only") == "on"
        assert scalar(c, "SHOW transaction_deferrable") == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            run(c, "CREATE TEMP TABLE ro (x int)")
        c.rollback()
    finally:
        c.close()


# ---------------------------------------------------------------- info


def test_info(conn, pg):
    info = conn.info
    assert isinstance(info.server_version, int)
    assert info.server_version == pg.info.server_version
    assert info.server_version >= 100000
    assert isinstance(info.backend_pid, int)
    assert info.backend_pid == scalar(conn, "SELECT pg_backend_pid()")
    assert info.encoding == "utf-8"
    assert info.transaction_status == IDLE
    assert info.parameter_status("server_encoding") == "UTF8"
    assert info.parameter_status("no_such_parameter") is None
    assert info.dbname == pg.info.dbname


def test_parameter_status_follows_set_time_zone(conn):
    run(conn, "SET TIME ZONE 'America/New_York'")
    assert conn.info.parameter_status("TimeZone") == "America/New_York"
    run(conn, "SELECT set_config('TimeZone', 'Asia/Tokyo', false)")
    assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo"
    run(conn, "BEGIN")
    run(conn, "SET LOCAL TIME ZONE 'Europe/Paris'")
    assert conn.info.parameter_status("TimeZone") == "Europe/Paris"
    run(conn, "ROLLBACK")
    assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo"
    run(conn, "SET application_name = 'rustpg-test'")
    assert conn.info.parameter_status("application_name") == "rustpg-test"


def test_closed_connection_state(dsn_params):
    c = dbapi.connect(**dsn_params)
    assert c.closed is False
    c.close()
    assert c.closed is True
    assert c.info.transaction_status == UNKNOWN


# ---------------------------------------------------------------- the pool


def test_close_returns_the_session_to_the_pool(dsn_params):
    params = single_pool(dsn_params)
    c = dbapi.connect(**params)
    pid = c.info.backend_pid
    status = c.pool_status()
    assert (status["max_size"], status["size"], status["available"]) == (1, 1, 0)
    c.close()
    assert c.pool_status()["available"] == 1
    again = dbapi.connect(**params)
    try:
        assert again.info.backend_pid == pid  # the same server session, reused
    finally:
        again.close()


LEAKS = [
    # (statement, probe whose answer must not change for the next user of the session)
    ("SET search_path TO pg_catalog", "SELECT current_setting('search_path')"),
    ("SELECT set_config('search_path', 'pg_catalog', false)", "SELECT current_setting('search_path')"),
    ("SET TIME ZONE 'Asia/Tokyo'", "SELECT current_setting('TimeZone')"),
    ("/* comment */ SET application_name = 'leaky'", "SELECT current_setting('application_name')"),
    ("SET SESSION statement_timeout = 1234", "SELECT current_setting('statement_timeout')"),
    ("SET ROLE pg_monitor", "SELECT current_user"),
    ("SELECT * FROM (SELECT set_config('work_mem', '7MB', false)) s", "SELECT current_setting('work_mem')"),
    ("EXPLAIN ANALYZE SELECT set_config('work_mem', '9MB', false)", "SELECT current_setting('work_mem')"),
    ("CREATE TEMP TABLE leak_t (x int)", "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
    ("CREATE TEMPORARY SEQUENCE leak_s", "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
    ("CREATE TEMP TABLE leak_ta AS SELECT 1 AS x", "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
    ("SELECT 1 AS x INTO TEMP leak_i", "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
    ("select 1 as x into temporary leak_j", "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
    ("WITH w AS (SELECT 1 AS x) SELECT * INTO TEMP TABLE leak_w FROM w", "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
    ("CREATE TABLE pg_temp.leak_p (x int)", "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
    ("CREATE OR REPLACE TEMP VIEW leak_v AS SELECT 1", "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
    (
        "CREATE FUNCTION pg_temp.leak_f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname LIKE 'pg_temp%%'",
    ),
    ("SELECT pg_advisory_lock(4242)", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"),
    ("LISTEN leak_channel", "SELECT count(*) FROM pg_listening_channels()"),
    ("DECLARE leak_c CURSOR WITH HOLD FOR SELECT 1", "SELECT count(*) FROM pg_cursors"),
    ("DO $$ BEGIN PERFORM set_config('work_mem', '5MB', false); END $$", "SELECT current_setting('work_mem')"),
    (
        "PREPARE leak_prepared AS SELECT 1",
        "SELECT count(*) FROM pg_prepared_statements WHERE name = 'leak_prepared'",
    ),
]



@pytest.mark.parametrize(
    "statement,probe",
    LEAKS,
    ids=[s.split(" AS ")[0][:40] for s, _ in LEAKS],
)
def test_session_state_does_not_leak_to_the_next_pool_user(dsn_params, statement, probe):
    params = single_pool(dsn_params, autocommit=True)
    c = dbapi.connect(**params)
    before = run(c, probe)
    pid = c.info.backend_pid
    run(c, statement)
    c.close()
    c = dbapi.connect(**params)
    try:
        if statement.startswith("PREPARE"):
            # Sessions that touched prepared statements are closed, never reused.
            assert c.info.backend_pid != pid
        else:
            assert c.info.backend_pid == pid, "not the same session: the test proves nothing"
        assert run(c, probe) == before, statement
    finally:
        c.close()


def test_session_state_set_inside_a_committed_transaction_does_not_leak(dsn_params):
    params = single_pool(dsn_params)
    c = dbapi.connect(**params)
    pid = c.info.backend_pid
    run(c, "SET search_path TO pg_catalog")
    run(c, "CREATE TEMP TABLE leak_tx (x int)")
    c.commit()
    c.close()
    c = dbapi.connect(**params)
    try:
        assert c.info.backend_pid == pid
        assert scalar(c, "SELECT current_setting('search_path')") == '"$user", public'
        assert scalar(c, "SELECT count(*) FROM pg_class WHERE relname = 'leak_tx'") == 0
    finally:
        c.rollback()
        c.close()


def test_open_transaction_is_rolled_back_on_close(dsn_params, pg, table):
    params = single_pool(dsn_params)
    c = dbapi.connect(**params)
    pid = c.info.backend_pid
    run(c, f"INSERT INTO {table} VALUES (1)")
    assert c.info.transaction_status == INTRANS
    c.close()
    assert count(pg, table) == 0
    state = pg.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert state in (None, ("idle",))  # back in the pool idle (or gone), not idle in transaction
    c = dbapi.connect(**params)
    try:
        assert c.info.transaction_status == IDLE
        run(c, f"INSERT INTO {table} VALUES (2)")
        c.commit()
    finally:
        c.close()
    assert count(pg, table) == 1


def test_failed_transaction_is_rolled_back_on_close(dsn_params):
    params = single_pool(dsn_params)
    c = dbapi.connect(**params)
    with pytest.raises(psycopg.errors.DivisionByZero):
        run(c, "SELECT 1/0")
    c.close()
    c = dbapi.connect(**params)
    try:
        assert scalar(c, "SELECT 1") == 1
    finally:
        c.close()


def test_dropped_without_close_never_reuses_a_session_in_a_transaction(dsn_params, pg, table):
    # transaction.py:305 relies on cleanup when the connection object goes away.
    params = single_pool(dsn_params)
    c = dbapi.connect(**params)
    run(c, f"INSERT INTO {table} VALUES (1)")
    del c
    gc.collect()
    c = dbapi.connect(**params)
    try:
        assert c.info.transaction_status == IDLE
        assert scalar(c, "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' AND application_name = current_setting('application_name')") == 0
    finally:
        c.close()
    assert count(pg, table) == 0


def test_pool_checkout_timeout_names_the_size(dsn_params):
    params = {**dsn_params, "application_name": f"tiny-{uuid.uuid4().hex[:8]}", "pool": {"max_size": 1, "timeout": 0.5}}
    first = dbapi.connect(**params)
    try:
        started = time.monotonic()
        with pytest.raises(dbapi.OperationalError) as e:
            dbapi.connect(**params)
        assert time.monotonic() - started >= 0.4  # it did wait for a free session
        assert "max_size=1" in str(e.value), str(e.value)
    finally:
        first.close()
    second = dbapi.connect(**params)  # free again
    second.close()


def test_pool_false_closes_the_session(dsn_params, pg):
    c = dbapi.connect(**dsn_params, pool=False)
    pid = c.info.backend_pid
    assert scalar(c, "SELECT 1") == 1
    c.close()
    deadline = time.monotonic() + 2
    while pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
        assert time.monotonic() < deadline, "pool=False: the server session outlived close()"
        time.sleep(0.02)


def test_pool_false_session_ends_once_the_driver_runs_again(dsn_params, pg):
    c = dbapi.connect(**dsn_params, pool=False)
    pid = c.info.backend_pid
    c.close()
    other = dbapi.connect(**dsn_params)
    try:
        deadline = time.monotonic() + 5
        while pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "pool=False: the server session was never closed"
            scalar(other, "SELECT 1")
            time.sleep(0.02)
    finally:
        other.close()


def test_invalid_pool_options(dsn_params):
    with pytest.raises(dbapi.ProgrammingError, match="unknown pool option"):
        dbapi.connect(**dsn_params, pool={"bogus": 1})
    with pytest.raises(dbapi.ProgrammingError, match="max_size"):
        dbapi.connect(**dsn_params, pool={"max_size": 0})


# ---------------------------------------------------------------- cursor_factory, context managers


def test_cursor_factory_callable(conn):
    made = []

    def factory(connection):
        made.append(connection)
        return ("custom cursor", connection)

    conn.cursor_factory = factory
    assert conn.cursor_factory is factory
    assert conn.cursor() == ("custom cursor", conn)
    assert made == [conn]
    conn.cursor_factory = None
    assert not isinstance(conn.cursor(), tuple)


def test_cursor_factory_at_connect(dsn_params):
    c = dbapi.connect(**dsn_params, cursor_factory=lambda connection: "made")
    try:
        assert c.cursor() == "made"
        # Named (server-side) cursors do not go through the factory.
        assert c.cursor("named").name == "named"
    finally:
        c.close()


def test_cursor_factory_subclass_wrapping(conn):
    # django-prometheus: conn.cursor_factory = ExportingCursorWrapper(conn.cursor_factory, ...),
    # i.e. a subclass of whatever class the connection reports, instantiated with (conn).
    base = conn.cursor_factory
    assert isinstance(base, type)
    calls = []

    class Counting(base):
        def execute(self, query, params=None, **kw):
            calls.append(query)
            return super().execute(query, params, **kw)

    conn.cursor_factory = Counting
    cur = conn.cursor()
    assert isinstance(cur, Counting)
    cur.execute("SELECT %s", [1])
    assert cur.fetchone() == (1,)
    assert calls == ["SELECT %s"]


def test_connection_context_manager_commits_or_rolls_back(dsn_params, pg, table):
    with dbapi.connect(**dsn_params) as c:
        run(c, f"INSERT INTO {table} VALUES (1)")
    assert c.closed
    assert count(pg, table) == 1
    with pytest.raises(RuntimeError):
        with dbapi.connect(**dsn_params) as c:
            run(c, f"INSERT INTO {table} VALUES (2)")
            raise RuntimeError("boom")
    assert c.closed
    assert count(pg, table) == 1


def test_cursor_context_manager(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    assert cur.closed
    with pytest.raises(dbapi.InterfaceError):
        cur.execute("SELECT 1")
    # execute() returns the cursor, so chained calls work as with psycopg.
    with conn.cursor() as cur:
        assert cur.execute("SELECT 2").fetchone() == (2,)


def test_notifies_yields_psycopg_notify_and_honours_timeout_and_stop_after(conn, pg):
    import time

    import psycopg

    cur = conn.cursor()
    cur.execute("LISTEN rustpg_chan")
    pg.execute("NOTIFY rustpg_chan, 'one'")
    pg.execute("NOTIFY rustpg_chan, 'two'")
    got = list(conn.notifies(timeout=2, stop_after=2))
    assert [(n.channel, n.payload) for n in got] == [("rustpg_chan", "one"), ("rustpg_chan", "two")]
    assert all(isinstance(n, psycopg.Notify) and n.pid == pg.info.backend_pid for n in got)
    started = time.monotonic()
    assert list(conn.notifies(timeout=0.3)) == []
    assert 0.25 < time.monotonic() - started < 2


def test_pool_timeout_subclasses_psycopg_pools_without_importing_it_up_front(run_child):
    """dbapi.PoolTimeout is made on first use: importing the driver loads no psycopg_pool
    (15 modules the heap and every full collection would carry), yet code catching
    psycopg_pool.PoolTimeout still catches ours, and there is one class."""
    out = run_child(
        "import sys, threading\n"
        "from django_rustpg import dbapi\n"
        "print('psycopg_pool' in sys.modules)\n"
        "seen = []\n"
        "threads = [threading.Thread(target=lambda: seen.append(dbapi.PoolTimeout)) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "import psycopg_pool\n"
        "print(len(set(seen)), seen[0] is dbapi.PoolTimeout, issubclass(dbapi.PoolTimeout, psycopg_pool.PoolTimeout),\n"
        "      issubclass(dbapi.PoolTimeout, dbapi.OperationalError), dbapi.PoolTimeout.__module__)\n"
    )
    assert out == ["False", "1", "True", "True", "True", "django_rustpg.dbapi"]


def test_pool_timeout_is_an_operational_error_without_psycopg_pool(run_child):
    out = run_child(
        "import sys\n"
        "sys.modules['psycopg_pool'] = None  # as if not installed\n"
        "from django_rustpg import dbapi\n"
        "print(dbapi.PoolTimeout.__bases__ == (dbapi.OperationalError,))\n"
    )
    assert out == ["True"]
