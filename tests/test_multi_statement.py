"""Statements the extended protocol cannot carry with parameters — several statements in one
string, more than 65,535 parameters — run as stock Django runs them (psycopg's
ClientCursor: client-side literals, simple protocol): same rows, rowcount, errors and
transaction effects."""
import psycopg
import pytest
from django_rustpg import dbapi


@pytest.fixture
def stock(pg_conninfo):
    with psycopg.connect(pg_conninfo, autocommit=True, cursor_factory=psycopg.ClientCursor) as c:
        yield c


def outcome(cur, sql, params=None):
    """What a caller sees after execute(): result or error class, rowcount, description names."""
    try:
        cur.execute(sql, params)
    except psycopg.Error as e:
        return ("error", type(e).__name__)
    names = [d[0] for d in cur.description] if cur.description else None
    rows = cur.fetchall() if cur.description else None
    return (rows, cur.rowcount, names)


CASES = [
    ("CREATE TEMP TABLE ms (a int, b text); INSERT INTO ms VALUES (%s, %s), (%s, %s); SELECT a, b FROM ms ORDER BY a",
     [1, "x", 2, "it's"]),
    ("SELECT %s::int AS one, %s AS s; SELECT 2", [1, "two"]),
    ("SELECT %(a)s::numeric; SELECT %(b)s::text[]", {"a": 1.5, "b": ["a", None, "c d"]}),
    ("VALUES (%s::date, %s::bool); SELECT 1", ["2020-01-02", True]),
]


@pytest.mark.parametrize("sql,params", CASES)
def test_multi_statement_with_params_as_stock(conn, stock, sql, params):
    assert outcome(conn.cursor(), sql, params) == outcome(stock.cursor(), sql, params)


def test_temp_table_insert_select_then_read(conn, stock):
    sql = "CREATE TEMP TABLE ms2 (a int); INSERT INTO ms2 VALUES (%s), (%s); SELECT a FROM ms2"
    for c in (conn, stock):
        c.cursor().execute(sql, [1, 2])
    assert outcome(conn.cursor(), "SELECT a FROM ms2 ORDER BY a") == outcome(stock.cursor(), "SELECT a FROM ms2 ORDER BY a")
    assert outcome(conn.cursor(), "SELECT a FROM ms2 ORDER BY a")[0] == [(1,), (2,)]


def test_update_rowcount_is_the_first_statements(conn, stock):
    setup = "CREATE TEMP TABLE ms3 AS SELECT g AS a FROM generate_series(1, 5) g"
    sql = "UPDATE ms3 SET a = a + %s WHERE a > %s; UPDATE ms3 SET a = a"
    got = []
    for c in (conn, stock):
        c.cursor().execute(setup)
        got.append(outcome(c.cursor(), sql, [10, 2]))
    assert got[0] == got[1] and got[0][1] == 3


def test_error_rolls_back_the_whole_string(conn, stock):
    sql = "CREATE TEMP TABLE ms4 (a int); INSERT INTO ms4 VALUES (%s); SELECT 1 / %s"
    assert outcome(conn.cursor(), sql, [7, 0]) == outcome(stock.cursor(), sql, [7, 0]) == ("error", "DivisionByZero")
    # One implicit transaction: the table and the insert are gone too.
    assert outcome(conn.cursor(), "SELECT to_regclass('pg_temp.ms4')::text")[0] == [(None,)]


def test_inside_a_transaction_rollback_undoes_it(dsn_params):
    c = dbapi.connect(**dsn_params)  # autocommit off, as inside atomic()
    try:
        cur = c.cursor()
        cur.execute("CREATE TEMP TABLE ms5 (a int) ON COMMIT PRESERVE ROWS")
        c.commit()
        cur.execute("INSERT INTO ms5 VALUES (%s); INSERT INTO ms5 VALUES (%s)", [1, 2])
        c.rollback()
        cur.execute("SELECT count(*) FROM ms5")
        assert cur.fetchone() == (0,)
    finally:
        c.close()


def test_more_parameters_than_the_protocol_carries(conn, stock):
    ids = list(range(1, 70_001))
    sql = "SELECT count(*), max(g) FROM generate_series(1, 100000) g WHERE g IN (" + ", ".join(["%s"] * len(ids)) + ")"
    assert outcome(conn.cursor(), sql, ids) == outcome(stock.cursor(), sql, ids) == ([(70000, 70000)], 1, ["count", "max"])


def test_values_are_literals_not_sql(conn):
    evil = "x'); DROP TABLE ms6; --"
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE ms6 (s text); INSERT INTO ms6 VALUES (%s)", [evil])
    cur.execute("SELECT s FROM ms6")
    assert cur.fetchall() == [(evil,)]


MULTI_HANG_CHILD = r"""
import sys
from django_rustpg import dbapi
conn = dbapi.connect(**eval(sys.argv[1]))
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT id, mood, repeat('x', 50) FROM ms_moods ORDER BY id; SELECT 1")
rows = cur.fetchall()
assert rows[0] == (1, "sad", "x" * 50) and rows[-1][0] == 50000, rows[-1]
print("rows", len(rows))
"""


def test_first_result_with_a_type_the_session_has_not_loaded(pg, run_child):
    """A fresh session's multi-statement read of 50k rows with an enum column: the type is
    looked up after the response, not behind its rows (that hung the session)."""
    pg.execute("DROP TABLE IF EXISTS ms_moods")
    pg.execute("DROP TYPE IF EXISTS ms_mood")
    pg.execute("CREATE TYPE ms_mood AS ENUM ('sad', 'ok')")
    pg.execute("CREATE TABLE ms_moods (id int, mood ms_mood)")
    try:
        pg.execute("INSERT INTO ms_moods SELECT n, 'sad' FROM generate_series(1, 50000) n")
        assert run_child(MULTI_HANG_CHILD) == ["rows", "50000"]
    finally:
        pg.execute("DROP TABLE ms_moods")
        pg.execute("DROP TYPE ms_mood")
