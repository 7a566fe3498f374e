"""cursor.description columns (driver contract §4) compared with psycopg's, field by field,
including ``type_display`` (psycopg 3.2+), which Django 6.1's introspection reads."""
import os

import pytest

COLUMNS = [
    "varchar(30)", "varchar", "numeric(5,2)", "numeric", "numeric(10,0)", "timestamptz",
    "timestamp(3)", "timestamp(0) with time zone", "time(0)", "timetz(2)", "interval", "interval(2)",
    "interval day to second", "interval minute to second(1)", "bit(3)", "varbit(5)",
    "char(4)", '"char"', "text", "int2", "int4", "int8", "float4", "float8", "bool",
    "uuid", "jsonb", "json", "bytea", "date", "inet", "cidr", "macaddr", "int8range",
    "tstzrange", "int4[]", "varchar(10)[]", "numeric(4,1)[]", "text[]", "oid", "xml",
    "money", "tsvector",
]


def _describe(cursor, hstore=False):
    cursor.execute(
        "CREATE TEMP TABLE t_desc ("
        + ", ".join(f"c{i} {t}" for i, t in enumerate(COLUMNS))
        + (", h hstore" if hstore else "")
        + ")"
    )
    cursor.execute("SELECT *, 1::regclass AS r, NULL AS n, 'x'::name AS nm FROM t_desc")
    desc = [
        (c.name, c.type_code, c.type_display, c.display_size, c.internal_size, c.precision, c.scale, c.null_ok, len(c))
        for c in cursor.description
    ]
    cursor.execute("DROP TABLE t_desc")
    return desc


def test_description_matches_psycopg(conn, pg):
    ours = _describe(conn.cursor())
    theirs = _describe(pg.cursor())
    assert [c[2] for c in ours][:3] == ["varchar(30)", "varchar", "numeric(5,2)"]
    assert ours == theirs


def test_type_display_unknown_type_is_the_oid(conn, pg):
    """A type neither builtin nor registered on the connection shows its OID, as psycopg."""
    cur, pcur = conn.cursor(), pg.cursor()
    for c in (cur, pcur):
        c.execute("CREATE TYPE pg_temp.mood AS ENUM ('sad', 'ok')")
        c.execute("SELECT 'ok'::pg_temp.mood AS m")
    assert cur.description[0].type_display == str(cur.description[0].type_code)
    assert pcur.description[0].type_display == str(pcur.description[0].type_code)


def test_type_display_hstore_when_registered(conn):
    """Django registers hstore on each connection (contrib.postgres); introspection then
    reads type_display == "hstore"."""
    cur = conn.cursor()
    try:
        cur.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    except Exception as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"hstore unavailable (Debian package postgresql-contrib): {e}")
    cur.execute("SELECT oid FROM pg_type WHERE typname = 'hstore'")
    oid = cur.fetchone()[0]
    cur.execute("SELECT ''::hstore AS h")
    assert cur.description[0].type_display == str(oid)  # not registered yet: psycopg says so too
    conn.register_hstore(oid)
    cur.execute("SELECT ''::hstore AS h")
    assert cur.description[0].type_display == "hstore"
    assert tuple(cur.description[0])[:2] == ("h", oid)


def test_internal_size_is_the_row_descriptions_type_size(conn, pg):
    """psycopg reports the row description's type size (pg_type.typlen, None when negative)
    for every type: the geometric types, tid, pg_lsn, name, extension types alike."""
    sql = ("SELECT point(1, 2), '{1,2,3}'::line, '[(1,2),(3,4)]'::lseg, '(3,4),(1,2)'::box, "
           "'((1,2),(3,4))'::path, '((1,2),(3,4),(5,6))'::polygon, '<(1,2),3>'::circle, '(1,2)'::tid, "
           "'0/16B3748'::pg_lsn, 'n'::name, '9'::xid8, 'postgres=r/postgres'::aclitem, now()::time, "
           "'a'::\"char\", 1::int2, '1.5'::numeric(4,1), ARRAY[point(1, 2)]")
    ours = conn.cursor()
    ours.execute(sql)
    theirs = pg.execute(sql)
    sizes = [c.internal_size for c in ours.description]
    assert sizes == [c.internal_size for c in theirs.description]
    assert sizes[:8] == [16, 24, 32, 32, None, None, 24, 6]
