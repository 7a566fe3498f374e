"""Native extension-type decoders (src/codec/extension.rs): ltree/lquery/ltxtquery, citext,
PostGIS geometry/geography read in binary give exactly what psycopg gives under Django
(str of the text output; arrays as stock returns them; NULLs), and every value read goes
back as a parameter and reads the same (read -> write -> read), on both drivers."""

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.types import TypeInfo

DB = "types_exttypes"
EXTENSIONS = {"ltree": "postgresql-contrib", "citext": "postgresql-contrib", "postgis": "postgresql-15-postgis-3"}

GEOMETRIES = [
    "POINT(1 2)", "SRID=4326;POINT(1 2)", "POINT Z (1 2 3)", "POINTM(1 2 4)", "SRID=3857;POINT ZM (1 2 3 4)",
    "POINT EMPTY", "LINESTRING(0 0,1 1,2 0.5)", "SRID=4326;POLYGON((0 0,4 0,4 4,0 4,0 0),(1 1,2 1,2 2,1 1))",
    "MULTIPOINT((1 2),(3 4))", "MULTILINESTRING((0 0,1 1),(2 2,3 3))",
    "MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))",
    "GEOMETRYCOLLECTION(POINT(1 2),LINESTRING(0 0,1 1))", "GEOMETRYCOLLECTION EMPTY",
    "CIRCULARSTRING(0 0,1 1,2 0)", "COMPOUNDCURVE(CIRCULARSTRING(0 0,1 1,2 0),(2 0,3 0))",
    "CURVEPOLYGON(CIRCULARSTRING(0 0,4 0,4 4,0 4,0 0))", "POLYHEDRALSURFACE(((0 0 0,0 1 0,1 1 0,0 0 0)))",
    "TIN(((0 0 0,0 0 1,0 1 0,0 0 0)))", "TRIANGLE((0 0,0 9,9 0,0 0))",
    "SRID=4326;POINT(-71.064544 42.28787)", "POINT(1e300 -1e-300)",
]
GEOGRAPHIES = ["SRID=4326;POINT(1 2)", "POINT(-71.06 42.28)", "LINESTRING(0 0,1 1)", "POINT Z (1 2 3)",
               "POLYGON((0 0,1 0,1 1,0 0))", "MULTIPOINT EMPTY"]
SAMPLES = {
    "ltree": ["", "A", "A.B.C", "Top.Science.Astronomy_1", ".".join(["lbl"] * 100), "a" * 250],
    "lquery": ["*.B", "A.*{1,2}.C|D", "!A.B*@%", "*{2}", "Top.*.Astronomy", "A|B|C.*"],
    "ltxtquery": ["A & B", "Europe & Russia*@ & !Transportation", "(a | b) & !c", "x%"],
    "citext": ["", "AbC", "ünïcödé", 'a"b,c{}\\', "NULL", "  spaced  "],
    "geometry": GEOMETRIES,
    "geography": GEOGRAPHIES,
}


@pytest.fixture(scope="module")
def ext_db(extension_database):
    with extension_database(DB, EXTENSIONS) as params:
        with psycopg.connect(make_conninfo(**{k: v for k, v in params.items() if v is not None}), autocommit=True) as c:
            for name, values in SAMPLES.items():
                c.execute(f"CREATE TABLE t_{name} (id int PRIMARY KEY, v {name}, va {name}[])")
                for i, v in enumerate(values):
                    c.execute(f"INSERT INTO t_{name} VALUES (%s, %s::{name}, ARRAY[%s::{name}, NULL])", (i, v, v))
                c.execute(f"INSERT INTO t_{name} VALUES (%s, NULL, NULL)", (len(values),))
        yield params


@pytest.fixture
def ours(ext_db):
    from django_rustpg import dbapi

    c = dbapi.connect(**ext_db)
    c.autocommit = True
    yield c
    c.close()


@pytest.fixture
def stock(ext_db):
    """psycopg as Django configures it: citext (and its array) registered, loaded as text."""
    from psycopg.types.string import TextLoader

    c = psycopg.connect(make_conninfo(**{k: v for k, v in ext_db.items() if v is not None}), autocommit=True)
    info = TypeInfo.fetch(c, "citext")
    info.register(c)
    c.adapters.register_loader(info.oid, TextLoader)
    yield c
    c.close()


def fetch(conn, sql, params=None):
    """Rows of `sql` (None for a statement without a result), for either driver."""
    cur = conn.cursor()
    cur.execute(sql, params)
    return cur.fetchall() if cur.description else None


def typed(rows):
    """Values with their exact Python types, so '1' and 1 or a list and its text differ."""
    return [tuple((type(v), v) for v in row) for row in rows]


@pytest.mark.parametrize("name", SAMPLES)
def test_columns_arrays_and_nulls_read_as_stock(ours, stock, name):
    sql = f"SELECT id, v, va, v::text, ARRAY[v, v] FROM t_{name} ORDER BY id"
    got = fetch(ours, sql)
    assert typed(got) == typed(stock.execute(sql).fetchall())
    assert len(got) == len(SAMPLES[name]) + 1 and got[-1][1] is None
    # The value is the type's text output (not a binary form with a version byte etc.).
    assert all(r[1] == r[3] for r in got)


