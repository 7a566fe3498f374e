"""Type round trips (driver contract §5 values coming back, §6 values going in).

Every value is checked against psycopg 3 on the same server: psycopg with Django's own
adapters template (`get_adapters_template(True, utc)`, which makes jsonb/inet/cidr load as
str like the contract says) plus hstore/citext registered the way
`django.contrib.postgres.signals` registers them. Equality is strict: same value AND same
Python type, recursively (see `same()`); NaN equals NaN; Decimals compare by their text
(1.10 is not 1.1); aware datetimes also by UTC offset.

Where psycopg (with that context) and the contract disagree, the test follows the contract
and says why next to the case.
"""
import datetime as dt
import enum
import ipaddress
import json
import math
import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg.types import TypeInfo
from psycopg.types.hstore import register_hstore
from psycopg.types.json import Json, Jsonb
from psycopg.types.numeric import Float4, Int2, Int4, Int8
from psycopg.types.range import Range

from django_rustpg import dbapi

UTC = dt.timezone.utc


# ---------------------------------------------------------------- comparison


def same(a, b):
    """True when a and b are equal values of exactly the same Python types, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal):
        return str(a) == str(b)  # exact digits and scale, NaN/Infinity included
    if isinstance(a, Range):
        return (a.isempty, a.bounds) == (b.isempty, b.bounds) and same(a.lower, b.lower) and same(a.upper, b.upper)
    if isinstance(a, (dt.datetime, dt.time)) and a.tzinfo is not None:
        return a == b and b.tzinfo is not None and a.utcoffset() == b.utcoffset()
    return a == b


def assert_same(ours, theirs, what=""):
    assert same(ours, theirs), f"{what}\n  ours:     {ours!r}\n  psycopg:  {theirs!r}"


# ---------------------------------------------------------------- connections


@pytest.fixture(scope="module")
def ours(dsn_params):
    c = dbapi.connect(**dsn_params)
    c.autocommit = True
    cur = c.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    cur.execute("CREATE EXTENSION IF NOT EXISTS citext")
    # Django's DatabaseWrapper sets the session zone to UTC on every new connection.
    cur.execute("SELECT set_config('TimeZone', 'UTC', false)")
    cur.execute("SELECT 'hstore'::regtype::oid")
    c.register_hstore(cur.fetchone()[0])
    cur.close()
    yield c
    c.close()


@pytest.fixture(scope="module")
def ref(pg_conninfo, ours):
    """psycopg configured as Django configures it (adapters template, hstore, citext, and
    client-side binding: Django's default cursor is a ClientCursor, which sends values as
    literals, so the server types them as it types literals: 5 is an integer, 1.5 numeric)."""
    from django.db.backends.postgresql.psycopg_any import get_adapters_template

    c = psycopg.connect(pg_conninfo, autocommit=True, context=get_adapters_template(True, UTC),
                        cursor_factory=psycopg.ClientCursor)
    c.execute("SELECT set_config('TimeZone', 'UTC', false)")
    register_hstore(TypeInfo.fetch(c, "hstore"), c)
    TypeInfo.fetch(c, "citext").register(c)
    yield c
    c.close()


def q_ours(conn, sql, params=None):
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        cur.close()


def q_ref(conn, sql, params=None):
    return conn.execute(sql, params).fetchall()


def check_both(ours, ref, sql, params=None):
    a = q_ours(ours, sql, params)
    b = q_ref(ref, sql, params)
    assert_same(a, b, f"{sql} {params!r}")
    return a


# ---------------------------------------------------------------- values going in (§6)

# (id, Python value, SQL type to cast the parameter to, or None for "no cast")
PARAMS = [
    ("none", None, "int4"),
    ("none-text", None, "text"),
    ("true", True, "bool"),
    ("false", False, "bool"),
    ("int-0", 0, "int8"),
    ("int2-max", 32767, "int4"),
    ("int4-min", -(2**31), "int8"),
    ("int8-max", 2**63 - 1, "int8"),
    ("int8-min", -(2**63), "int8"),
    ("int-beyond-int8", 2**63, "numeric"),
    ("int-huge-negative", -(10**40), "numeric"),
    ("Int2", Int2(7), "int2"),
    ("Int4", Int4(-7), "int4"),
    ("Int8", Int8(2**40), "int8"),
    ("float", 1.5, "float8"),
    ("float-0.1", 0.1, "float8"),
    ("float-negzero", -0.0, "float8"),
    ("float-tiny", 5e-324, "float8"),
    ("float-nan", float("nan"), "float8"),
    ("float-inf", float("inf"), "float8"),
    ("float-ninf", float("-inf"), "float8"),
    ("Float4-1.1", Float4(1.1), "float4"),
    ("Float4-nan", Float4(float("nan")), "float4"),
    ("decimal", Decimal("1.10"), "numeric"),
    ("decimal-neg-small", Decimal("-0.000001"), "numeric"),
    ("decimal-exp", Decimal("1E+10"), "numeric"),
    ("decimal-nan", Decimal("NaN"), "numeric"),
    ("decimal-inf", Decimal("Infinity"), "numeric"),
    ("decimal-ninf", Decimal("-Infinity"), "numeric"),
    ("decimal-huge", Decimal("1234567890123456789012345678901234567890.123456789012345678901234567890"), "numeric"),
    ("str", "hello", "text"),
    ("str-empty", "", "text"),
    ("str-quotes-backslash", "it's \"q\" \\ %s", "text"),
    ("str-unicode", "ünï😀", "text"),
    ("str-varchar", "abc", "varchar(5)"),
    ("bytes", b"\x00\x01\xff\x00", "bytea"),
    ("bytes-empty", b"", "bytea"),
    ("bytearray", bytearray(b"a\x00b"), "bytea"),
    ("memoryview", memoryview(b"c\x00d"), "bytea"),
    ("date", dt.date(2024, 2, 29), "date"),
    ("date-min", dt.date(1, 1, 1), "date"),
    ("date-max", dt.date(9999, 12, 31), "date"),
    ("time", dt.time(12, 34, 56, 789), "time"),
    ("time-midnight", dt.time(0, 0), "time"),
    ("timetz", dt.time(12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))), "timetz"),
    ("timestamp", dt.datetime(2024, 1, 2, 3, 4, 5, 6), "timestamp"),
    ("timestamp-pre-2000", dt.datetime(1999, 12, 31, 23, 59, 59, 999999), "timestamp"),
    ("timestamptz-utc", dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "timestamptz"),
    ("timestamptz-offset", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))), "timestamptz"),
    ("timedelta", dt.timedelta(days=1, seconds=2, microseconds=3), "interval"),
    ("timedelta-negative", dt.timedelta(days=-3, seconds=5, microseconds=7), "interval"),
    ("timedelta-zero", dt.timedelta(0), "interval"),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678"), "uuid"),
    ("jsonb", Jsonb({"a": [1, 2.5, None], "b": "x"}), "jsonb"),
    ("jsonb-scalar", Jsonb("str"), "jsonb"),
    ("json", Json({"a": 1}), "json"),
    ("json-mixed", Json({"z": [0.1, -0.0, 1e-7, 2.5e300, None, True], "a": "é ☃ 𝄞 \" \\", "n": {"": []}}), "json"),
    ("json-big-int", Json({"big": 123456789012345678901234567890, "u64": 18446744073709551615}), "json"),
    ("ipv4", ipaddress.ip_address("1.2.3.4"), "inet"),
    ("ipv6", ipaddress.ip_address("::1"), "inet"),
    ("ipv4-interface", ipaddress.ip_interface("1.2.3.4/24"), "inet"),
    ("ipv6-interface", ipaddress.ip_interface("2001:db8::1/64"), "inet"),
    ("ipv4-network", ipaddress.ip_network("10.0.0.0/8"), "cidr"),
    ("ipv6-network", ipaddress.ip_network("2001:db8::/32"), "cidr"),
    ("range-int", Range(1, 10), "int4range"),
    ("range-int-closed", Range(1, 10, "[]"), "int4range"),
    ("range-int8-unbounded-lower", Range(None, 10, "(]"), "int8range"),
    ("range-empty", Range(empty=True), "int4range"),
    ("range-unbounded", Range(None, None), "int4range"),
    ("range-num", Range(Decimal("1.5"), None, "[]"), "numrange"),
    ("range-date", Range(dt.date(2024, 1, 1), dt.date(2024, 2, 1)), "daterange"),
    ("range-tstz", Range(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 2, 1, tzinfo=UTC)), "tstzrange"),
    # Naive datetime ranges are sent as tstzrange (Django's DjangoRangeDumper does the same
    # with psycopg), so `::tsrange` would be a tstzrange→tsrange cast the server refuses.
    ("range-naive-datetimes", Range(dt.datetime(2024, 1, 1), None), "tstzrange"),
    ("array-int", [1, 2, 3], "int4[]"),
    ("array-int-2d", [[1, 2], [3, 4]], "int4[]"),
    ("array-int-2d-nulls", [[1, None], [None, 4]], "int8[]"),
    ("array-int-3d", [[[1]], [[2]]], "int4[]"),
    ("array-text-special", ["a", "b,c", 'q"', "", None, "NULL", "x y", "{}", "back\\slash", "it's"], "text[]"),
    ("array-text-2d", [["a", "b"], ["c,", None]], "text[]"),
    ("array-empty", [], "int4[]"),
    ("array-only-null", [None], "text[]"),
    ("array-numeric", [Decimal("1.5"), None, Decimal("NaN"), Decimal("-Infinity")], "numeric[]"),
    ("array-float", [1.5, float("nan"), float("inf"), 1e300, -0.0], "float8[]"),
    ("array-bool", [True, False, None], "bool[]"),
    ("array-date", [dt.date(2024, 1, 1), None], "date[]"),
    ("array-timestamptz", [dt.datetime(2020, 1, 1, tzinfo=UTC)], "timestamptz[]"),
    ("array-interval", [dt.timedelta(hours=1), dt.timedelta(days=-1)], "interval[]"),
    ("array-uuid", [uuid.UUID(int=5), None], "uuid[]"),
    ("array-jsonb", [Jsonb({"a": 1}), Jsonb([1, "x"]), None], "jsonb[]"),
    ("array-inet", [ipaddress.ip_address("1.2.3.4"), ipaddress.ip_interface("::1/64")], "inet[]"),
    ("array-bytea", [b"ab", b"\x00"], "bytea[]"),
    ("array-bigint", [1, 2**40], "int8[]"),
    ("array-beyond-int8", [1, 2**64], "numeric[]"),
    ("array-Int2", [Int2(1), Int2(2)], "int2[]"),
    ("array-Float4", [Float4(1.1)], "float4[]"),
]

# Cases where "what type would the server infer?" is meaningful (no cast).
INFER = [
    (i, v)
    for i, v, _ in PARAMS
    if not (isinstance(v, float) and math.isnan(v)) and i not in ("none-text",)
]


@pytest.mark.parametrize("value,cast", [(v, c) for _, v, c in PARAMS], ids=[i for i, _, _ in PARAMS])
def test_param_cast_round_trip(ours, ref, value, cast):
    sql = f"SELECT %s::{cast}"
    if isinstance(value, int) and value == -(2**63):
        # Stock writes ` -9223372036854775808::int8`: the cast binds before the minus, and
        # 9223372036854775808 is out of int8's range. The value itself is fine here.
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            q_ref(ref, sql, [value])
        assert q_ours(ours, sql, [value]) == [(value,)]
        return
    if isinstance(value, float) and value == 0 and math.copysign(1, value) < 0:
        # Stock writes ` -0.0::float8`, a minus applied to 0.0::float8: -0.0. Here -0.0 goes
        # as the numeric stock's bare literal is (no negative zero there), then to float8: 0.0.
        # Stored in a float column, both give 0.0 (stock's bare ` -0.0` is numeric too).
        assert q_ref(ref, sql, [value]) == q_ours(ours, sql, [value]) == [(0.0,)]
        return
    check_both(ours, ref, sql, [value])


def outcome(run, conn, sql, params):
    """Rows, or the class of the error raised (same class = same server-side inference)."""
    try:
        return run(conn, sql, params)
    except psycopg.Error as e:
        return type(e)


@pytest.mark.parametrize("value", [v for _, v in INFER], ids=[i for i, _ in INFER])
def test_param_uncast_and_inferred_type(ours, ref, value):
    # The value the server hands back for a bare %s, and the type it inferred for it.
    check_both(ours, ref, "SELECT %s", [value])
    # Values sent untyped ("unknown": str, None, int ranges, str lists, []) let the server
    # infer from context; pg_typeof() gives none, so both drivers get the same
    # IndeterminateDatatype there, which is the same answer.
    sql = "SELECT pg_typeof(%s)::text"
    got, want = outcome(q_ours, ours, sql, [value]), outcome(q_ref, ref, sql, [value])
    assert same(got, want), f"ours {got!r}, psycopg {want!r}"


def test_param_types_expected(ours):
    # The inferred types themselves (contract §6), independent of psycopg. Numbers are
    # typed as the server types the bare literal Django's default cursor sends (psycopg's
    # ClientCursor writes 5 and 1.5 bare, wrappers included), not by psycopg's server-side
    # rule (smallest int type, float8).
    expect = [
        (True, "boolean"),
        (1, "integer"),
        (70000, "integer"),
        (2**40, "bigint"),
        (2**63, "numeric"),
        (Int2(1), "integer"),
        (Int4(1), "integer"),
        (Int8(1), "integer"),
        (Int8(2**40), "bigint"),
        (1.5, "numeric"),
        (Float4(1.5), "numeric"),
        (float("inf"), "double precision"),
        (Decimal("1.5"), "numeric"),
        (b"x", "bytea"),
        (dt.date(2020, 1, 1), "date"),
        (dt.time(1, 2), "time without time zone"),
        (dt.time(1, 2, tzinfo=UTC), "time with time zone"),
        (dt.datetime(2020, 1, 1), "timestamp without time zone"),
        (dt.datetime(2020, 1, 1, tzinfo=UTC), "timestamp with time zone"),
        (dt.timedelta(1), "interval"),
        (uuid.uuid4(), "uuid"),
        (Jsonb({}), "jsonb"),
        (Json({}), "json"),
        (ipaddress.ip_address("1.2.3.4"), "inet"),
        (ipaddress.ip_network("10.0.0.0/8"), "cidr"),
        (Range(Decimal(1), Decimal(2)), "numrange"),
        (Range(dt.date(2020, 1, 1), None), "daterange"),
        # Django's DjangoRangeDumper: naive datetime ranges go as tstzrange.
        (Range(dt.datetime(2020, 1, 1), None), "tstzrange"),
        (Range(dt.datetime(2020, 1, 1, tzinfo=UTC), None), "tstzrange"),
        ([1, 2], "smallint[]"),
        ([1, 2**40], "bigint[]"),
        ([[1.5]], "double precision[]"),
        ([uuid.uuid4()], "uuid[]"),
    ]
    for value, typname in expect:
        assert q_ours(ours, "SELECT pg_typeof(%s)::text", [value]) == [(typname,)], value
    # str (and lists of str) are untyped: the server picks the type from the context; where
    # there is none (an "any" argument), the statement goes with literals, as stock's does.
    for value in ["x", ["a", "b"], None]:
        assert q_ours(ours, "SELECT pg_typeof(%s)::text", [value]) == [("unknown",)], value
    assert q_ours(ours, "SELECT pg_typeof(%s::text || %s)::text", ["a", "b"]) == [("text",)]
    assert q_ours(ours, "SELECT 2 = ANY(%s)", [["1", "2"]]) == [(True,)]  # {1,2} read as int[]
    assert q_ours(ours, "SELECT '2020-01-01'::date < %s", ["2020-01-02"]) == [(True,)]  # read as date


def test_mixed_naive_and_aware_in_one_array_keeps_offsets(ours, ref):
    # One aware element makes the array timestamptz[]: otherwise its offset would be
    # silently dropped. Naive elements are then read in the session zone (UTC here),
    # which is what psycopg does too.
    value = [dt.datetime(2020, 1, 1, 12), dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))]
    rows = check_both(ours, ref, "SELECT %s", [value])
    assert rows[0][0][1] == dt.datetime(2020, 1, 1, 10, tzinfo=UTC)
    times = [dt.time(1, 2), dt.time(3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2)))]
    (row,) = q_ours(ours, "SELECT %s, pg_typeof(%s)::text", [times, times])
    assert row[1] == "time with time zone[]"
    assert row[0][1] == dt.time(3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def test_hstore_param_and_result(ours, ref):
    value = {"a": "1", "b": None, 'q"k': "v,=>\\", "": "", "ü": "😀"}
    check_both(ours, ref, "SELECT %s::hstore", [value])
    check_both(ours, ref, "SELECT %s", [value])
    check_both(ours, ref, "SELECT pg_typeof(%s)::text", [value])
    check_both(ours, ref, "SELECT %s::hstore", [{}])
    (row,) = q_ours(ours, "SELECT 'a=>1, b=>NULL'::hstore")
    assert row == ({"a": "1", "b": None},)
    check_both(ours, ref, "SELECT ARRAY['a=>1'::hstore, NULL]")


def test_dict_without_hstore_registration_is_refused(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        with pytest.raises(dbapi.ProgrammingError, match="dict"):
            c.cursor().execute("SELECT %s", [{"a": "b"}])
    finally:
        c.close()


def test_citext_and_citext_array(ours, ref):
    check_both(ours, ref, "SELECT %s::citext", ["AbC"])
    check_both(ours, ref, "SELECT 'AbC'::citext = %s", ["aBc"])
    check_both(ours, ref, "SELECT %s::citext[]", [["A", "b", None, ""]])
    check_both(ours, ref, "SELECT '{A,\"b c\",NULL}'::citext[]")


def test_citext_array_without_registration_is_still_a_list(ours, pg_conninfo):
    # Contract §5: citext[] → list of str. psycopg needs TypeInfo.register() for that
    # (without it '{A,b}' comes back as a str); the driver knows array types by itself.
    with psycopg.connect(pg_conninfo) as plain:
        assert plain.execute("SELECT '{A,b}'::citext[]").fetchone() == ("{A,b}",)
    assert q_ours(ours, "SELECT '{A,b}'::citext[]") == [(["A", "b"],)]


def test_jsonb_custom_dumps(ours, ref):
    compact = lambda o: json.dumps(o, separators=(",", ":"))  # noqa: E731
    value = Jsonb({"a": 1, "b": [1, 2]}, dumps=compact)
    check_both(ours, ref, "SELECT %s::text", [value])
    check_both(ours, ref, "SELECT %s", [value])
    calls = []

    def spy(o):
        calls.append(o)
        return json.dumps({"wrapped": o})

    assert q_ours(ours, "SELECT %s", [Jsonb([1], dumps=spy)]) == [('{"wrapped": [1]}',)]
    assert calls == [[1]]
    # A dumps returning bytes is accepted too.
    check_both(ours, ref, "SELECT %s::text", [Jsonb({"x": 1}, dumps=lambda o: b'{"x": 2}')])
    check_both(ours, ref, "SELECT %s::text", [Json({"a": 1}, dumps=compact)])


def test_unnest_bulk_insert_shape(ours, ref):
    # Django's bulk_create on PostgreSQL: one list parameter per column, cast to an array.
    sql = "SELECT * FROM UNNEST((%s)::integer[], (%s)::text[], (%s)::timestamptz[], (%s)::numeric[])"
    params = [
        [1, 2, None],
        ["a", None, "c,d"],
        [dt.datetime(2020, 1, 1, tzinfo=UTC), None, dt.datetime(2021, 6, 1, 12, tzinfo=UTC)],
        [Decimal("1.5"), Decimal("NaN"), None],
    ]
    rows = check_both(ours, ref, sql, params)
    assert len(rows) == 3


def test_table_round_trip(ours, ref):
    """INSERT with parameters into typed columns, SELECT back, compare with psycopg."""
    cols = {
        "b": ("bool", True),
        "i2": ("int2", 12),
        "i8": ("int8", -(2**62)),
        "n": ("numeric(30,10)", Decimal("12345678901234567890.0123456789")),
        "f4": ("float4", 1.1),
        "f8": ("float8", 2.5),
        "t": ("text", "x\ny"),
        "vc": ("varchar(10)", "abc"),
        "bp": ("char(5)", "ab"),  # comes back blank-padded
        "ba": ("bytea", b"\x00\xff"),
        "d": ("date", dt.date(2020, 2, 29)),
        "tm": ("time", dt.time(23, 59, 59, 999999)),
        "ts": ("timestamp", dt.datetime(2020, 2, 29, 1, 2, 3)),
        "tz": ("timestamptz", dt.datetime(2020, 2, 29, 1, 2, 3, tzinfo=UTC)),
        "iv": ("interval", dt.timedelta(days=40, seconds=5)),
        "u": ("uuid", uuid.UUID(int=2**100)),
        "j": ("json", Json({"k": [1, None]})),
        "jb": ("jsonb", Jsonb({"k": [1, None]})),
        "ip": ("inet", ipaddress.ip_address("192.168.0.1")),
        "cn": ("cidr", ipaddress.ip_network("192.168.0.0/16")),
        "ai": ("int4[]", [[1, 2], [3, None]]),
        "at": ("text[]", ["a", "", None, 'x"y']),
        "r": ("int4range", Range(1, 5)),
        "h": ("hstore", {"k": "v", "n": None}),
        "ci": ("citext", "MiXeD"),
    }
    ddl = ", ".join(f"{name} {typ}" for name, (typ, _) in cols.items())
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    values = [v for _, v in cols.values()]
    cur = ours.cursor()
    cur.execute(f"CREATE TEMP TABLE rt ({ddl})")
    cur.execute(f"INSERT INTO rt ({names}) VALUES ({marks})", values)
    cur.execute(f"INSERT INTO rt ({names}) VALUES ({marks})", [None] * len(cols))
    cur.execute(f"SELECT {names} FROM rt")
    got = cur.fetchall()
    cur.execute("DROP TABLE rt")
    cur.close()
    ref.execute(f"CREATE TEMP TABLE rt ({ddl})")
    ref.execute(f"INSERT INTO rt ({names}) VALUES ({marks})", values)
    ref.execute(f"INSERT INTO rt ({names}) VALUES ({marks})", [None] * len(cols))
    want = ref.execute(f"SELECT {names} FROM rt").fetchall()
    ref.execute("DROP TABLE rt")
    for i, name in enumerate(cols):
        assert_same(got[0][i], want[0][i], name)
        assert got[1][i] is None and want[1][i] is None
    assert got[0][list(cols).index("bp")] == "ab   "
    assert got[0][list(cols).index("f4")] == 1.1


def test_int_wrappers_go_as_stock_writes_them(ours, ref):
    # Django's default cursor writes an Int2/Int4/Int8 bare, like any int: the server types
    # it by its value. (psycopg's server-side binding packs Int2(40000) and wraps it.)
    for value in [Int2(40000), Int4(2**31), Int8(5), Int2(-5)]:
        check_both(ours, ref, "SELECT %s, %s + %s", [value, value, value])


# Raw SQL that stock serves, with the values as stock types them: literals.
RAW = [
    ("int-arithmetic", "SELECT %s * %s, %s + %s", [300, 300, 30000, 30000]),
    ("int-in-smallint-context", "SELECT %s::int2 * %s", [200, 200]),
    ("float-arithmetic", "SELECT %s * 3, %s", [0.1, 1.5]),
    ("decimal-integral", "SELECT %s / 2, %s / 2, %s, %s", [Decimal("5"), Decimal("5.0"), Decimal("-0"), Decimal("1E+2")]),
    ("optional-filter-none", "SELECT count(*) FROM generate_series(1, 3) g WHERE (%(q)s IS NULL OR g = %(q)s)", {"q": None}),
    ("optional-filter-str", "SELECT count(*) FROM (VALUES ('a'), ('b')) v(t) WHERE (%(q)s IS NULL OR t = %(q)s)", {"q": "a"}),
    ("is-not-null", "SELECT %s IS NOT NULL, %s ISNULL", ["x", None]),
    ("case-when-null", "SELECT CASE WHEN %s IS NULL THEN 'n' ELSE 'y' END", [None]),
    ("concat", "SELECT concat(%s, %s, 1), concat_ws('-', %s, %s)", ["a", "b", "c", None]),
    ("format", "SELECT format('%%s=%%s', %s, %s)", ["k", "v"]),
    ("json-build", "SELECT jsonb_build_object('k', %s, 'n', %s), json_build_array(%s, (%s))", ["v", None, "w", 2]),
    ("num-nulls", "SELECT num_nulls(%s, %s), num_nonnulls(%s)", [None, "a", None]),
    ("pg-typeof", "SELECT pg_typeof(%s)::text, pg_typeof(%s)::text, pg_typeof(%s)::text", ["x", None, 5]),
    ("row-constructors", "SELECT (%s, %s), ROW (%s, 1), row(%s), ((%s), 2)", ["a", None, None, "b", "c"]),
    ("row-to-json", "SELECT row_to_json(row(%s, %s))::text", ["a", None]),
    ("count-any", "SELECT count(%s), count(DISTINCT %s)", ["a", None]),
    ("object-agg", "SELECT json_object_agg(%s, %s)::text, jsonb_object_agg(%s, %s)::text", ["k", "v", "k", None]),
    ("hypothetical-rank", "SELECT rank(%s) WITHIN GROUP (ORDER BY t) FROM (VALUES ('a'), ('c')) v(t)", ["b"]),
    ("distinct-from-null", "SELECT %s IS NOT DISTINCT FROM NULL, NULL IS DISTINCT FROM %s", ["a", None]),
    ("xml-content", "SELECT xmlelement(name x, %s)::text, xmlforest(%s AS y)::text", ["a", "b"]),
    # Rows of typed columns and subqueries were served before: they must still be.
    ("row-compare-typed", "SELECT count(*) FROM (VALUES ('a', 1)) v(t, n) WHERE (t, n::text) = (%s, %s)", ["a", "1"]),
    ("subquery-columns", "SELECT * FROM (SELECT %s, %s) s", ["a", None]),
    # Where the grammar takes only a constant: `$n` is a syntax error there.
    ("typed-constants", "SELECT interval %s, date %s, timestamp with time zone %s, double precision %s",
     ["1 day", "2020-01-02", "2020-01-02 03:04+00", "1.5"]),
    ("interval-arithmetic", "SELECT timestamp '2020-01-02' - interval %s", ["36 hours"]),
    ("extract-field", "SELECT extract(%s FROM timestamp '2020-03-04'), EXTRACT ( %s from date '2020-03-04')",
     ["month", "day"]),
    # Tuples are composite values (psycopg's tuple dumper): quoting, NULL, nesting.
    ("tuple-record", "SELECT %s::text, (%s::text)", [(1, "a b", None, "", 'q"\\'), ((1, (2, "x")),)]),
    ("tuple-composite", "SELECT (%s::pg_namespace).nspname", [(99, "a ns", 10, None)]),
    # Equal str values in a grouping statement: stock's literals make the expressions equal.
    ("group-by-repeated-str", "SELECT %s || t, count(*) FROM (VALUES ('a'), ('a'), ('b')) v(t) GROUP BY %s || t ORDER BY 1",
     ["p", "p"]),
    ("group-by-date-trunc", "SELECT date_trunc(%s, d)::date, count(*) FROM (VALUES (date '2020-01-05'), "
     "(date '2020-01-20'), (date '2020-02-01')) v(d) GROUP BY date_trunc(%s, d) ORDER BY 1", ["month", "month"]),
    ("distinct-order-by-repeated", "SELECT DISTINCT %s || t FROM (VALUES ('b'), ('a'), ('b')) v(t) ORDER BY %s || t",
     ["p", "p"]),
    # ORDER BY / GROUP BY an int: stock's literal is a column position.
    ("order-by-position", "SELECT t, -n FROM (VALUES ('a', 1), ('c', 3), ('b', 2)) v(t, n) ORDER BY %s", [2]),
    ("group-by-position", "SELECT n %% 2, count(*) FROM generate_series(1, 5) n GROUP BY %s ORDER BY 1", [1]),
]


class Colour(enum.Enum):
    RED = 1
    GREEN = "g"


def test_plain_enum_members_go_as_their_names(ours, ref):
    check_both(ours, ref, "SELECT %s, %s, %s::text = 'RED'", [Colour.RED, Colour.GREEN, Colour.RED])


MIXED_LISTS = [
    ("int-float", [1, 2.5]),
    ("date-datetime", [dt.date(2020, 1, 1), dt.datetime(2020, 1, 1, 12, 30)]),
    ("bytes-str", [b"a", "b"]),
    ("bool-int", [True, 1]),
    ("uuid-str", [uuid.UUID(int=1), "x"]),
    ("nested-int-float", [[1, 2], [3, 4.5]]),
]


@pytest.mark.parametrize("value", [v for _, v in MIXED_LISTS], ids=[i for i, _ in MIXED_LISTS])
def test_lists_of_mixed_types_are_refused_as_stock_refuses_them(ours, ref, value):
    # The server would read every element as the first one's type (a datetime after a date
    # lost its time) or reject the array; psycopg refuses the list before sending it.
    with pytest.raises(psycopg.DataError, match="mixed types"):
        q_ref(ref, "SELECT %s", [value])
    ours.autocommit = False
    try:
        with pytest.raises(psycopg.DataError, match=r"cannot dump lists of mixed types.*parameter #1"):
            q_ours(ours, "SELECT %s", [value])
        assert q_ours(ours, "SELECT 1") == [(1,)]  # refused before sending: nothing aborted
    finally:
        ours.rollback()
        ours.autocommit = True


def test_lists_of_one_type_in_several_python_types(ours, ref):
    naive, aware = dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    for value in ([1, 2**40, None], [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1")], [[1], [2**40]]):
        check_both(ours, ref, "SELECT %s", [value])
    assert q_ours(ours, "SELECT %s", [[naive, aware]]) == [([naive.replace(tzinfo=dt.timezone.utc), aware],)]


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "transaction"])
@pytest.mark.parametrize("sql,params", [(s, p) for _, s, p in RAW], ids=[i for i, _, _ in RAW])
def test_raw_sql_stock_serves(ours, ref, sql, params, in_transaction):
    # Bound with psycopg's server-side types, the int2 ones overflowed (smallint out of
    # range) and the untyped ones failed (could not determine data type of parameter $1).
    if in_transaction:
        ours.autocommit = ref.autocommit = False
    try:
        check_both(ours, ref, sql, params)
        if in_transaction:  # and the transaction is still usable
            check_both(ours, ref, "SELECT 1", None)
    finally:
        if in_transaction:
            ours.rollback()
            ref.rollback()
            ours.autocommit = ref.autocommit = True


def run_ours(conn, sql, params=None):
    """Executes; the rows, if the statement returns any."""
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None
    finally:
        cur.close()


# Utility statements take no `$n` parameters (PostgreSQL binds them only in queries, DML,
# DECLARE, EXPLAIN and CALL): stock renders their values as literals, and so must we.
# (id, setup, statement, params, what to read back); {t} is a fresh name.
UTILITY = [
    ("set", None, "SET statement_timeout = %s", ["5s"], "SHOW statement_timeout"),
    ("set-list", None, "SET search_path TO %s, %s", ["pg_catalog", "public"], "SHOW search_path"),
    ("set-time-zone", None, "SET TIME ZONE %s", ["Asia/Kolkata"], "SHOW TimeZone"),
    ("notify", None, "NOTIFY {t}, %s", ["payload"], "SELECT 1"),
    ("comment", "CREATE TABLE {t} (a int)", "COMMENT ON TABLE {t} IS %s", ["it's"], "SELECT obj_description('{t}'::regclass)"),
    ("column-default", None, "CREATE TABLE {t} (a text DEFAULT %s, b int DEFAULT %s)", ["x", 7],
     "INSERT INTO {t} DEFAULT VALUES RETURNING a, b"),
    ("alter-default", "CREATE TABLE {t} (a int)", "ALTER TABLE {t} ALTER a SET DEFAULT %s", [42],
     "INSERT INTO {t} DEFAULT VALUES RETURNING a"),
    ("view", None, "CREATE VIEW {t} AS SELECT %s::int AS a, %s AS b", [5, "x"], "SELECT * FROM {t}"),
    ("table-as", None, "CREATE TABLE {t} AS SELECT %s::int AS a, %s::text AS b", [5, "x"], "SELECT * FROM {t}"),
    ("sequence", None, "CREATE SEQUENCE {t} START %s", [3], "SELECT nextval('{t}')"),
    ("execute", "PREPARE {t} (int, text) AS SELECT $1 + 1, $2", "EXECUTE {t}(%s, %s)", [5, "x"], None),
]


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "transaction"])
@pytest.mark.parametrize("setup,sql,params,check", [c[1:] for c in UTILITY], ids=[c[0] for c in UTILITY])
def test_utility_statements_take_values_as_literals(ours, ref, setup, sql, params, check, in_transaction):
    seen = []
    for conn, run in ((ours, run_ours), (ref, run_ref)):
        t = f"util_{uuid.uuid4().hex[:8]}"
        conn.autocommit = not in_transaction
        try:
            if setup:
                run(conn, setup.format(t=t))
            got = run(conn, sql.format(t=t), params)
            seen.append(run(conn, check.format(t=t)) if check else got)
        finally:
            if in_transaction:
                conn.rollback()
            conn.autocommit = True
            run(conn, "RESET ALL")
            run(conn, "SELECT set_config('TimeZone', 'UTC', false)")
            for kind in ("VIEW", "TABLE", "SEQUENCE"):
                if kind in sql or kind in (setup or ""):
                    run(conn, f"DROP {kind} IF EXISTS {t}")
            if "PREPARE" in (setup or ""):
                run(conn, f"DEALLOCATE {t}")
    assert seen[0] == seen[1] and seen[0] is not None, seen


def run_ref(conn, sql, params=None):
    cur = conn.execute(sql, params)
    return cur.fetchall() if cur.description else None


def hidden_null_test():
    # A comment between the value and IS NULL hides the null test from classify: bound, the
    # server cannot type $1 ("could not determine data type", 42P18); stock's literal is fine.
    return f"SELECT %s /* {uuid.uuid4()} */ IS NULL, %s", [None, "a"]


def test_untyped_context_unknown_to_classify_is_learned(ours, ref):
    # Outside a transaction the failed statement runs again with literals, as stock sends
    # it, and the text goes that way from then on, in transactions too.
    sql, params = hidden_null_test()
    check_both(ours, ref, sql, params)
    ours.autocommit = ref.autocommit = False
    try:
        check_both(ours, ref, sql, params)
        check_both(ours, ref, "SELECT 1", None)
    finally:
        ours.rollback()
        ref.rollback()
        ours.autocommit = ref.autocommit = True


@pytest.mark.parametrize("opened_by", ["first-statement", "earlier-statement", "explicit-begin"])
def test_untyped_context_unknown_to_classify_inside_a_transaction(ours, ref, opened_by):
    # Inside a transaction the first run of a statement with untyped values goes in a
    # savepoint: 42P18 is undone, the statement runs with literals, and the transaction
    # keeps what it did before.
    sql, params = hidden_null_test()
    table = f"untyped_tx_{uuid.uuid4().hex[:8]}"
    run_ours(ours, f"CREATE TABLE {table} (v text)")
    try:
        if opened_by == "explicit-begin":
            run_ours(ours, "BEGIN")
        else:
            ours.autocommit = False
        if opened_by != "first-statement":
            q_ours(ours, f"INSERT INTO {table} VALUES (%s) RETURNING v", ["kept"])
        assert q_ours(ours, sql, params) == q_ref(ref, sql, params) == [(True, "a")]
        if opened_by != "first-statement":
            assert q_ours(ours, f"SELECT v FROM {table}") == [("kept",)]
        # Nothing is left open: the guard's savepoint was released.
        with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
            run_ours(ours, "RELEASE SAVEPOINT _rustpg_untyped")
    finally:
        ours.rollback()
        ours.autocommit = True
        run_ours(ours, f"DROP TABLE {table}")


@pytest.mark.parametrize("autocommit", [True, False])
def test_untyped_context_unknown_to_classify_in_executemany(ours, ref, autocommit):
    table = f"untyped_many_{uuid.uuid4().hex[:8]}"
    run_ours(ours, f"CREATE TABLE {table} (is_null bool, v text)")
    insert = f"INSERT INTO {table} SELECT %s /* {uuid.uuid4()} */ IS NULL, %s"
    rows = [[None, "a"], ["b", None]]
    try:
        ours.autocommit = autocommit
        ours.cursor().executemany(insert, rows)
        ref.cursor().executemany(insert, rows)  # stock: literals
        got = run_ours(ours, f"SELECT * FROM {table} ORDER BY v NULLS LAST")
        assert got == [(True, "a"), (True, "a"), (False, None), (False, None)]
    finally:
        ours.rollback()
        ours.autocommit = True
        run_ours(ours, f"DROP TABLE {table}")


def test_untyped_guard_only_where_inference_is_unsure(ours, ref):
    # `relname = %s`: the server infers the value's type from the column, so the first run
    # in a transaction is not guarded; `%s::text IS NULL`'s value stands where that is not
    # known (a cast of unknown), so it is (the session's last statement is the release).
    pid = ours.info.backend_pid
    last = lambda: ref.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]
    inferred = f"SELECT count(*) FROM pg_class WHERE relname = %s /* {uuid.uuid4()} */"
    unsure = f"SELECT %s::text IS NULL /* {uuid.uuid4()} */"
    ours.autocommit = False
    try:
        assert run_ours(ours, inferred, ["pg_class"]) == [(1,)]
        assert last() == inferred.replace("%s", "$1")
        assert run_ours(ours, unsure, ["x"]) == [(False,)]
        assert last() == "RELEASE SAVEPOINT _rustpg_untyped"
        # Seen to parse: its next run in a transaction goes unguarded.
        assert run_ours(ours, unsure, ["y"]) == [(False,)]
        assert last() == unsure.replace("%s", "$1")
    finally:
        ours.rollback()
        ours.autocommit = True


# Placeholders that only psycopg's reading finds (it reads `%s` everywhere, inside quotes,
# comments and dollar quotes too): when the values fit only that reading, the statement
# goes as stock renders it.
EVERYWHERE = [
    ("do-block", "DO $$BEGIN PERFORM %s; IF %s THEN PERFORM 1; END IF; END$$", [1, True]),
    ("line-comment", "SELECT %s -- %s", ["a", "b"]),
    ("block-comment", "SELECT %s /* %s */", ["a", "b"]),
    ("quoted-alias", 'SELECT 1 AS "%s"', ["x"]),
    ("dollar-quoted", "SELECT $$%s$$", ["x"]),
]


@pytest.mark.parametrize("sql,params", [c[1:] for c in EVERYWHERE], ids=[c[0] for c in EVERYWHERE])
def test_placeholders_only_psycopg_reads_render_as_stock(ours, ref, sql, params):
    assert run_ours(ours, sql, params) == run_ref(ref, sql, params)
    assert ours.cursor().mogrify(sql, params) == ref.cursor().mogrify(sql, params)


def test_placeholders_fitting_neither_reading_still_fail(ours):
    with pytest.raises(psycopg.ProgrammingError, match="2 placeholders but 3 parameters"):
        run_ours(ours, "SELECT %s, %s", [1, 2, 3])


def test_untyped_guard_leaves_other_errors_as_stock(ours, ref):
    # A guarded first run that fails for another reason aborts the transaction exactly as
    # the statement does with stock; an outer savepoint still undoes it.
    table = f"untyped_err_{uuid.uuid4().hex[:8]}"
    run_ours(ours, f"CREATE TABLE {table} (v text)")
    bad = f"SELECT %s::int /* {uuid.uuid4()} */"
    try:
        for conn, run in ((ours, run_ours), (ref, run_ref)):
            conn.autocommit = False
            try:
                run(conn, f"INSERT INTO {table} VALUES ('before') RETURNING v")
                run(conn, "SAVEPOINT outer_sp")
                with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="abc"):
                    run(conn, bad, ["abc"])
                with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                    run(conn, "SELECT 1")
                run(conn, "ROLLBACK TO SAVEPOINT outer_sp")
                assert run(conn, f"SELECT v FROM {table}") == [("before",)]
                with pytest.raises(psycopg.errors.InvalidTextRepresentation):
                    run(conn, bad, ["abc"])
            finally:
                conn.rollback()
                conn.autocommit = True
    finally:
        run_ours(ours, f"DROP TABLE {table}")


def test_binary_constructor(ours):
    assert dbapi.Binary(memoryview(b"a\x00")) == b"a\x00"
    assert q_ours(ours, "SELECT %s", [dbapi.Binary(bytearray(b"\x01\x00"))]) == [(b"\x01\x00",)]


def test_sequences_other_than_list_are_params(ours):
    assert q_ours(ours, "SELECT %s, %s", (1, "a")) == [(1, "a")]
    assert q_ours(ours, "SELECT %s, %s", (x for x in [1, "a"])) == [(1, "a")]


# ---------------------------------------------------------------- values coming back (§5)

# (id, literal, type): `SELECT '<literal>'::<type>` decoded by the driver vs psycopg.
RESULTS = [
    ("int2", "-5", "int2"),
    ("int4", "2147483647", "int4"),
    ("int8", "-9223372036854775808", "int8"),
    ("oid", "4294967295", "oid"),
    ("float4-1.1", "1.1", "float4"),
    ("float4-max", "3.4028235e38", "float4"),
    ("float4-denormal", "1e-45", "float4"),
    ("float4-nan", "NaN", "float4"),
    ("float4-ninf", "-Infinity", "float4"),
    ("float8-0.1", "0.1", "float8"),
    ("float8-inf", "Infinity", "float8"),
    ("float8-negzero", "-0", "float8"),
    ("numeric-nan", "NaN", "numeric"),
    ("numeric-inf", "Infinity", "numeric"),
    ("numeric-ninf", "-Infinity", "numeric"),
    ("numeric-zero-scale", "0.00", "numeric"),
    ("numeric-trailing-zeros", "-12.3400", "numeric"),
    ("numeric-huge", "123456789012345678901234567890.123456789012345678901234567890", "numeric"),
    ("numeric-1e100", "1e100", "numeric"),
    ("numeric-tiny", "0.000000000000000000001", "numeric"),
    ("numeric-10000", "10000", "numeric"),
    ("numeric-typmod", "3.14159", "numeric(5,2)"),
    ("text", "abc", "text"),
    ("varchar", "abc", "varchar(5)"),
    ("bpchar", "ab", "char(5)"),
    ("name", "x", "name"),
    ("char", "a", '"char"'),
    ("citext", "AbC", "citext"),
    ("bool-t", "t", "bool"),
    ("bool-f", "f", "bool"),
    ("bytea", "\\x0001ff00", "bytea"),
    ("bytea-empty", "", "bytea"),
    ("date", "2024-02-29", "date"),
    ("date-min", "0001-01-01", "date"),
    ("date-max", "9999-12-31", "date"),
    ("time", "12:34:56.789", "time"),
    ("timetz", "12:00+05:30", "timetz"),
    ("timestamp", "2024-01-02 03:04:05.000006", "timestamp"),
    ("timestamp-pre-2000", "1999-12-31 23:59:59.999999", "timestamp"),
    ("timestamptz", "2024-01-02 03:04:05+02", "timestamptz"),
    ("timestamptz-1900", "1900-01-01 00:00:00+00", "timestamptz"),
    ("interval-ymd", "1 year 2 mons 3 days 04:05:06", "interval"),
    ("interval-neg-year", "-1 year", "interval"),
    ("interval-13-months", "13 months", "interval"),
    ("interval-mixed-sign", "-1 day +01:00", "interval"),
    ("interval-mon-minus-sec", "1 mon -1 sec", "interval"),
    ("interval-neg-sec", "-00:00:01", "interval"),
    ("uuid", "12345678-1234-5678-1234-567812345678", "uuid"),
    ("json", '{"a": [1, 2.5, null], "b": "x"}', "json"),
    ("json-scalar", "3", "json"),
    # jsonb is str (JSONField.from_db_value parses it), in the server's normalised text.
    ("jsonb", '{"b": 1, "a": [1, 2.5, null]}', "jsonb"),
    ("jsonb-string", '"str"', "jsonb"),
    ("jsonb-null", "null", "jsonb"),
    ("inet-v4", "1.2.3.4", "inet"),
    ("inet-v4-prefix", "1.2.3.4/24", "inet"),
    ("cidr-v4", "10.0.0.0/8", "cidr"),
    ("inet-v6", "::1", "inet"),
    ("inet-v6-prefix", "fe80::1/64", "inet"),
    ("cidr-v6", "2001:db8::/32", "cidr"),
    ("inet-v4-mapped", "::ffff:1.2.3.4", "inet"),
    ("inet-v4-compatible", "::1.2.3.4", "inet"),
    ("inet-v4-compatible-prefix", "::1.2.3.4/100", "inet"),
    ("cidr-v4-compatible", "::0.1.0.0", "cidr"),
    ("inet-v6-two-zero-runs", "1:0:0:2:0:0:3:4", "inet"),
    ("inet-v6-all-zero", "::", "inet"),
    ("macaddr", "08:00:2b:01:02:03", "macaddr"),
    ("macaddr8", "08:00:2b:01:02:03:04:05", "macaddr8"),
    ("bit", "101", "bit(3)"),
    ("varbit", "10101", "varbit"),
    ("money", "1234.56", "money"),
    ("money-negative", "-0.05", "money"),
    ("tsvector", "a fat cat", "tsvector"),
    ("tsvector-weights", "'it''s':1A b:2,3B", "tsvector"),
    ("int4range", "[1,10)", "int4range"),
    ("int4range-closed-normalised", "[1,10]", "int4range"),
    ("int4range-empty", "empty", "int4range"),
    ("int4range-unbounded-lower", "(,5]", "int4range"),
    ("int8range-unbounded", "(,)", "int8range"),
    ("numrange", "[1.5,)", "numrange"),
    ("numrange-empty", "empty", "numrange"),
    ("daterange", "[2024-01-01,2024-02-01)", "daterange"),
    ("tsrange", "[2024-01-01 00:00,2024-02-01 00:00)", "tsrange"),
    ("tstzrange", "[2024-01-01 00:00+00,2024-02-01 00:00+00)", "tstzrange"),
    ("int4-array", "{1,2,3}", "int4[]"),
    ("int4-array-2d", "{{1,2},{3,4}}", "int4[]"),
    ("int4-array-3d", "{{{1}},{{2}}}", "int4[]"),
    ("int4-array-lower-bound", "[2:3]={1,2}", "int4[]"),
    ("int4-array-empty", "{}", "int4[]"),
    ("int4-array-null", "{NULL}", "int4[]"),
    ("text-array-special", '{"a","b,c","q\\"","",NULL,"NULL","x y","it\'s"}', "text[]"),
    ("varchar-array", "{a,b}", "varchar(3)[]"),
    ("bpchar-array", "{x}", "char(3)[]"),
    ("bool-array", "{t,f,NULL}", "bool[]"),
    ("float4-array", "{1.1,NaN}", "float4[]"),
    ("numeric-array", "{1.5,NaN,NULL,Infinity}", "numeric[]"),
    ("date-array", "{2024-01-01,NULL}", "date[]"),
    ("timestamptz-array", '{"2020-01-01 00:00+00"}', "timestamptz[]"),
    ("interval-array", '{"1 day","1 year"}', "interval[]"),
    ("uuid-array", "{12345678-1234-5678-1234-567812345678}", "uuid[]"),
    ("jsonb-array", '{"{\\"a\\": 1}","[1, 2]"}', "jsonb[]"),
    ("json-array", '{"{\\"a\\": 1}"}', "json[]"),
    # inet[] → list of str (contract §5).
    ("inet-array", "{1.2.3.4,::1/64,::1.2.3.4}", "inet[]"),
    ("cidr-array", "{10.0.0.0/8}", "cidr[]"),
    ("bytea-array", "{\\\\x00ff,NULL}", "bytea[]"),
    ("range-array", '{"[1,2)",empty}', "int4range[]"),
    ("citext-array", "{A,b}", "citext[]"),
    ("hstore", '"a"=>"1", "b"=>NULL', "hstore"),
    # Types whose binary form is not their text: psycopg reads them as text (str).
    ("tsquery", "fat & rat", "tsquery"),
    ("tsquery-nested", "a & (b | !c:*AB) & 'it''s'", "tsquery"),
    ("tsquery-phrase", "(a <-> b) <2> (c | d)", "tsquery"),
    ("tsquery-not-of-and", "!(a & b)", "tsquery"),
    ("tsquery-phrase-right-nested", "a <-> (b <-> c)", "tsquery"),
    ("tsquery-empty", "", "tsquery"),
    ("pg_lsn", "16/B374D848", "pg_lsn"),
    ("pg_lsn-zero", "0/0", "pg_lsn"),
    ("xid8", "18446744073709551615", "xid8"),
    ("tsquery-array", "{fat&rat,a}", "tsquery[]"),
]


@pytest.mark.parametrize("literal,typ", [(lit, t) for _, lit, t in RESULTS], ids=[i for i, _, _ in RESULTS])
def test_result_decoding(ours, ref, literal, typ):
    quoted = literal.replace("'", "''")
    check_both(ours, ref, f"SELECT '{quoted}'::{typ}, NULL::{typ}")


def test_result_decoding_expected_values(ours):
    # A few exact answers, independent of psycopg (contract §5).
    def one(sql):
        return q_ours(ours, sql)[0][0]

    assert repr(one("SELECT 1.1::float4")) == "1.1"
    assert one("SELECT 'NaN'::numeric").is_nan()
    assert one("SELECT '-Infinity'::numeric") == Decimal("-Infinity")
    huge = "9" * 100 + "." + "1" * 50
    assert str(one(f"SELECT '{huge}'::numeric")) == huge  # no 28-digit context limit
    assert one("SELECT 2::int8 ^ 70::numeric") == Decimal(2**70)
    assert one("SELECT '1 year 2 mons 3 days 04:05:06'::interval") == dt.timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6)
    assert one("SELECT '-13 months'::interval") == dt.timedelta(days=-(365 + 30))
    assert one("SELECT '{\"b\": 1,  \"a\": 2}'::jsonb") == '{"a": 2, "b": 1}'
    assert one("SELECT '{\"a\": [1, null]}'::json") == {"a": [1, None]}
    assert one("SELECT '::1.2.3.4'::inet") == "::1.2.3.4"
    assert one("SELECT '10.1.0.0/16'::cidr") == "10.1.0.0/16"
    assert one("SELECT 'ab'::char(4)") == "ab  "
    assert one("SELECT '\\x00ff'::bytea") == b"\x00\xff"
    assert one("SELECT '[1,10]'::int4range") == Range(1, 11, "[)")
    assert one("SELECT 'empty'::numrange") == Range(empty=True)
    assert one("SELECT '{{1,2},{3,NULL}}'::int[]") == [[1, 2], [3, None]]
    assert one("SELECT '2024-01-02 03:04:05+02'::timestamptz") == dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)


def test_search_query_values(ours, ref):
    # contrib.postgres.search: an annotated SearchQuery / to_tsquery() comes back as text.
    check_both(ours, ref, "SELECT to_tsquery('english', %s), plainto_tsquery(%s), websearch_to_tsquery(%s)", ["cats & !dogs", "The fat rats", '"sad cat" or -mouse'])
    check_both(ours, ref, "SELECT phraseto_tsquery('english', %s), to_tsquery(%s) && to_tsquery(%s)", ["fat cats ate", "a|b", "c"])


def test_uuid_result_is_a_real_uuid(ours):
    value = q_ours(ours, "SELECT '12345678-1234-5678-1234-567812345678'::uuid")[0][0]
    assert type(value) is uuid.UUID
    assert value == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert hash(value) == hash(uuid.UUID("12345678-1234-5678-1234-567812345678"))
    assert str(value) == "12345678-1234-5678-1234-567812345678"
    v4 = uuid.uuid4()
    back = q_ours(ours, "SELECT %s", [v4])[0][0]
    assert (back, back.version, back.hex, back.int) == (v4, 4, v4.hex, v4.int)


def test_out_of_python_range_values_are_data_errors(ours):
    for sql in ["SELECT 'infinity'::date", "SELECT '-infinity'::timestamp", "SELECT 'infinity'::timestamptz"]:
        with pytest.raises(dbapi.DataError):
            q_ours(ours, sql)


# ---------------------------------------------------------------- time zones


def test_timestamptz_follows_session_time_zone(dsn_params, pg_conninfo):
    """After SET TIME ZONE, timestamptz comes back aware in the new zone (contract §5).

    The comparison is with plain psycopg, not with Django's adapters template: that one
    replaces the tzinfo with the one Django configured (UTC) without converting, which is
    right only because Django keeps the session in that zone; the contract asks for the
    connection's zone.
    """
    from zoneinfo import ZoneInfo

    c = dbapi.connect(**dsn_params)
    c.autocommit = True
    plain = psycopg.connect(pg_conninfo, autocommit=True)
    try:
        for zone in ["America/New_York", "Asia/Kolkata", "Europe/London", "UTC"]:
            q_ours(c, "SELECT 1")
            c.cursor().execute(f"SET TIME ZONE '{zone}'")
            plain.execute(f"SET TIME ZONE '{zone}'")
            assert c.info.parameter_status("TimeZone") == zone
            for sql, params in [
                ("SELECT '2024-07-01 12:00:00+00'::timestamptz", None),
                ("SELECT '2024-01-15 12:00:00+00'::timestamptz", None),
                ("SELECT '2024-03-10 07:30+00'::timestamptz", None),  # New York DST gap day
                ("SELECT %s::timestamptz", [dt.datetime(2024, 1, 1, tzinfo=UTC)]),
                ("SELECT %s::timestamptz", [dt.datetime(2024, 1, 1)]),  # naive: read in the zone
                ("SELECT %s", [[dt.datetime(2020, 6, 1, tzinfo=UTC)]]),
                ("SELECT '[2024-01-01 00:00+00,)'::tstzrange", None),
            ]:
                got, want = q_ours(c, sql, params), plain.execute(sql, params).fetchall()
                assert_same(got, want, f"{zone}: {sql}")
                # Same tzinfo as psycopg picks: ZoneInfo(zone), or datetime.timezone.utc for "UTC".
                first = got[0][0]
                first = first[0] if isinstance(first, list) else first.lower if isinstance(first, Range) else first
                assert first.tzinfo == (UTC if zone == "UTC" else ZoneInfo(zone)), (zone, first)
        # The zone in the driver's hands is what the server reported, not a client guess.
        c.cursor().execute("SELECT set_config('TimeZone', 'Asia/Tokyo', false)")
        assert c.info.parameter_status("TimeZone") == "Asia/Tokyo"
        value = q_ours(c, "SELECT '2024-01-01 00:00+00'::timestamptz")[0][0]
        assert (value.hour, value.utcoffset()) == (9, dt.timedelta(hours=9))
    finally:
        plain.close()
        c.close()


@pytest.mark.parametrize(
    "zone,literal",
    [
        ("America/New_York", "9999-12-31 20:00:00-05"),  # the UTC instant is in year 10000
        ("America/New_York", "9999-12-31 23:59:59.999999-05"),
        ("Asia/Tokyo", "0001-01-01 05:00:00+09"),  # the UTC instant is in year 0
    ],
)
def test_timestamptz_at_the_edges_of_pythons_range(dsn_params, pg_conninfo, zone, literal):
    # The local time is representable although the UTC instant is not. Compared with
    # psycopg's binary loader, which answers in ZoneInfo(zone) like the driver (its text
    # loader answers the same instant with a fixed-offset tzinfo).
    c = dbapi.connect(**dsn_params)
    c.autocommit = True
    plain = psycopg.connect(pg_conninfo, autocommit=True)
    try:
        q_ours(c, "SELECT 1")
        c.cursor().execute(f"SET TIME ZONE '{zone}'")
        plain.execute(f"SET TIME ZONE '{zone}'")
        sql = f"SELECT '{literal}'::timestamptz"
        got = q_ours(c, sql)
        want = plain.execute(sql, binary=True).fetchall()
        assert_same(got, want, sql)
        assert got[0][0].tzinfo == want[0][0].tzinfo
    finally:
        plain.close()
        c.close()


def test_set_timestamptz_tzinfo_hooks(dsn_params):
    # What the backend uses for Django's USE_TZ / TIME_ZONE settings.
    c = dbapi.connect(**dsn_params)
    c.autocommit = True
    try:
        c.cursor().execute("SET TIME ZONE 'Asia/Kolkata'")
        c.set_timestamptz_tzinfo(naive=True)
        assert q_ours(c, "SELECT '2024-01-01 00:00+00'::timestamptz") == [(dt.datetime(2024, 1, 1, 5, 30),)]
        c.set_timestamptz_tzinfo(UTC)
        # Converted to the session zone, then labelled: as Django's BaseTzLoader does.
        assert q_ours(c, "SELECT '2024-01-01 00:00+00'::timestamptz")[0][0].tzinfo is UTC
        c.set_timestamptz_tzinfo(None)
        assert q_ours(c, "SELECT '2024-01-01 00:00+00'::timestamptz")[0][0].utcoffset() == dt.timedelta(hours=5, minutes=30)
    finally:
        c.close()


def test_json_is_decoded_as_json_loads_decodes_its_text(ours):
    texts = ['{"b": 1e400, "a": -0, "c": 1.0E+2}', '[1, 2, 3', '"\\ud800"', '[' * 200 + ']' * 200, '  7 ']
    with ours.cursor() as cur:
        for text in texts[:1] + texts[3:]:
            cur.execute("SELECT %s::json", [text])
            (value,) = cur.fetchone()
            assert value == json.loads(text) and repr(value) == repr(json.loads(text)), text
        with pytest.raises(dbapi.DataError):
            cur.execute("SELECT %s::json", [texts[1]])  # invalid JSON never reaches the decoder


def names_and_types(cur):
    return [(d.name, d.type_code) for d in cur.description]


@pytest.mark.parametrize("shape", ["SELECT %s", "SELECT * FROM (SELECT (%s), %s AS aliased) s", "SELECT 1 AS one, %s FOR UPDATE"])
@pytest.mark.parametrize("value", [v for _, v, _ in PARAMS], ids=[i for i, _, _ in PARAMS])
def test_unaliased_value_column_is_named_as_stock(ours, ref, value, shape):
    """An unaliased bound value's column has the name stock's literal gives it
    (`'2020-01-02'::date` is `date`; a str, number or NULL is `?column?`): it was always
    `?column?` here."""
    params = [value] * shape.count("%s")
    cur = ours.cursor()
    cur.execute(shape, params)
    theirs = ref.execute(shape, params)
    assert names_and_types(cur) == names_and_types(theirs)
    assert_same(cur.fetchall(), theirs.fetchall(), shape)
