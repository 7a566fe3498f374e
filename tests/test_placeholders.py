"""Placeholders (`%s`, `%(name)s`, `%%`) at the Python level (driver contract §4).

The rewriter turns `%s` into `$n` and must leave alone everything that only looks like a
placeholder or a parameter: `?` jsonb/hstore operators, `$$` bodies, quoted identifiers
and literals, E'' strings, comments.
"""
import datetime as dt
import ipaddress
import re
import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg import ClientCursor, sql
from psycopg.types.json import Json, Jsonb
from psycopg.types.numeric import Float4, Int2, Int4, Int8
from psycopg.types.range import Range

from django_rustpg import dbapi

UTC = dt.timezone.utc


def one(conn, query, params=None):
    cur = conn.cursor()
    try:
        cur.execute(query, params)
        return cur.fetchone()
    finally:
        cur.close()


# ---------------------------------------------------------------- %s, %(name)s, %%


def test_positional(conn):
    assert one(conn, "SELECT %s, %s, %s", [1, "two", None]) == (1, "two", None)
    assert one(conn, "SELECT %s, %s", (1, 2)) == (1, 2)
    # psycopg's %b / %t (binary / text hints) are placeholders too.
    assert one(conn, "SELECT %b, %t", [1, "x"]) == (1, "x")


def test_named(conn):
    assert one(conn, "SELECT %(a)s, %(b)s, %(a)s", {"a": 1, "b": "x"}) == (1, "x", 1)
    # Extra keys are fine; the same name used twice is one value.
    assert one(conn, "SELECT %(a)s + %(a)s", {"a": 20, "unused": object()}) == (40,)
    with pytest.raises(dbapi.ProgrammingError, match="missing: b"):
        one(conn, "SELECT %(a)s, %(b)s", {"a": 1})
    with pytest.raises(dbapi.ProgrammingError, match="mapping"):
        one(conn, "SELECT %(a)s", [1])
    with pytest.raises(dbapi.ProgrammingError, match="sequence"):
        one(conn, "SELECT %s", {"a": 1})
    with pytest.raises(dbapi.ProgrammingError, match="mixed"):
        one(conn, "SELECT %(a)s, %s", {"a": 1})


def test_percent_percent_without_params_is_verbatim(conn):
    # execute(sql) with no params: the text goes as is (the schema editor inlines
    # literals, then executes with params=None).
    assert one(conn, "SELECT '%%', 'a%%b'") == ("%%", "a%%b")
    assert one(conn, "SELECT 5 % 3") == (2,)
    assert one(conn, "SELECT '%s'") == ("%s",)
    assert one(conn, "SELECT '%%'", None) == ("%%",)


def test_percent_percent_with_params_is_unescaped(conn):
    # Any params, even an empty list: %% means a literal %, as in psycopg.
    assert one(conn, "SELECT '%%', 'a%%b'", []) == ("%", "a%b")
    assert one(conn, "SELECT '%%'", ()) == ("%",)
    assert one(conn, "SELECT 5 %% 3", []) == (2,)
    assert one(conn, "SELECT 'abc' LIKE %s || '%%'", ["ab"]) == (True,)
    assert one(conn, "SELECT 'ABC' ILIKE '%%' || %(x)s || '%%'", {"x": "b"}) == (True,)


def test_percent_percent_matches_psycopg(conn, pg):
    for query, params in [
        ("SELECT '%%', %s", [1]),
        ("SELECT '%%'", None),
        ("SELECT '%%'", []),
        ("SELECT %s || '%%' || %s", ["a", "b"]),
        ('SELECT 1 AS "a%%b"', []),
    ]:
        assert one(conn, query, params) == pg.execute(query, params).fetchone(), (query, params)


def test_stray_percent_is_a_programming_error(conn):
    with pytest.raises(dbapi.ProgrammingError, match=r"%%"):
        one(conn, "SELECT 5 % 2", [])
    with pytest.raises(dbapi.ProgrammingError):
        one(conn, "SELECT %s %", [1])
    with pytest.raises(dbapi.ProgrammingError):
        one(conn, "SELECT %d", [1])
    with pytest.raises(dbapi.ProgrammingError, match=r"%\("):
        one(conn, "SELECT %(a", {"a": 1})
    # The connection is fine afterwards: nothing was sent.
    assert one(conn, "SELECT 1") == (1,)


