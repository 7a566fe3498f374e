"""Per-column result formats (src/formats.rs): text for types without a stock-identical
binary decoder, binary for the rest; the remembered column description follows DDL."""
import psycopg
import pytest


def rows(conn, sql, params=None):
    cur = conn.cursor()
    cur.execute(sql, params)
    return cur.fetchall()


def test_types_without_binary_output_read_as_stock(conn, pg):
    sql = "SELECT relacl, relacl[1], 'BOX(1 2,3 4)'::text FROM pg_class WHERE relname = 'pg_class'"
    assert rows(conn, sql) == pg.execute(sql).fetchall()
    got = rows(conn, "SELECT 'postgres=r/postgres'::aclitem")[0][0]
    assert got == "postgres=r/postgres"


def test_mixed_formats_in_one_row(conn, pg):
    sql = "SELECT 1, point(1, 2), 'x'::text, '5'::xid, now() - now(), ROW(1, 'a')"
    ours = rows(conn, sql)
    assert ours == pg.execute(sql).fetchall()
    assert ours[0][:3] == (1, "(1,2)", "x") and ours[0][3] == "5"


def test_own_ddl_changes_a_columns_type(conn):
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE rf1 (a int)")
    cur.execute("INSERT INTO rf1 VALUES (1)")
    assert rows(conn, "SELECT a FROM rf1") == [(1,)]
    cur.execute("ALTER TABLE rf1 ALTER a TYPE point USING point(a, a)")
    assert rows(conn, "SELECT a FROM rf1") == [("(1,1)",)]
    cur.execute("ALTER TABLE rf1 ALTER a TYPE int USING a[0]::int")
    assert rows(conn, "SELECT a FROM rf1") == [(1,)]


def test_other_sessions_ddl_to_a_type_without_binary_output(conn, pg):
    pg.execute("DROP TABLE IF EXISTS rf2")
    pg.execute("CREATE TABLE rf2 (a text)")
    try:
        pg.execute("INSERT INTO rf2 VALUES ('postgres=r/postgres')")
        assert rows(conn, "SELECT a FROM rf2") == [("postgres=r/postgres",)]  # described: binary
        pg.execute("ALTER TABLE rf2 ALTER a TYPE aclitem USING a::aclitem")
        # The remembered binary format is refused; outside a transaction the run is retried.
        assert rows(conn, "SELECT a FROM rf2") == [("postgres=r/postgres",)]
    finally:
        pg.execute("DROP TABLE rf2")


def test_other_sessions_ddl_is_followed_on_the_next_run(conn, pg):
    pg.execute("DROP TABLE IF EXISTS rf3")
    pg.execute("CREATE TABLE rf3 (a int)")
    try:
        pg.execute("INSERT INTO rf3 VALUES (3)")
        assert rows(conn, "SELECT a FROM rf3") == [(3,)]
        pg.execute("ALTER TABLE rf3 ALTER a TYPE point USING point(a, a)")
        rows(conn, "SELECT a FROM rf3")  # this run notices the change
        assert rows(conn, "SELECT a FROM rf3") == [("(3,3)",)]
    finally:
        pg.execute("DROP TABLE rf3")


def test_named_cursor_fetches_text_columns(dsn_params):
    from django_rustpg import dbapi

    c = dbapi.connect(**dsn_params)
    try:
        cur = c.cursor("rf_named")
        cur.itersize = 3
        cur.execute("SELECT g, point(g, g), g::text::xid FROM generate_series(1, 7) g")
        got = cur.fetchall()
        assert got == [(g, f"({g},{g})", str(g)) for g in range(1, 8)]
    finally:
        c.close()


