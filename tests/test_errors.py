"""PEP 249 exceptions and SQLSTATE mapping (driver contract §2).

Exceptions are psycopg's own classes: `isinstance(e, psycopg.errors.UniqueViolation)`,
`e.diag.sqlstate` and `e.diag.message_primary` work as with psycopg, and the messages
are formatted as libpq formats them.
"""
import threading
import time
import uuid

import psycopg
import psycopg.errors as pe
import pytest

from django_rustpg import dbapi


def run(conn, query, params=None):
    cur = conn.cursor()
    try:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else None
    finally:
        cur.close()


@pytest.fixture
def table(conn):
    """A fresh scratch table name, dropped afterwards."""
    name = f"t_err_{uuid.uuid4().hex[:10]}"
    yield name
    conn.rollback()
    conn.autocommit = True
    run(conn, f"DROP TABLE IF EXISTS {name}_child")
    run(conn, f"DROP TABLE IF EXISTS {name}")


# ---------------------------------------------------------------- the module's classes


def test_pep249_exception_classes_are_psycopgs():
    names = [
        "Warning",
        "Error",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ]
    for name in names:
        assert getattr(dbapi, name) is getattr(psycopg, name), name
    assert issubclass(dbapi.Warning, Exception) and issubclass(dbapi.Error, Exception)
    assert issubclass(dbapi.InterfaceError, dbapi.Error)
    assert issubclass(dbapi.DatabaseError, dbapi.Error)
    for name in names[4:]:
        assert issubclass(getattr(dbapi, name), dbapi.DatabaseError), name
    assert dbapi.errors is pe
    assert (dbapi.apilevel, dbapi.threadsafety, dbapi.paramstyle) == ("2.0", 2, "pyformat")
    # Django parses __version__ with split(" ")[0] and wants psycopg >= 3.1.8 semantics.
    major, minor, *_ = (int(x) for x in dbapi.__version__.split(" ")[0].split("."))
    assert (major, minor) >= (3, 1)


# ---------------------------------------------------------------- SQLSTATE → class