@pytest.mark.parametrize(
    "query,params,expected,given",
    [
        ("SELECT %s", [1, 2], 1, 2),
        ("SELECT %s, %s", [1], 2, 1),
        ("SELECT 1", [1], 0, 1),
        ("SELECT %s, %s, %s", [], 3, 0),
    ],
)
def test_wrong_param_count_names_both_counts(conn, query, params, expected, given):
    with pytest.raises(dbapi.ProgrammingError) as e:
        one(conn, query, params)
    msg = str(e.value)
    assert re.search(rf"\b{expected}\b.*placeholder", msg) and re.search(rf"\b{given}\b.*parameter", msg), msg


def test_string_is_not_a_parameter_sequence(conn):
    with pytest.raises(dbapi.ProgrammingError, match="string"):
        one(conn, "SELECT %s", "x")


# ---------------------------------------------------------------- things that look like placeholders


def test_jsonb_question_mark_operators(conn):
    doc = '{"a": 1, "b": 2}'
    assert one(conn, f"SELECT '{doc}'::jsonb ? %s", ["a"]) == (True,)
    assert one(conn, f"SELECT '{doc}'::jsonb ?| %s", [["x", "b"]]) == (True,)
    assert one(conn, f"SELECT '{doc}'::jsonb ?& %s", [["a", "x"]]) == (False,)
    assert one(conn, f"SELECT '{doc}'::jsonb ? 'a', '{doc}'::jsonb ?| array['z']") == (True, False)
    assert one(conn, "SELECT %(d)s::jsonb ? %(k)s", {"d": Jsonb({"k": 1}), "k": "k"}) == (True,)


def test_hstore_question_mark_operators(conn):
    conn.cursor().execute("CREATE EXTENSION IF NOT EXISTS hstore")
    assert one(conn, "SELECT 'a=>1'::hstore ? %s, 'a=>1'::hstore ?& %s", ["a", ["a", "b"]]) == (True, False)


def test_dollar_quoted_bodies(conn):
    assert one(conn, "SELECT $$%s it's$$, %s", ["x"]) == ("%s it's", "x")
    assert one(conn, "SELECT $tag$ %s $ $$ '%s' $tag$, %s", [1]) == (" %s $ $$ '%s' ", 1)
    # A function body with %s inside, in a statement that also has a parameter.
    cur = conn.cursor()
    cur.execute(
        "CREATE FUNCTION pg_temp.fmt(t text) RETURNS text AS $body$ SELECT format('<%s>', t) $body$ LANGUAGE sql"
    )
    assert one(conn, "SELECT pg_temp.fmt(%s), $$%%$$", ["v"]) == ("<v>", "%")
    # $1 is a positional parameter of the server, not a dollar quote.
    assert one(conn, "SELECT %s::int + 1", [41]) == (42,)


def test_do_block_without_params(conn):
    cur = conn.cursor()
    cur.execute("DO $$ BEGIN RAISE NOTICE 'percent %% and %s', 'x'; END $$")
    assert cur.description is None


def test_quoted_identifiers_and_literals(conn):
    cur = conn.cursor()
    cur.execute('SELECT %s AS "col%s", \'lit %s\' AS "it\'s", %s AS "a""%s"', [1, 2])
    assert [d.name for d in cur.description] == ["col%s", "it's", 'a"%s']
    assert cur.fetchone() == (1, "lit %s", 2)
    assert one(conn, "SELECT 'it''s %s', %s", ["x"]) == ("it's %s", "x")
    # Standard strings: a backslash does not escape the quote.
    assert one(conn, "SELECT 'a\\', %s", ["b"]) == ("a\\", "b")


def test_escape_strings(conn):
    assert one(conn, "SELECT E'\\'%s', %s", ["x"]) == ("'%s", "x")
    assert one(conn, "SELECT e'\\\\', %s", ["y"]) == ("\\", "y")
    assert one(conn, "SELECT E'tab\\there %s', %s", [1]) == ("tab\there %s", 1)
    # An identifier ending in e/E before a quote is not an E'' prefix.
    assert one(conn, "SELECT 1 AS some, 'x\\', %s", [2]) == (1, "x\\", 2)


