"""prepare_threshold: named prepared statements per session (src/prepared.rs)."""
import pytest

from django_rustpg import dbapi
import psycopg.errors


def connect(dsn_params, threshold, **kw):
    c = dbapi.connect(**dsn_params, prepare_threshold=threshold, pool=False, **kw)
    c.autocommit = True
    return c


def prepared(cur):
    cur.execute(
        "SELECT statement FROM pg_prepared_statements WHERE NOT from_sql"
        " AND statement NOT LIKE '%%pg_prepared_statements%%' ORDER BY statement"
    )
    return [r[0] for r in cur.fetchall()]


SQL = "SELECT relname FROM pg_class WHERE oid = %s"


def test_none_never_prepares(dsn_params):
    c = connect(dsn_params, None)
    cur = c.cursor()
    for _ in range(5):
        cur.execute(SQL, [1259])
        assert cur.fetchall() == [("pg_class",)]
    assert prepared(cur) == []
    c.close()


def test_a_statement_is_prepared_after_threshold_runs(dsn_params):
    c = connect(dsn_params, 2)
    cur = c.cursor()
    for i in range(2):
        cur.execute(SQL, [1259])
        assert prepared(cur) == [], i
    for _ in range(3):  # the third run prepares it, later runs reuse it
        cur.execute(SQL, [1259])
        assert cur.fetchall() == [("pg_class",)]
        assert cur.description[0].name == "relname"
    assert prepared(cur) == ["SELECT relname FROM pg_class WHERE oid = $1"]
    c.close()


def test_results_and_types_are_the_same_as_unnamed(dsn_params):
    plain, prep = connect(dsn_params, None), connect(dsn_params, 0)
    sql = "SELECT %s::int8 + 1, %s || 'x', %s::numeric * 2, %s::jsonb, NULL::date, %s::timestamptz"
    params = [41, "a", "1.50", '{"k": [1, 2]}', "2024-01-02 03:04:05+00"]
    out = []
    for c in (plain, prep):
        cur = c.cursor()
        for _ in range(3):
            cur.execute(sql, params)
            row = cur.fetchone()
        out.append((row, [type(v) for v in row]))
    assert out[0] == out[1]
    assert len(prepared(prep.cursor())) == 1
    plain.close(), prep.close()


def test_ddl_on_the_session_forgets_its_statements(dsn_params):
    c = connect(dsn_params, 0)
    cur = c.cursor()
    cur.execute("CREATE TEMP TABLE prep_t (a int)")
    cur.execute("INSERT INTO prep_t VALUES (%s)", [1])
    cur.execute("SELECT * FROM prep_t")
    assert cur.fetchall() == [(1,)]
    cur.execute("ALTER TABLE prep_t ADD COLUMN b text DEFAULT 'x'")
    cur.execute("SELECT * FROM prep_t")  # a new row type: prepared again, not an error
    assert cur.fetchall() == [(1, "x")]
    c.close()


def test_schema_changed_by_another_session(dsn_params, pg):
    pg.execute("DROP TABLE IF EXISTS prep_shared")
    pg.execute("CREATE TABLE prep_shared (a int)")
    pg.execute("INSERT INTO prep_shared VALUES (1)")
    c = connect(dsn_params, 0)
    cur = c.cursor()
    try:
        cur.execute("SELECT * FROM prep_shared")
        assert cur.fetchall() == [(1,)]
        pg.execute("ALTER TABLE prep_shared ADD COLUMN b int DEFAULT 2")
        # Outside a transaction the stale plan is prepared again and the statement retried.
        cur.execute("SELECT * FROM prep_shared")
        assert cur.fetchall() == [(1, 2)]

        pg.execute("ALTER TABLE prep_shared ADD COLUMN c int DEFAULT 3")
        c.autocommit = False
        # Inside a transaction the failure aborted it: the error is raised (as psycopg
        # raises it), the statement forgotten, and the next transaction prepares it again.
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="cached plan must not change result type"):
            cur.execute("SELECT * FROM prep_shared")
        c.rollback()
        cur.execute("SELECT * FROM prep_shared")
        assert cur.fetchall() == [(1, 2, 3)]
        c.rollback()
    finally:
        c.close()
        pg.execute("DROP TABLE prep_shared")


def test_bad_statements_raise_their_own_errors(dsn_params):
    c = connect(dsn_params, 0)
    cur = c.cursor()
    with pytest.raises(psycopg.errors.SyntaxError):
        cur.execute("SELEC 1")
    with pytest.raises(psycopg.errors.UndefinedTable):
        cur.execute("SELECT * FROM prep_no_such_table WHERE a = %s", [1])
    c.autocommit = False
    with pytest.raises(psycopg.errors.DivisionByZero):
        cur.execute("SELECT 1 / %s", [0])
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        cur.execute("SELECT %s::int", [5])  # cannot be prepared in an aborted transaction either
    c.rollback()
    cur.execute("SELECT %s::int", [5])
    assert cur.fetchone() == (5,)
    c.rollback()
    c.close()


def test_utility_statements_are_prepared_too(dsn_params):
    c = connect(dsn_params, 0)
    cur = c.cursor()
    for _ in range(3):
        cur.execute("SHOW TimeZone")
        assert len(cur.fetchone()) == 1
    assert prepared(cur) == ["SHOW TimeZone"]
    c.close()


def test_at_most_100_statements_per_session(dsn_params):
    c = connect(dsn_params, 0)
    cur = c.cursor()
    for i in range(130):
        cur.execute(f"SELECT {i} + %s", [1])
        assert cur.fetchone() == (i + 1,)
    cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql")
    assert cur.fetchone()[0] <= 101  # 100 cached (+ this counting statement, prepared too)
    c.close()


def test_invalid_threshold(dsn_params):
    with pytest.raises(dbapi.ProgrammingError, match="prepare_threshold"):
        dbapi.connect(**dsn_params, prepare_threshold=-1)
