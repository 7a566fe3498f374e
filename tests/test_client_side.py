"""The simple-protocol path (src/types/encode/inline.rs, src/codec/transcode.rs, the
`ClientSide` rule in src/sql/classify.rs): a statement returning no rows or a few runs as
one Query with its values as literals and text results, once its columns are described.

Every test checks which path ran (the server's own record of the statement text in
pg_stat_activity: `$1` when bound, the literal when inlined), so none passes by not
taking the path it is about. Results are compared with the bound path's on the same
values: same objects, same Python types."""
import datetime
import decimal
import json
import os
import uuid
import zoneinfo

import psycopg
import pytest

from django_rustpg import dbapi

FEW = " LIMIT 21"


@pytest.fixture
def watched(conn, pg_conninfo):
    """(cursor, last_statement()): the text the server last saw from this session."""
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    other = psycopg.connect(pg_conninfo, autocommit=True)

    def last_statement():
        return other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]

    yield cur, last_statement
    other.close()


def run_both(cur, last_statement, select, params):
    """The rows of `select` bound (no LIMIT: never inlined) and inlined (LIMIT, second run)."""
    cur.execute(select, params)
    bound = cur.fetchall()
    assert "$1" in last_statement()
    cur.execute(select + FEW, params)  # described, remembered
    cur.execute(select + FEW, params)
    inlined = cur.fetchall()
    assert "$1" not in last_statement(), last_statement()
    return bound, inlined


def typed(rows):
    return [[(type(v), repr(v)) for v in row] for row in rows]  # repr: NaN is not equal to itself