def test_comments(conn):
    assert one(conn, "SELECT %s -- it's %s\n, %s", [1, 2]) == (1, 2)
    assert one(conn, "SELECT /* it's /* nested %s */ %s */ %s", [3]) == (3,)
    assert one(conn, "-- leading comment %s\nSELECT %s", [4]) == (4,)


def test_casts_with_placeholders(conn):
    assert one(conn, "SELECT %s::numeric(5,2), (%s)::text[], CAST(%s AS date)", ["1.234", ["a"], "2020-01-02"]) == (
        Decimal("1.23"),
        ["a"],
        dt.date(2020, 1, 2),
    )


def test_multiple_statements(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1; SELECT 2")  # no params: sent as one simple query
    assert cur.fetchall() == [(1,)]  # the first statement's result, as psycopg
    # With params: rendered client-side as stock (tests/test_multi_statement.py).
    cur.execute("SELECT %s; SELECT %s", [1, 2])
    assert cur.fetchall() == [(1,)]
    # A trailing semicolon is one statement.
    assert one(conn, "SELECT %s;", [5]) == (5,)


def test_query_as_bytes(conn):
    assert one(conn, b"SELECT %s, '\xc3\xbc'", [1]) == (1, "ü")


# ---------------------------------------------------------------- sql.Composable


def test_composable_queries(conn):
    q = sql.SQL("SELECT {}, {}, %s AS {}").format(sql.Literal(5), sql.Literal("it's"), sql.Identifier("my col"))
    cur = conn.cursor()
    cur.execute(q, [6])
    assert cur.description[2].name == "my col"
    assert cur.fetchone() == (5, "it's", 6)
    assert one(conn, sql.SQL("SELECT 1")) == (1,)
    # Django's callproc-like shape: SELECT * FROM name(args) built from Identifier/Literal.
    composed = sql.SQL("SELECT * FROM {}({})").format(
        sql.Identifier("pg_catalog", "generate_series"), sql.SQL(", ").join([sql.Literal(1), sql.Placeholder()])
    )
    cur.execute(composed, [3])
    assert cur.fetchall() == [(1,), (2,), (3,)]
    cur.execute(sql.Composed([sql.SQL("SELECT "), sql.Placeholder("n")]), {"n": "x"})
    assert cur.fetchone() == ("x",)
    with pytest.raises(dbapi.ProgrammingError, match="query must be"):
        cur.execute(12)


def test_callproc(conn):
    cur = conn.cursor()
    cur.callproc("generate_series", [Int4(1), Int4(2)])
    assert cur.fetchall() == [(1,), (2,)]


# ---------------------------------------------------------------- mogrify = ClientCursor.mogrify


MOGRIFY_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**70,
    -(2**70),
    1.5,
    -1.5,
    -0.0,
    1e300,
    1e-5,
    float("nan"),
    float("inf"),
    float("-inf"),
    Float4(1.1),
    Float4(-2.5),
    Int2(3),
    Int4(-4),
    Int8(2**40),
    Decimal("1.10"),
    Decimal("-3"),
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    "plain",
    "",
    "it's",
    "back\\slash",
    "both ' and \\",
    "ünï😀",
    b"",
    b"\x00\x01'\\",
    bytearray(b"ab"),
    memoryview(b"cd"),
    dt.date(2024, 2, 29),
    dt.time(1, 2, 3, 4),
    dt.time(1, 2, tzinfo=UTC),
    dt.datetime(2024, 1, 2, 3, 4, 5, 6),
    dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.timedelta(days=1, seconds=2, microseconds=3),
    dt.timedelta(days=-1),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Jsonb({"a": [1, "it's", None]}),
    Json([1, 2]),
    ipaddress.ip_address("1.2.3.4"),
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_interface("::1/64"),
    Range(1, 10),
    Range(empty=True),
    Range(None, Decimal("2.5"), "(]"),
    Range(dt.date(2024, 1, 1), dt.date(2024, 2, 1)),
    [1, 2, 3],
    [[1, 2], [3, 4]],
    ["a", "b,c", 'q"', "", None, "back\\slash"],
    [Decimal("1.5"), None],
    [dt.date(2024, 1, 1)],
    [b"\x00"],
    [],
]


