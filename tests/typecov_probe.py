"""Run by tests/test_type_coverage.py in a process of its own (it configures Django).

For every type in pg_type of a database with contrib extensions and PostGIS (plus a user
enum, composite and domains): select a sample value, an array of it and NULL through
django_rustpg and through the stock backend (psycopg in Django's configuration), read it
back as a parameter, and print the differences as JSON.

argv: dbname host port user
"""
import json
import sys

import django
from django.conf import settings

DB, HOST, PORT, USER = sys.argv[1:5]
common = {"NAME": DB, "HOST": HOST, "PORT": PORT, "USER": USER}
settings.configure(
    DATABASES={
        "default": {"ENGINE": "django.db.backends.postgresql", **common},
        "ours": {"ENGINE": "django_rustpg", **common},
    },
    INSTALLED_APPS=["django.contrib.postgres"],
    USE_TZ=True,
    TIME_ZONE="UTC",
)
django.setup()
from django.db import connections  # noqa: E402

# SQL expressions of a sample value, by type name (types without input get NULL only).
SAMPLES = {
    "bool": "true", "bytea": r"'\x0102'::bytea", "char": "'a'::\"char\"", "name": "'nm'::name",
    "int8": "9::int8", "int2": "2::int2", "int4": "4", "int2vector": "'1 2'::int2vector",
    "regproc": "'now'::regproc", "text": "'t'::text", "oid": "5::oid", "tid": "'(1,2)'::tid",
    "xid": "'7'::xid", "cid": "'3'::cid", "oidvector": "'1 2'::oidvector", "json": "'{\"a\": 1}'::json",
    "xml": "'<a/>'::xml", "point": "'(1,2)'::point", "lseg": "'[(1,2),(3,4)]'::lseg",
    "path": "'((1,2),(3,4))'::path", "box": "'(3,4),(1,2)'::box", "polygon": "'((1,2),(3,4),(5,6))'::polygon",
    "line": "'{1,2,3}'::line", "float4": "1.1::float4", "float8": "2.2::float8",
    "circle": "'<(1,2),3>'::circle", "money": "12.34::money", "macaddr": "'08:00:2b:01:02:03'::macaddr",
    "inet": "'1.2.3.4'::inet", "cidr": "'10.0.0.0/8'::cidr", "macaddr8": "'08:00:2b:01:02:03:04:05'::macaddr8",
    "aclitem": "'postgres=arwdDxt/postgres'::aclitem", "bpchar": "'ab'::bpchar", "varchar": "'v'::varchar",
    "date": "'2020-01-02'::date", "time": "'01:02:03'::time", "timestamp": "'2020-01-02 03:04:05'::timestamp",
    "timestamptz": "'2020-01-02 03:04:05+00'::timestamptz", "interval": "'1 day 02:03:04'::interval",
    "timetz": "'01:02:03+02'::timetz", "bit": "B'1'::bit", "varbit": "B'101'::varbit",
    "numeric": "1.50::numeric", "refcursor": "'c'::refcursor", "regprocedure": "'now()'::regprocedure",
    "regoper": "(SELECT oid::regoper FROM pg_operator WHERE oprname = '||/' LIMIT 1)",
    "regoperator": "'+(int4,int4)'::regoperator", "regclass": "'pg_class'::regclass",
    "regtype": "'int4'::regtype", "regrole": "'postgres'::regrole", "regnamespace": "'public'::regnamespace",
    "regconfig": "'english'::regconfig", "regdictionary": "'simple'::regdictionary",
    "regcollation": "'\"C\"'::regcollation", "uuid": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "pg_lsn": "'0/16B3748'::pg_lsn", "tsvector": "'a:1 b:2'::tsvector", "tsquery": "'a & b'::tsquery",
    "jsonb": "'{\"a\": 1}'::jsonb", "jsonpath": "'$.a'::jsonpath", "txid_snapshot": "'10:20:10,14,15'::txid_snapshot",
    "pg_snapshot": "'10:20:10,14,15'::pg_snapshot", "int4range": "'[1,3)'::int4range",
    "numrange": "'[1.5,3)'::numrange", "tsrange": "'[2020-01-01,2020-01-02)'::tsrange",
    "tstzrange": "'[2020-01-01 00:00+00,2020-01-02 00:00+00)'::tstzrange", "daterange": "'[2020-01-01,2020-01-05)'::daterange",
    "int8range": "'[1,9)'::int8range", "int4multirange": "'{[1,3),[5,6)}'::int4multirange",
    "nummultirange": "'{[1.5,3)}'::nummultirange", "tsmultirange": "'{[2020-01-01,2020-01-02)}'::tsmultirange",
    "tstzmultirange": "'{[2020-01-01 00:00+00,2020-01-02 00:00+00)}'::tstzmultirange",
    "datemultirange": "'{[2020-01-01,2020-01-05)}'::datemultirange", "int8multirange": "'{[1,9)}'::int8multirange",
    "xid8": "'9'::xid8", "record": "ROW(1, 'a b', NULL, '', 'x\"y')",
    # extensions
    "ltree": "'A.B'::ltree", "lquery": "'*.B'::lquery", "ltxtquery": "'A & B'::ltxtquery",
    "citext": "'AbC'::citext", "hstore": "'a=>1,b=>NULL'::hstore", "cube": "'(1,2),(3,4)'::cube",
    "ean13": "'9780393040029'::ean13", "isbn": "'978-0-393-04002-9'::isbn", "isbn13": "'978-0-393-04002-9'::isbn13",
    "issn": "'1436-4522'::issn", "issn13": "'1436-4522'::issn13", "ismn": "'M-2306-7118-7'::ismn",
    "ismn13": "'M-2306-7118-7'::ismn13", "upc": "'220356483481'::upc",
    "geometry": "'SRID=4326;POINT(1 2)'::geometry", "geography": "'SRID=4326;POINT(1 2)'::geography",
    "box2d": "'BOX(1 2,3 4)'::box2d", "box3d": "'BOX3D(1 2 3,4 5 6)'::box3d",
    "spheroid": "'SPHEROID[\"WGS 84\",6378137,298.257223563]'::spheroid",
    # user types (created below)
    "tc_mood": "'sad'::tc_mood", "tc_pair": "ROW(1, 'a \"q\"')::tc_pair", "tc_dint": "5::tc_dint",
    "tc_dtext": "'dt'::tc_dtext", "tc_dmood": "'ok'::tc_dmood", "tc_dltree": "'A.C'::tc_dltree",
    "tc_dpair": "ROW(2, 'b')::tc_dpair",
    "geometry_dump": "(SELECT d FROM ST_Dump('POINT(1 2)'::geometry) d)",
    "valid_detail": "ST_IsValidDetail('POINT(1 2)'::geometry)",
}
# Round trips that must hold on both (value read → parameter → same value).
ROUND_TRIP = {"ltree", "lquery", "ltxtquery", "geometry", "geography", "citext", "cube", "hstore", "tc_mood", "tc_dltree"}


