#!/usr/bin/env python3
"""Steady-state cost of per-column result formats (issue 11), django_rustpg vs the stock
backend (psycopg 3) in the same process and run, through Django's cursors:

- a 100,000-row fetch, all columns of types with binary decoders, and the same with one
  column of a type read as text (point: psycopg has no loader, both give str);
- a primary-key fetch (one row, run 3,000 times), with and without such a column;
- the first run of a new statement text (Describe + run) against later runs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python benches/result_formats.py
"""
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "django_backend"))
import django  # noqa: E402
from django.conf import settings  # noqa: E402

u = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
common = {"NAME": u.path.lstrip("/") or "postgres", "HOST": u.hostname, "PORT": str(u.port or 5432),
          "USER": u.username or "postgres", "PASSWORD": u.password or ""}
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", **common},
               "rustpg": {"ENGINE": "django_rustpg", **common}},
    INSTALLED_APPS=["django.contrib.postgres"], USE_TZ=True, TIME_ZONE="UTC",
)
django.setup()
from django.db import connections  # noqa: E402

ENGINES = {"django_rustpg": "rustpg", "psycopg 3": "default"}
BIG = "SELECT g, g::text, g * 1.5::float8, now(){extra} FROM generate_series(1, 100000) g"
PK = "SELECT id, name, created{extra} FROM bench_rf WHERE id = %s"


def best_of(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main():
    with connections["default"].cursor() as c:
        c.execute("DROP TABLE IF EXISTS bench_rf")
        c.execute("CREATE TABLE bench_rf (id serial PRIMARY KEY, name text, created timestamptz DEFAULT now(), p point)")
        c.execute("INSERT INTO bench_rf (name, p) SELECT 'n' || g, point(g, g) FROM generate_series(1, 5000) g")
    rows = []
    for label, alias in ENGINES.items():
        cur = connections[alias].cursor()
        for extra_label, extra_big, extra_pk in (("binary columns", "", ""), ("+ one text column (point)", ", point(g, g)", ", p")):
            big = BIG.format(extra=extra_big)
            cur.execute(big)
            cur.fetchall()  # warm: describe + caches
            t_big = best_of(lambda: (cur.execute(big), cur.fetchall()), 5)
            pk = PK.format(extra=extra_pk)
            cur.execute(pk, [1])
            cur.fetchall()

            def pk_loop():
                for i in range(1, 3001):
                    cur.execute(pk, [i])
                    cur.fetchall()

            t_pk = best_of(pk_loop, 3)
            rows.append((label, extra_label, t_big[0] * 1000, t_pk[0] / 3000 * 1e6))
        # A statement text never seen before: Describe (rustpg), then the run.
        n = 200

        def fresh():
            for i in range(n):
                cur.execute(f"SELECT id, name, {i} AS k FROM bench_rf WHERE id = %s", [1])
                cur.fetchall()

        t_first = best_of(fresh, 1)[0] / n * 1e6
        t_again = best_of(fresh, 3)[0] / n * 1e6
        rows.append((label, "new statement text: first run / later runs (us)", t_first, t_again))
        cur.close()
    with connections["default"].cursor() as c:
        c.execute("DROP TABLE bench_rf")
    print(f"{'engine':<14} {'case':<48} {'100k fetch ms':>14} {'pk fetch us':>12}")
    for label, case, a, b in rows:
        print(f"{label:<14} {case:<48} {a:>14.1f} {b:>12.1f}")
    extension_types()


def extension_types():
    """100k values of extension types (text format: the driver's str vs psycopg's), in a
    scratch database with ltree, citext and PostGIS when they are installed."""
    import psycopg

    base = {k: v for k, v in common.items()}
    dsn = f"host={base['HOST']} port={base['PORT']} user={base['USER']} dbname={base['NAME']}"
    with psycopg.connect(dsn, autocommit=True) as c:
        have = {r[0] for r in c.execute("SELECT name FROM pg_available_extensions")}
        if not {"ltree", "citext", "postgis"} <= have:
            print("extension types: skipped (needs postgresql-contrib and postgresql-15-postgis-3)")
            return
        c.execute("DROP DATABASE IF EXISTS rustpg_bench_ext")
        c.execute("CREATE DATABASE rustpg_bench_ext")
    try:
        with psycopg.connect(dsn.replace(f"dbname={base['NAME']}", "dbname=rustpg_bench_ext"), autocommit=True) as c:
            c.execute("CREATE EXTENSION ltree; CREATE EXTENSION citext; CREATE EXTENSION postgis")
        for alias in ENGINES.values():
            connections[alias].close()
            connections[alias].settings_dict["NAME"] = "rustpg_bench_ext"
        cases = {
            "ltree": "SELECT ('Top.n' || g)::ltree FROM generate_series(1, 100000) g",
            "citext": "SELECT ('Name ' || g)::citext FROM generate_series(1, 100000) g",
            "geometry (hex EWKB)": "SELECT ST_SetSRID(ST_MakePoint(g, g), 4326) FROM generate_series(1, 100000) g",
        }
        print(f"{'type':<22} " + " ".join(f"{label + ' ms':>18}" for label in ENGINES))
        for name, sql in cases.items():
            out = []
            for alias in ENGINES.values():
                with connections[alias].cursor() as cur:
                    cur.execute(sql)
                    first = cur.fetchall()
                    out.append(best_of(lambda: (cur.execute(sql), cur.fetchall()), 5)[0] * 1000)
            print(f"{name:<22} " + " ".join(f"{t:>18.1f}" for t in out))
        for alias in ENGINES.values():
            connections[alias].close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("DROP DATABASE IF EXISTS rustpg_bench_ext WITH (FORCE)")


if __name__ == "__main__":
    main()