@pytest.fixture(scope="module")
def django_psycopg(pg_conninfo):
    from django.db.backends.postgresql.psycopg_any import get_adapters_template

    with psycopg.connect(pg_conninfo, autocommit=True, context=get_adapters_template(True, UTC)) as c:
        yield c


@pytest.mark.parametrize("value", MOGRIFY_VALUES, ids=lambda v: type(v).__name__ + ":" + repr(v)[:30])
def test_mogrify_matches_psycopg_client_cursor(conn, django_psycopg, value):
    # What Django's compose_sql produces: ClientCursor(connection).mogrify(sql, params).
    want = ClientCursor(django_psycopg).mogrify("SELECT %s", [value])
    assert conn.cursor().mogrify("SELECT %s", [value]) == want
    assert dbapi.mogrify("SELECT %s", [value]) == want


@pytest.mark.parametrize("value", MOGRIFY_VALUES, ids=lambda v: type(v).__name__ + ":" + repr(v)[:30])
def test_mogrify_output_is_valid_sql(conn, value):
    # The literal executes; where it carries its type (everything but bare numbers, which
    # SQL reads as numeric, and untyped NULL/[]), it means the same value as the parameter.
    literal_sql = conn.cursor().mogrify("SELECT %s", [value])
    got = one(conn, literal_sql)
    if isinstance(value, (float, Decimal)) or value is None or value == []:
        return
    assert got == one(conn, "SELECT %s", [value]), literal_sql


def test_mogrify_queries(conn, django_psycopg):
    cc = ClientCursor(django_psycopg)
    for query, params in [
        ("SELECT %s, %%, '%%'", [1]),
        ("SELECT '%%'", None),
        ("SELECT '%%'", []),
        ("SELECT %(a)s, %(b)s, %(a)s", {"a": 1, "b": "x"}),
        ("SELECT %s = ANY(%s)", [-1, [-1, -2]]),
        ("SELECT data ? %s FROM t WHERE x LIKE '%%' || %s", ["k", "v"]),
    ]:
        assert conn.cursor().mogrify(query, params) == cc.mogrify(query, params), (query, params)
    assert conn.cursor().mogrify(sql.SQL("SELECT {}").format(sql.Identifier("x")), None) == 'SELECT "x"'
    with pytest.raises(dbapi.ProgrammingError):
        conn.cursor().mogrify("SELECT %s", [1, 2])


def test_nul_in_mogrify_is_a_data_error(conn):
    with pytest.raises(dbapi.DataError, match="NUL"):
        conn.cursor().mogrify("SELECT %s", ["a\x00"])


# ---------------------------------------------------------------- repeated values


def test_identical_typed_values_may_share_a_placeholder(conn):
    cur = conn.cursor()
    cur.execute("SELECT %s::int, %s::bigint, %s + 1", [7, 7, 7])
    assert cur.fetchone() == (7, 7, 8)
    assert cur.query == "SELECT $1::int, $1::bigint, $1 + 1"


@pytest.mark.parametrize(
    "query,params",
    [
        ("SELECT 1 WHERE %s = 'x' AND %s = 1", ["1", "1"]),  # text here, integer there
        ("SELECT %s::date, %s", ["2020-01-01", "2020-01-01"]),  # date, then a plain str
        ("SELECT %s::jsonb::text, %s::text", ['{"a":1}', '{"a":1}']),  # the text keeps its spelling
    ],
    ids=["text-and-int", "date-and-unknown", "jsonb-and-text"],
)
def test_untyped_values_each_infer_their_own_type(conn, pg, query, params):
    # Identical str values must not share one $n: the server would force the type it
    # deduced at the first use on every other use. psycopg types each occurrence alone.
    cur = conn.cursor()
    cur.execute(query, params)
    assert cur.fetchall() == pg.execute(query, params).fetchall()