def test_unique_violation(conn, pg, table):
    run(conn, f"CREATE TABLE {table} (id int PRIMARY KEY)")
    run(conn, f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(dbapi.IntegrityError) as ours:
        run(conn, f"INSERT INTO {table} VALUES (%s)", [1])
    e = ours.value
    assert type(e) is pe.UniqueViolation and isinstance(e, pe.UniqueViolation)
    assert e.diag.sqlstate == e.sqlstate == "23505"
    assert e.diag.message_primary == f'duplicate key value violates unique constraint "{table}_pkey"'
    assert e.diag.message_detail == "Key (id)=(1) already exists."
    assert e.diag.constraint_name == f"{table}_pkey"
    assert e.diag.table_name == table
    assert e.diag.schema_name == "public"
    # Same text as psycopg's (which is libpq's).
    with pytest.raises(pe.UniqueViolation) as theirs:
        pg.execute(f"INSERT INTO {table} VALUES (%s)", [1])
    assert str(e) == str(theirs.value)
    assert e.args == theirs.value.args


def test_foreign_key_violation(conn, table):
    run(conn, f"CREATE TABLE {table} (id int PRIMARY KEY)")
    run(conn, f"CREATE TABLE {table}_child (p int REFERENCES {table})")
    with pytest.raises(pe.ForeignKeyViolation) as e:
        run(conn, f"INSERT INTO {table}_child VALUES (%s)", [5])
    assert isinstance(e.value, dbapi.IntegrityError)
    assert e.value.diag.sqlstate == "23503"
    assert "is not present in table" in e.value.diag.message_detail


def test_not_null_violation(conn, table):
    run(conn, f"CREATE TABLE {table} (id int NOT NULL)")
    with pytest.raises(pe.NotNullViolation) as e:
        run(conn, f"INSERT INTO {table} VALUES (%s)", [None])
    assert isinstance(e.value, dbapi.IntegrityError)
    assert (e.value.diag.sqlstate, e.value.diag.column_name) == ("23502", "id")


def test_check_violation(conn, table):
    run(conn, f"CREATE TABLE {table} (id int CONSTRAINT positive CHECK (id > 0))")
    with pytest.raises(pe.CheckViolation) as e:
        run(conn, f"INSERT INTO {table} VALUES (%s)", [-1])
    assert isinstance(e.value, dbapi.IntegrityError)
    assert (e.value.diag.sqlstate, e.value.diag.constraint_name) == ("23514", "positive")


def test_division_by_zero_is_a_data_error(conn):
    with pytest.raises(dbapi.DataError) as e:
        run(conn, "SELECT 1 / %s", [0])
    assert type(e.value) is pe.DivisionByZero
    assert (e.value.diag.sqlstate, e.value.diag.message_primary) == ("22012", "division by zero")


def test_bad_input_is_a_data_error(conn):
    with pytest.raises(pe.InvalidTextRepresentation) as e:
        run(conn, "SELECT %s::int", ["x"])
    assert isinstance(e.value, dbapi.DataError)
    with pytest.raises(pe.NumericValueOutOfRange):
        run(conn, "SELECT %s::int2", [70000])


def test_syntax_error_is_a_programming_error(conn, pg):
    query = "SELECT 1,\n  2 FRM x"
    with pytest.raises(dbapi.ProgrammingError) as e:
        run(conn, query)
    assert type(e.value) is pe.SyntaxError
    assert e.value.diag.sqlstate == "42601"
    with pytest.raises(pe.SyntaxError) as theirs:
        pg.execute(query)
    assert e.value.diag.statement_position == theirs.value.diag.statement_position == "19"
    # libpq's "LINE 2: ..." pointer, with the caret under the error.
    assert str(e.value) == str(theirs.value)
    assert "LINE 2:   2 FRM x\n" in str(e.value)


def test_undefined_table_and_column(conn, pg):
    with pytest.raises(pe.UndefinedTable) as e:
        run(conn, "SELECT * FROM no_such_table_xyz WHERE 1 = %s", [1])
    assert isinstance(e.value, dbapi.ProgrammingError)
    assert e.value.diag.sqlstate == "42P01"
    with pytest.raises(pe.UndefinedTable) as theirs:
        pg.execute("SELECT * FROM no_such_table_xyz WHERE 1 = %s", [1])
    assert str(e.value) == str(theirs.value)
    with pytest.raises(pe.UndefinedColumn):
        run(conn, "SELECT no_such_column")


def test_raise_exception_with_detail_hint_context(conn, pg):
    query = "DO $$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'd', HINT = 'h', ERRCODE = 'P0001'; END $$"
    with pytest.raises(pe.RaiseException) as e:
        run(conn, query)
    with pytest.raises(pe.RaiseException) as theirs:
        pg.execute(query)
    assert str(e.value) == str(theirs.value)
    d, t = e.value.diag, theirs.value.diag
    for attr in ["sqlstate", "severity", "severity_nonlocalized", "message_primary", "message_detail", "message_hint", "context"]:
        assert getattr(d, attr) == getattr(t, attr), attr


def test_custom_sqlstate_maps_to_its_class(conn):
    with pytest.raises(pe.DuplicateDatabase):  # creation.py checks for exactly this class
        run(conn, "DO $$ BEGIN RAISE EXCEPTION 'dup' USING ERRCODE = '42P04'; END $$")
    with pytest.raises(dbapi.DatabaseError) as e:  # unknown code in a known class
        run(conn, "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '22ZZZ'; END $$")
    assert isinstance(e.value, dbapi.DataError) and e.value.diag.sqlstate == "22ZZZ"


def test_serialization_failure(conn, pg, table):
    run(conn, f"CREATE TABLE {table} (id int PRIMARY KEY, v int)")
    run(conn, f"INSERT INTO {table} VALUES (1, 0)")
    conn.autocommit = False
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    run(conn, f"SELECT v FROM {table}")  # the snapshot is taken
    pg.execute(f"UPDATE {table} SET v = 1 WHERE id = 1")  # committed (autocommit)
    with pytest.raises(dbapi.OperationalError) as e:
        run(conn, f"UPDATE {table} SET v = 2 WHERE id = %s", [1])
    assert type(e.value) is pe.SerializationFailure and e.value.diag.sqlstate == "40001"
    conn.rollback()


def test_deadlock_detected(conn, pg_conninfo, table):
    run(conn, f"CREATE TABLE {table} (id int PRIMARY KEY)")
    run(conn, f"INSERT INTO {table} VALUES (1), (2)")
    other = psycopg.connect(pg_conninfo)
    try:
        # Only our session runs the deadlock check soon, so it is the one aborted.
        other.execute("SET deadlock_timeout = '10s'")
        other_pid = other.info.backend_pid
        other.execute(f"UPDATE {table} SET id = id WHERE id = 2")
        conn.autocommit = False
        run(conn, "SET LOCAL deadlock_timeout = '50ms'")
        run(conn, f"UPDATE {table} SET id = id WHERE id = 1")
        blocked = threading.Thread(target=lambda: other.execute(f"UPDATE {table} SET id = id WHERE id = 1"))
        blocked.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until the other session waits on our lock
            waiting = run(
                conn, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'", [other_pid]
            )[0][0]
            if waiting:
                break
            time.sleep(0.02)
        with pytest.raises(dbapi.OperationalError) as e:
            run(conn, f"UPDATE {table} SET id = id WHERE id = %s", [2])
        assert type(e.value) is pe.DeadlockDetected and e.value.diag.sqlstate == "40P01"
        assert e.value.diag.message_primary == "deadlock detected"
        conn.rollback()
        blocked.join(10)
        other.commit()
    finally:
        other.close()


def test_statement_timeout_is_query_canceled(conn):
    run(conn, "SET statement_timeout = 100")
    with pytest.raises(dbapi.OperationalError) as e:
        run(conn, "SELECT pg_sleep(%s)", [3])
    assert type(e.value) is pe.QueryCanceled
    assert e.value.diag.sqlstate == "57014"
    assert "statement timeout" in e.value.diag.message_primary
    run(conn, "RESET statement_timeout")
    assert run(conn, "SELECT 1") == [(1,)]


def test_in_failed_sql_transaction(conn):
    conn.autocommit = False
    with pytest.raises(pe.DivisionByZero):
        run(conn, "SELECT 1/0")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    with pytest.raises(dbapi.InternalError) as e:
        run(conn, "SELECT 1")
    assert type(e.value) is pe.InFailedSqlTransaction and e.value.diag.sqlstate == "25P02"
    conn.rollback()
    assert run(conn, "SELECT 1") == [(1,)]
    conn.rollback()


# ---------------------------------------------------------------- client-side errors


def test_closed_cursor_is_an_interface_error(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.close()
    assert cur.closed
    for op in [
        lambda: cur.execute("SELECT 1"),
        lambda: cur.executemany("SELECT %s", [[1]]),
        cur.fetchone,
        cur.fetchall,
        lambda: cur.fetchmany(2),
        lambda: next(iter(cur)),
    ]:
        with pytest.raises(dbapi.InterfaceError, match="cursor is closed"):
            op()
    cur.close()  # closing twice is fine


def test_closed_connection_raises_what_psycopg_raises(dsn_params):
    c = dbapi.connect(**dsn_params)
    cur = c.cursor()
    c.close()
    assert c.closed
    for op in [
        lambda: cur.execute("SELECT 1"),
        c.cursor,
        c.commit,
        c.rollback,
        lambda: c.info.backend_pid,
        lambda: c.info.parameter_status("TimeZone"),
        lambda: setattr(c, "autocommit", True),
    ]:
        with pytest.raises(dbapi.OperationalError, match="the connection is closed"):
            op()
    c.cancel()  # a no-op, as with psycopg
    c.close()  # closing twice is fine


def test_fetch_without_result_is_a_programming_error(conn):
    cur = conn.cursor()
    with pytest.raises(dbapi.ProgrammingError):
        cur.fetchone()
    cur.execute("SET application_name = 'x'")
    with pytest.raises(dbapi.ProgrammingError, match="didn't produce a result"):
        cur.fetchall()


def test_nul_in_str_is_a_data_error_with_psycopgs_message(conn, pg):
    run(conn, "CREATE EXTENSION IF NOT EXISTS hstore")
    conn.register_hstore(run(conn, "SELECT 'hstore'::regtype::oid")[0][0])
    with pytest.raises(dbapi.DataError) as theirs:
        pg.execute("SELECT %s", ["a\x00b"])
    message = str(theirs.value)
    assert message == "PostgreSQL text fields cannot contain NUL (0x00) bytes"
    for value in ["a\x00b", ["ok", "a\x00"], {"k": "\x00"}]:
        with pytest.raises(dbapi.DataError) as ours:
            run(conn, "SELECT 1 WHERE %s IS NOT NULL", [value])
        assert str(ours.value).startswith(message), str(ours.value)
    # json.dumps writes NUL as the escape \u0000, which the server refuses (as with psycopg).
    with pytest.raises(pe.UntranslatableCharacter):
        run(conn, "SELECT %s", [psycopg.types.json.Jsonb("\x00")])
    # bytes may hold NUL: only text can't.
    assert run(conn, "SELECT %s", [b"a\x00b"]) == [(b"a\x00b",)]
    assert run(conn, "SELECT 1") == [(1,)]


@pytest.mark.parametrize("bad", [object(), {1, 2}, complex(1, 2), (lambda: 0)], ids=["object", "set", "complex", "function"])
def test_unsupported_type_names_position_and_type(conn, bad):
    with pytest.raises(dbapi.ProgrammingError) as e:
        run(conn, "SELECT %s, %s, %s", [1, "two", bad])
    msg = str(e.value)
    assert type(bad).__qualname__ in msg and "#3" in msg, msg
    with pytest.raises(dbapi.ProgrammingError, match=type(bad).__qualname__):
        run(conn, "SELECT %(x)s", {"x": bad})
    with pytest.raises(dbapi.ProgrammingError, match=type(bad).__qualname__):
        run(conn, "SELECT %s", [[1, bad]])


def test_million_element_list_parameter(conn):
    values = list(range(1_000_000))
    assert run(conn, "SELECT cardinality(%s::int[]), (%s::int[])[1000000]", [values, values]) == [(1_000_000, 999_999)]
    texts = ["x"] * 1_000_000
    assert run(conn, "SELECT count(*) FROM unnest(%s::text[])", [texts]) == [(1_000_000,)]


def test_connect_errors(dsn_params):
    with pytest.raises(dbapi.ProgrammingError, match='invalid connection option "bogus"'):
        dbapi.connect(**dsn_params, bogus=1)
    with pytest.raises(dbapi.NotSupportedError, match="latin1"):
        dbapi.connect(**dsn_params, client_encoding="latin1")
    with pytest.raises(dbapi.OperationalError, match="sslmode"):
        dbapi.connect(**dsn_params, sslmode="bogus")
    with pytest.raises(dbapi.OperationalError):
        dbapi.connect(**{**dsn_params, "host": "127.0.0.1", "port": 1})
    with pytest.raises(dbapi.OperationalError, match="nope_role"):
        dbapi.connect(**{**dsn_params, "user": "nope_role"})


def test_connect_to_missing_database_is_an_operational_error(dsn_params):
    with pytest.raises(dbapi.OperationalError, match="does not exist"):
        dbapi.connect(**{**dsn_params, "dbname": "no_such_database_xyz"})


# ---------------------------------------------------------------- the server going away


def test_server_terminates_connection_mid_transaction(dsn_params, pg, table):
    setup = dbapi.connect(**dsn_params)
    setup.autocommit = True
    run(setup, f"CREATE TABLE {table} (id int)")
    setup.close()
    c = dbapi.connect(**dsn_params)
    try:
        run(c, f"INSERT INTO {table} VALUES (%s)", [1])
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        pid = c.info.backend_pid
        assert pg.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        deadline = time.monotonic() + 5
        while pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(dbapi.OperationalError):
            run(c, f"INSERT INTO {table} VALUES (%s)", [2])
        with pytest.raises(dbapi.OperationalError):
            c.commit()
    finally:
        c.close()
    assert pg.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)  # nothing committed
    # The pool drops the dead session: the next connect() works.
    again = dbapi.connect(**dsn_params)
    try:
        assert run(again, "SELECT 1") == [(1,)]
        assert again.info.backend_pid != pid
    finally:
        again.close()
    pg.execute(f"DROP TABLE {table}")


def test_cancel_from_another_thread(dsn_params):
    c = dbapi.connect(**dsn_params)
    c.autocommit = True
    try:
        pid = c.info.backend_pid
        timer = threading.Timer(0.3, c.cancel)
        started = time.monotonic()
        timer.start()
        with pytest.raises(pe.QueryCanceled) as e:
            run(c, "SELECT pg_sleep(5)")
        elapsed = time.monotonic() - started
        timer.join()
        assert isinstance(e.value, dbapi.OperationalError)
        assert e.value.diag.message_primary == "canceling statement due to user request"
        assert elapsed < 4.5, "cancel() did not interrupt pg_sleep(5)"
        # The session survives a cancel.
        assert run(c, "SELECT pg_backend_pid()") == [(pid,)]
    finally:
        c.close()


def test_cancel_when_idle_leaves_the_session_usable(conn):
    pid = conn.info.backend_pid
    conn.cancel()
    # A cancel request travels on its own connection and lands as a signal: the statement
    # sent right after it may still be the one canceled (libpq has the same race). What
    # must hold is that the same session carries on.
    for _ in range(100):
        try:
            assert run(conn, "SELECT pg_backend_pid()") == [(pid,)]
            break
        except pe.QueryCanceled:
            time.sleep(0.01)
    else:
        pytest.fail("the session stayed unusable after cancel()")