VALUES = [
    (0, "int2"), (-32768, "int2"), (2_147_483_647, "int4"), (-(2**63), "int8"), (2**63 - 1, "int8"),
    (True, "bool"), (False, "bool"),
    ("plain", "text"), ("it's \\ a \"test\" ünïcode ✓", "text"), ("", "text"), ("x" * 5000, "varchar"),
    (decimal.Decimal("-123.4500"), "numeric"), (decimal.Decimal("NaN"), "numeric"), (decimal.Decimal("1E+30"), "numeric"),
    (uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "uuid"),
    (datetime.date(1, 1, 1), "date"), (datetime.date(9999, 12, 31), "date"), (datetime.date(2024, 2, 29), "date"),
    (datetime.datetime(2024, 3, 10, 1, 2, 3, 456789), "timestamp"),
    (datetime.datetime(1, 1, 1, 0, 0, 0), "timestamp"),
    (datetime.datetime(2024, 3, 10, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc), "timestamptz"),
    (datetime.datetime(2024, 3, 10, 12, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Kathmandu")), "timestamptz"),
    (datetime.datetime(1850, 6, 1, 12, 0, tzinfo=datetime.timezone.utc), "timestamptz"),
    (None, "int4"), (None, "text"), (None, "timestamptz"),
]


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kathmandu", "America/St_Johns"])
def test_values_are_the_same_objects_as_bound(watched, zone):
    cur, last_statement = watched
    cur.execute(f"SET TIME ZONE '{zone}'")
    select = "SELECT " + ", ".join(f"%s::{t}" for _, t in VALUES)
    params = [v for v, _ in VALUES]
    bound, inlined = run_both(cur, last_statement, select, params)
    assert typed(inlined) == typed(bound)
    assert inlined[0][0] == 0 and inlined[0][-2] is None


def test_json_columns_and_untyped_strings(watched):
    cur, last_statement = watched
    doc = {"a": [1, 2.5, None], "b": "it's"}
    select = "SELECT %s::jsonb, %s::json, %s, %s || 'x'"
    bound, inlined = run_both(cur, last_statement, select, [json.dumps(doc), json.dumps(doc), "s", "t"])
    assert typed(inlined) == typed(bound)


@pytest.mark.parametrize("literal", ["'infinity'::timestamptz", "'-infinity'::date", "'0044-03-15 BC'::date",
                                     "'10000-01-01'::timestamp"])
def test_values_python_cannot_hold_fail_the_same_way(watched, literal):
    cur, last_statement = watched
    select = f"SELECT {literal} WHERE %s"
    errors = []
    for sql in (select, select + FEW, select + FEW):
        with pytest.raises(dbapi.DataError) as info:
            cur.execute(sql, [True])
            cur.fetchall()
        errors.append(str(info.value))
    assert "$1" not in last_statement()
    assert errors[2] == errors[0]


def test_unmodelled_parameters_stay_bound(watched):
    cur, last_statement = watched
    for value, cast in [(datetime.time(1, 2, 3), "time"), (datetime.timedelta(days=1, seconds=5), "interval")]:
        sql = f"SELECT %s::{cast}" + FEW
        cur.execute(sql, [value])
        cur.execute(sql, [value])
        assert cur.fetchone()[0] == value
        assert "$1" in last_statement()
    # A list binds as an array in text format: that text is its literal.
    sql = "SELECT %s::int4[]" + FEW
    cur.execute(sql, [[1, 2, None]])
    cur.execute(sql, [[1, 2, None]])
    assert cur.fetchone()[0] == [1, 2, None]
    assert "$1" not in last_statement()


def test_columns_that_read_differently_from_text_stay_binary(watched):
    cur, last_statement = watched
    sql = "SELECT %s * interval '1 second', %s::bytea" + FEW
    for _ in range(2):
        cur.execute(sql, [1, b"\x00\xff"])
    assert cur.fetchone() == (datetime.timedelta(seconds=1), b"\x00\xff")
    assert "$1" in last_statement()


@pytest.mark.parametrize("column", ["ARRAY[interval '1 day']", "ARRAY['{\"a\": 1}'::json]", "ARRAY['a=>1'::hstore]"])
def test_arrays_of_unmodelled_elements_stay_binary(watched, column):
    cur, last_statement = watched
    if "hstore" in column:
        cur.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    sql = f"SELECT {column} WHERE %s" + FEW
    for _ in range(2):
        cur.execute(sql, [True])
    assert cur.fetchone()[0]
    assert "$1" in last_statement()


FLOATS = [
    "0.1::float8", "(0.1::float8 + 0.2::float8)", "1e300::float8", "5e-324::float8", "'-0'::float8",
    "'NaN'::float8", "'Infinity'::float8", "'-Infinity'::float8", "1.1::float4", "3.4028235e38::float4",
    "1e-45::float4", "'-Infinity'::float4", "(1::float8 / 3)", "NULL::float8",
]

ARRAYS = [
    """ARRAY['a', 'it''s', 'with, comma', 'quote"', 'back\\slash', '{brace}', '', 'NULL', NULL, 'ünï ✓',
             ' spaced ']::varchar(16)[]""",
    "ARRAY[[1, 2], [3, 4], [5, NULL]]::int4[]", "ARRAY[-9223372036854775808, NULL]::int8[]",
    "ARRAY[true, false]", "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']::uuid[]",
    "ARRAY['2024-02-29', '0044-03-15']::date[]", "ARRAY['2024-03-10 12:00+05:45', NULL]::timestamptz[]",
    "ARRAY['2024-03-10 12:00:01.5']::timestamp[]", "ARRAY[1.50, -2, 'NaN']::numeric[]",
    "ARRAY[0.1, 'Infinity', 1e-300]::float8[]", "ARRAY[1.1]::float4[]", "'{}'::text[]", "'[0:1]={a,b}'::text[]",
    "'[2:2][3:4]={{7,8}}'::int2[]", "ARRAY[[['1']]]::bpchar[]", "ARRAY['n']::name[]",
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu"])
def test_floats_and_arrays_read_from_text_as_bound_and_as_psycopg(watched, pg_conninfo, zone):
    cur, last_statement = watched
    cur.execute(f"SET TIME ZONE '{zone}'")
    select = "SELECT " + ", ".join(FLOATS + ARRAYS) + " WHERE %s"
    bound, inlined = run_both(cur, last_statement, select, [True])
    assert typed(inlined) == typed(bound)
    assert inlined[0][0] == 0.1 and inlined[0][8] == 1.1 and inlined[0][len(FLOATS) + 1] == [[1, 2], [3, 4], [5, None]]
    # What stock Django reads: psycopg's text loaders, minus the arrays it leaves as text.
    with psycopg.connect(pg_conninfo, autocommit=True) as stock:
        stock.execute(f"SET TIME ZONE '{zone}'")
        expected = stock.execute(select.replace("%s", "true")).fetchall()
    assert typed(inlined) == typed(expected)


def test_rounded_float_text_is_read_as_psycopg_reads_it(watched, pg_conninfo):
    # The declared difference (README): with extra_float_digits <= 0 the server rounds float
    # text; binary stays exact, the simple path reads psycopg's rounded value.
    cur, last_statement = watched
    cur.execute("SET extra_float_digits = 0")
    bound, inlined = run_both(cur, last_statement, "SELECT 0.1::float8 + %s::float8", [0.2])
    assert bound[0][0] == 0.1 + 0.2 == 0.30000000000000004
    with psycopg.connect(pg_conninfo, autocommit=True) as stock:
        stock.execute("SET extra_float_digits = 0")
        assert inlined[0][0] == stock.execute("SELECT 0.1::float8 + 0.2::float8").fetchone()[0] == 0.3


def test_writes_run_inlined_with_their_row_counts(conn, watched):
    cur, last_statement = watched
    cur.execute("CREATE TEMP TABLE cs_items (id serial PRIMARY KEY, name text, at timestamptz)")
    at = datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
    conn.autocommit = False  # BEGIN pipelined in front of the inlined INSERT
    for name in ["a", "it's", "c\\d"]:
        cur.execute("INSERT INTO cs_items (name, at) VALUES (%s, %s) RETURNING id", [name, at])
        assert cur.rowcount == 1
    assert "RETURNING" in last_statement() and "$1" not in last_statement()
    conn.commit()
    conn.autocommit = True
    cur.execute("UPDATE cs_items SET name = name || %s WHERE id > %s", ["!", 1])
    assert cur.rowcount == 2 and "$1" not in last_statement()
    cur.execute("SELECT name, at FROM cs_items ORDER BY id")
    assert cur.fetchall() == [("a", at), ("it's!", at), ("c\\d!", at)]


def test_server_errors_match_the_bound_path(watched):
    cur, last_statement = watched
    messages = []
    for sql in ["SELECT %s::int4", "SELECT %s::int4" + FEW]:
        with pytest.raises(dbapi.DataError) as info:
            cur.execute(sql, ["nope"])
        messages.append(info.value.diag.message_primary if hasattr(info.value, "diag") else str(info.value))
    assert messages[0] == messages[1]


def test_a_session_outside_datestyle_iso_reads_binary(watched):
    cur, last_statement = watched
    cur.execute("SET DateStyle = 'SQL, DMY'")
    sql = "SELECT %s::date, %s::timestamptz" + FEW
    when = datetime.datetime(2024, 3, 10, 12, 0, tzinfo=datetime.timezone.utc)
    for _ in range(2):
        cur.execute(sql, [datetime.date(2024, 3, 1), when])
    assert cur.fetchone() == (datetime.date(2024, 3, 1), when)
    assert "$1" in last_statement()


def test_a_column_whose_type_changed_elsewhere_decodes_by_its_new_type(conn, watched, pg_conninfo):
    cur, last_statement = watched
    cur.execute("DROP TABLE IF EXISTS cs_changing")
    cur.execute("CREATE TABLE cs_changing (id int PRIMARY KEY, v int)")
    cur.execute("INSERT INTO cs_changing VALUES (1, 42)")
    sql = "SELECT v FROM cs_changing WHERE id = %s" + FEW
    try:
        for _ in range(2):
            cur.execute(sql, [1])
        assert cur.fetchone() == (42,) and "$1" not in last_statement()
        # DDL from another client: this process's remembered description is now stale.
        with psycopg.connect(pg_conninfo, autocommit=True) as other:
            other.execute("ALTER TABLE cs_changing ALTER COLUMN v TYPE numeric USING v / 8.0")
        cur.execute(sql, [1])
        assert cur.fetchone() == (decimal.Decimal("5.2500000000000000"),)
        cur.execute(sql, [1])
        assert cur.fetchone() == (decimal.Decimal("5.2500000000000000"),)
    finally:
        cur.execute("DROP TABLE cs_changing")


def test_prepared_statements_are_not_replaced(dsn_params):
    conn = dbapi.connect(**dsn_params, prepare_threshold=1)
    conn.autocommit = True
    cur = conn.cursor()
    try:
        for _ in range(3):
            cur.execute("SELECT %s::int4" + FEW, [7])
        assert cur.fetchone() == (7,)
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1::int4%%'")
        assert cur.fetchone()[0] == 1
    finally:
        conn.close()


@pytest.mark.parametrize("conforming", ["on", "off"])
def test_backslashes_and_bytes_survive_either_string_syntax(watched, conforming):
    cur, last_statement = watched
    cur.execute(f"SET standard_conforming_strings = {conforming}")
    cur.execute("CREATE TEMP TABLE cs_bytes (id int, t text, b bytea)")
    text, data = "a\\b'c\\\\", bytes(range(256))
    cur.execute("INSERT INTO cs_bytes VALUES (%s, %s, %s)", [1, text, data])
    assert "$1" not in last_statement()
    cur.execute("SELECT t, b FROM cs_bytes WHERE id = %s", [1])
    assert cur.fetchone() == (text, data)


def test_vacuum_and_analyze_run_as_one_simple_query(conn):
    """As psycopg (either version) sends them. The server names the protocol in its log:
    `statement:` for a Query, `execute <unnamed>:` for Parse/Bind/Execute."""
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if not cur.fetchone()[0]:
        if os.environ.get("CI"):
            pytest.fail("log_statement needs a superuser: CI's server role is one")
        pytest.skip("log_statement needs a superuser")
    cur.execute("CREATE TEMP TABLE vacuumed (a int)")
    cur.execute("SET log_statement = 'all'")
    cur.execute("SET client_min_messages = log")
    for sql in ["VACUUM vacuumed", "ANALYZE vacuumed", "VACUUM (ANALYZE) vacuumed", "VACUUM vacuumed"]:
        conn.take_notices()
        cur.execute(sql)
        notices = conn.take_notices()
        assert any(f"statement: {sql}" in n for n in notices), (sql, notices)
        assert not any("execute" in n for n in notices), (sql, notices)