def test_create_extension_is_followed(conn, pg_conninfo, dsn_params):
    """Extension types are found per database, and again after CREATE EXTENSION."""
    with psycopg.connect(pg_conninfo, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'ltree'").fetchone():
            import os

            if os.environ.get("CI"):
                pytest.fail("ltree missing: install postgresql-contrib")
            pytest.skip("ltree missing: install postgresql-contrib")
    cur = conn.cursor()
    cur.execute("CREATE SCHEMA IF NOT EXISTS rf_ext")
    try:
        cur.execute("CREATE EXTENSION IF NOT EXISTS ltree SCHEMA rf_ext")
        assert rows(conn, "SELECT 'A.B'::rf_ext.ltree, ARRAY['A'::rf_ext.ltree]") == [("A.B", "{A}")]
        cur.execute("DROP EXTENSION ltree")
        cur.execute("CREATE EXTENSION ltree SCHEMA rf_ext")  # new OIDs
        assert rows(conn, "SELECT 'A.B'::rf_ext.ltree, ARRAY['A'::rf_ext.ltree]") == [("A.B", "{A}")]
    finally:
        cur.execute("DROP SCHEMA rf_ext CASCADE")


HANG_CHILD = r"""
import sys
from django_rustpg import dbapi
params = eval(sys.argv[1])
first = dbapi.connect(**params)
first.autocommit = True
sql = "SELECT id, mood, ARRAY[mood], repeat('x', 40) FROM rf_moods ORDER BY id"
cur = first.cursor()
cur.execute(sql)
expected = cur.fetchall()
# Another session of the pool, which has not met the enum type: the formats remembered
# from the first one let it skip the Describe.
second = dbapi.connect(**params)
second.autocommit = True
cur = second.cursor()
cur.execute(sql)
assert cur.fetchall() == expected
third = dbapi.connect(**params)  # not autocommit: the named cursor's transaction
named = third.cursor("moods")
named.itersize = 20000
named.execute(sql)
assert named.fetchall() == expected
third.rollback()
print("rows", len(expected))
"""


def test_a_session_that_has_not_met_a_column_type_reads_a_large_result(pg, run_child):
    """Formats remembered from one session, an enum column another session has not loaded,
    and more rows than the response channel holds: the type lookup must not queue behind
    the rows (it hung the session: src/patches/tokio-postgres/PATCH.md, "Known types")."""
    pg.execute("DROP TABLE IF EXISTS rf_moods")
    pg.execute("DROP TYPE IF EXISTS rf_mood")
    pg.execute("CREATE TYPE rf_mood AS ENUM ('sad', 'ok', 'happy')")
    pg.execute("CREATE TABLE rf_moods (id int, mood rf_mood)")
    try:
        pg.execute("INSERT INTO rf_moods SELECT n, (ARRAY['sad','ok','happy'])[n % 3 + 1]::rf_mood FROM generate_series(1, 30000) n")
        assert run_child(HANG_CHILD) == ["rows", "30000"]
    finally:
        pg.execute("DROP TABLE rf_moods")
        pg.execute("DROP TYPE rf_mood")


DDL_RACE_CHILD = r"""
import sys
import psycopg
from django_rustpg import dbapi
params = eval(sys.argv[1])
conn = dbapi.connect(**params)
conn.autocommit = True
sql = "SELECT id, label, repeat('x', 40) FROM rf_labels ORDER BY id"
failing = "SELECT id, label, 1 / d FROM rf_labels ORDER BY id"
cur = conn.cursor()
cur.execute(sql)
assert cur.fetchone() == (1, "ok", "x" * 40)
cur.fetchall()
cur.execute(failing)
assert len(cur.fetchall()) == 50000
# Another client's DDL: this process's remembered formats still say every column type is
# built in, so the statement runs undescribed and meets the new enum mid-result.
with psycopg.connect(**params, autocommit=True) as other:
    other.execute("CREATE TYPE rf_label AS ENUM ('sad', 'ok', 'happy')")
    other.execute("ALTER TABLE rf_labels ALTER label TYPE rf_label USING label::rf_label")
    expected = other.execute(sql).fetchall()
cur.execute(sql)
assert cur.fetchall() == expected
# Again with an error at row 40,000: the statement's own error, and the session goes on.
with psycopg.connect(**params, autocommit=True) as other:
    other.execute("CREATE TYPE rf_label2 AS ENUM ('sad', 'ok', 'happy')")
    other.execute("ALTER TABLE rf_labels ALTER label TYPE rf_label2 USING label::text::rf_label2")
    other.execute("UPDATE rf_labels SET d = 0 WHERE id = 40000")
try:
    cur.execute(failing)
except dbapi.DataError as e:
    assert "division by zero" in str(e), e
else:
    raise AssertionError("no error")
cur.execute("SELECT count(*) FROM rf_labels")
assert cur.fetchone() == (len(expected),)
print("rows", len(expected))
"""


def test_a_column_changed_by_another_client_to_a_type_the_session_has_not_loaded(pg, run_child):
    """Formats remembered before another client changed a column to a new enum: the type is
    looked up after the whole result is in (PATCH.md, "Known types"), not behind its rows."""
    pg.execute("DROP TABLE IF EXISTS rf_labels")
    pg.execute("DROP TYPE IF EXISTS rf_label")
    pg.execute("DROP TYPE IF EXISTS rf_label2")
    pg.execute("CREATE TABLE rf_labels (id int, label text, d int DEFAULT 1)")
    try:
        pg.execute("INSERT INTO rf_labels SELECT n, (ARRAY['sad','ok','happy'])[n % 3 + 1] FROM generate_series(1, 50000) n")
        assert run_child(DDL_RACE_CHILD, timeout=60) == ["rows", "50000"]
    finally:
        pg.execute("DROP TABLE rf_labels")
        pg.execute("DROP TYPE IF EXISTS rf_label")
        pg.execute("DROP TYPE IF EXISTS rf_label2")