def norm(v):
    if isinstance(v, (list, tuple)):
        return [type(v).__name__, [norm(x) for x in v]]
    if isinstance(v, memoryview):
        v = bytes(v)
    return [f"{type(v).__module__}.{type(v).__qualname__}", repr(v)]


def run(alias, sql, params=None):
    c = connections[alias]
    try:
        with c.cursor() as cur:
            cur.execute(sql, params)
            return ["ok", norm(cur.fetchone()[0])], cur.fetchall if False else None
    except Exception as e:  # compared by class and message
        c.needs_rollback = False
        cause = e.__cause__ or e
        # By class only: the two drivers word some client-side errors differently.
        return ["error", type(e).__name__], None


def value(alias, sql, params=None):
    c = connections[alias]
    with c.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


setup = connections["default"]
with setup.cursor() as cur:
    cur.execute(
        "SELECT t.typname, t.typtype, t.typarray <> 0, t.typinput::text FROM pg_type t "
        "LEFT JOIN pg_class c ON c.oid = t.typrelid "
        "WHERE t.typtype IN ('b','e','c','d','r','m') AND (t.typrelid = 0 OR c.relkind = 'c') "
        "AND NOT (t.typcategory = 'A' AND t.typelem <> 0 AND t.typlen = -1) "
        "AND t.typnamespace NOT IN ('pg_toast'::regnamespace) ORDER BY t.typname"
    )
    types = cur.fetchall()

diffs = []
checked = {"types": len(types), "with_sample": 0, "null_only": [], "cases": 0}
for name, typtype, has_array, typinput in types:
    sample = SAMPLES.get(name)
    qname = '"char"' if name == "char" else name
    cases = [(f"NULL::{qname}", None)]
    if sample is not None:
        checked["with_sample"] += 1
        cases.append((sample, None))
        if has_array:
            cases.append((f"ARRAY[{sample}, NULL]", None))
    else:
        checked["null_only"].append(name)
    for expr, params in cases:
        sql = f"SELECT {expr}"
        checked["cases"] += 1
        a, _ = run("ours", sql)
        b, _ = run("default", sql)
        if a != b:
            diffs.append({"type": name, "sql": sql, "ours": a, "stock": b})
    if sample is not None and name not in ("record",):
        # Read back as a parameter: each backend with its own value.
        checked["cases"] += 1
        try:
            va = value("ours", f"SELECT {sample}")
            vb = value("default", f"SELECT {sample}")
        except Exception as e:
            diffs.append({"type": name, "sql": "read for round trip", "ours": str(e), "stock": ""})
            continue
        sql = f"SELECT (%s::{qname})::text = ({sample})::text"
        a, _ = run("ours", sql, [va])
        b, _ = run("default", sql, [vb])
        if a != b or (name in ROUND_TRIP and a != ["ok", norm(True)]):
            diffs.append({"type": name, "sql": "round trip " + sql, "ours": a, "stock": b})

print(json.dumps({"checked": checked, "diffs": diffs}))