def test_literals_domains_and_empty_arrays_read_as_stock(ours, stock):
    stock.execute("DROP DOMAIN IF EXISTS d_path; CREATE DOMAIN d_path AS ltree")
    stock.execute("DROP DOMAIN IF EXISTS d_geom; CREATE DOMAIN d_geom AS geometry")
    sql = ("SELECT 'A.B'::d_path, 'POINT(1 2)'::d_geom, '{}'::ltree[], NULL::lquery, NULL::geometry, "
           "'SRID=4326;POINT(1 2)'::geography, '{{a.b,c},{d,NULL}}'::ltree[], '[2:3]={x,y}'::ltree[], "
           "ARRAY['AbC'::citext, NULL], 'A.*'::lquery, 'a & b'::ltxtquery, ARRAY['POINT(1 2)'::geometry]")
    assert typed(fetch(ours, sql)) == typed(stock.execute(sql).fetchall())


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip_read_write_read(ours, stock, name):
    """A value read goes back as a parameter (insert and comparison) and reads the same."""
    for conn, label in ((ours, "ours"), (stock, "stock")):
        table = f"rt_{name}_{label}"
        fetch(conn, f"DROP TABLE IF EXISTS {table}")
        fetch(conn, f"CREATE TABLE {table} AS SELECT id, v, va FROM t_{name} WITH NO DATA")
        original = fetch(conn, f"SELECT id, v, va FROM t_{name} ORDER BY id")
        for row in original:
            fetch(conn, f"INSERT INTO {table} VALUES (%s, %s, %s)", row)
        again = fetch(conn, f"SELECT id, v, va FROM {table} ORDER BY id")
        assert typed(again) == typed(original), label
        # Same meaning on the server, not only the same text back.
        same = fetch(conn, f"SELECT count(*) FROM {table} a JOIN t_{name} b USING (id) "
                           "WHERE a.v::text IS NOT DISTINCT FROM b.v::text AND a.va::text IS NOT DISTINCT FROM b.va::text")
        assert same == [(len(original),)], label
        for i, v, _ in original:
            if v is not None:
                eq = fetch(conn, f"SELECT %s::{name}::text = v::text FROM t_{name} WHERE id = %s", [v, i])
                assert eq == [(True,)], (label, v)


def test_reads_after_create_extension_in_a_new_database(dsn_params, pg_conninfo):
    """Extension OIDs differ per database: each database's are discovered, also after
    CREATE EXTENSION on a connection that already ran the same SQL."""
    from django_rustpg import dbapi

    with psycopg.connect(pg_conninfo, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB}_2 WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}_2")
    params = {**dsn_params, "dbname": f"{DB}_2"}
    conn = dbapi.connect(**params)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE x (v text)")
        cur.execute("INSERT INTO x VALUES ('A.B'), ('POINT(1 2)')")
        assert fetch(conn, "SELECT v FROM x ORDER BY v") == [("A.B",), ("POINT(1 2)",)]
        cur.execute("CREATE EXTENSION citext")  # shifts the OIDs the next extension gets
        cur.execute("CREATE EXTENSION ltree")
        cur.execute("ALTER TABLE x ALTER v TYPE ltree USING CASE WHEN v LIKE 'A%%' THEN v::ltree END")
        assert fetch(conn, "SELECT v FROM x ORDER BY v") == [("A.B",), (None,)]
        cur.execute("CREATE EXTENSION postgis")
        got = fetch(conn, "SELECT 'SRID=4326;POINT(1 2)'::geometry, 'A'::ltree, 'x'::citext")
        assert got == [("0101000020E6100000000000000000F03F0000000000000040", "A", "x")]
    finally:
        conn.close()
        with psycopg.connect(pg_conninfo, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {DB}_2 WITH (FORCE)")


def test_malformed_binary_is_a_data_error():
    from django_rustpg import _native, dbapi

    assert _native.extension_text("ltree", b"\x01A.B") == "A.B"
    assert _native.extension_text("geometry", b"\x01\xff") == "01FF"
    with pytest.raises(dbapi.DataError, match="ltree"):
        _native.extension_text("ltree", b"\x07A")
    with pytest.raises(dbapi.DataError, match="vector"):
        _native.extension_text("vector", b"\x00\x02\x00\x00\x00")
    with pytest.raises(ValueError, match="box2d"):
        _native.extension_text("box2d", b"")


@pytest.mark.parametrize("name, value", [("ltree", "A.B"), ("lquery", "*.B"), ("ltxtquery", "a & b"),
                                         ("d_path", "A.C")])
def test_column_that_became_a_text_read_extension_type(ours, stock, name, value):
    """ltree is read as text (not faster in binary); a column that became ltree under a
    remembered Describe arrives in binary once, and its native decoder gives the same text."""
    stock.execute("DROP DOMAIN IF EXISTS d_path CASCADE; CREATE DOMAIN d_path AS ltree")
    stock.execute(f"DROP TABLE IF EXISTS became; CREATE TABLE became (v text); INSERT INTO became VALUES ('{value}')")
    sql = "SELECT v FROM became"
    assert fetch(ours, sql) == [(value,)]  # described: text, asked in binary
    stock.execute(f"ALTER TABLE became ALTER v TYPE {name} USING v::{name}")
    assert fetch(ours, sql) == [(value,)]  # the remembered binary format: native decoder
    assert fetch(ours, sql) == [(value,)] == stock.execute(sql).fetchall()  # described again: text
