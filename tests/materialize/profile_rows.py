"""Per-row cost of loading model instances: decode only vs native build vs Django's path.

    cd /work/main && .venv/bin/python tests/materialize/profile_rows.py [--rows 20000] [--repeat 7]

Uses the test settings (mat_settings) on a database of its own
(``django_rustpg_materialize_profile``, dropped afterwards) holding ``--rows`` rows of
mat_app.ProfileRow (10 fields + id: varchar, int4, int8, numeric, float8, bool, date,
timestamptz, uuid, text with some NULLs). For each mode it prints the median and best of
``--repeat`` timed runs (after one warm-up) in µs per row:

* decode only     raw DB-API cursor (no Django wrapper): execute + fetchall() of the SQL the
                  queryset sends, i.e. wire → Python tuples;
* native build    list(qs) on alias "default" (materialize on: rows built in Rust);
* Django path     list(qs) on alias "plain" (materialize off: Django's ModelIterable on the
                  same driver's tuples);
* stock           the same two on alias "stock" (Django's psycopg 3 backend), for reference;
* values()/values_list() on each alias, for reference.

The modes run round-robin, ``--repeat`` rounds after a warm-up; wall time (median, best)
and this process's CPU time (median; includes the driver's threads, excludes the server)
are printed. On a loaded machine trust "best" and "cpu" more than the wall median.

Not a test: nothing here is collected by pytest.
"""
import argparse
import gc
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("MATERIALIZE_TEST_DB", "django_rustpg_materialize_profile")
os.environ["DJANGO_SETTINGS_MODULE"] = "mat_settings"


def setup_database(rows):
    import psycopg
    from psycopg import sql

    import mat_settings

    s = mat_settings.server()
    kw = dict(user=s["USER"], password=s["PASSWORD"] or None, host=s["HOST"], port=s["PORT"], autocommit=True)
    name = mat_settings.DB_NAME
    with psycopg.connect(dbname="postgres", **kw) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    from django.db import connections

    from mat_app.models import ProfileRow

    with connections["default"].schema_editor() as editor:
        editor.create_model(ProfileRow)
    with connections["stock"].cursor() as c:
        c.execute(
            "INSERT INTO mat_app_profilerow (name, number, big, amount, ratio, flag, day, moment, uid, note) "
            "SELECT 'row ' || g, g, g::bigint * 1000003, (g %% 100000) / 7.0, g / 3.0, g %% 2 = 0, "
            "DATE '2000-01-01' + (g %% 10000), TIMESTAMPTZ '2020-01-01 00:00+00' + g * INTERVAL '1 minute 1.5 second', "
            "md5(g::text)::uuid, CASE WHEN g %% 10 = 0 THEN NULL ELSE repeat('x', g %% 50) END "
            "FROM generate_series(1, %s) g",
            [rows],
        )
        c.execute("ANALYZE mat_app_profilerow")


def drop_database():
    import psycopg
    from psycopg import sql

    import mat_settings
    from django.db import connections

    connections.close_all()
    try:
        from django_rustpg import dbapi

        dbapi.close_all_pools()
    except Exception:
        pass
    s = mat_settings.server()
    with psycopg.connect(dbname="postgres", user=s["USER"], password=s["PASSWORD"] or None, host=s["HOST"],
                         port=s["PORT"], autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(mat_settings.DB_NAME)))


def measure(modes, repeat):
    """Round-robin over the modes (so load changes hit them alike); per mode the median and
    best wall time and the median CPU time of this process (all its threads)."""
    for _, fn in modes:
        fn()  # warm-up (connection, type caches)
    wall = {label: [] for label, _ in modes}
    cpu = {label: [] for label, _ in modes}
    for _ in range(repeat):
        for label, fn in modes:
            gc.collect()  # (explicit collections run even with --no-gc)
            c0, t0 = time.process_time(), time.perf_counter()
            result = fn()
            t1, c1 = time.perf_counter(), time.process_time()
            del result
            wall[label].append(t1 - t0)
            cpu[label].append(c1 - c0)
    return {label: (statistics.median(wall[label]), min(wall[label]), statistics.median(cpu[label])) for label, _ in modes}


def gc_during(fn):
    """Collections per generation (count, ms) while fn() runs, and the tracked objects it adds
    (natively built instances with a materialized ``__dict__`` carry one more each)."""
    stats, start = {}, [0.0]

    def cb(phase, info):
        if phase == "start":
            start[0] = time.perf_counter()
        else:
            st = stats.setdefault(info["generation"], [0, 0.0])
            st[0] += 1
            st[1] += time.perf_counter() - start[0]

    gc.enable()
    gc.collect()
    before = len(gc.get_objects())
    gc.callbacks.append(cb)
    try:
        result = fn()
    finally:
        gc.callbacks.remove(cb)
    added = len(gc.get_objects()) - before
    del result
    per_gen = ", ".join(f"gen{g}: {n} ({t * 1e3:.1f} ms)" for g, (n, t) in sorted(stats.items()))
    return f"{per_gen or 'none'};  +{added} tracked objects"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic GC while timing")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connections

    from mat_app.models import ProfileRow

    setup_database(args.rows)
    try:
        qs = ProfileRow.objects.all()
        sql, params = qs.query.get_compiler("default").as_sql()

        def decode_only(alias):
            conn = connections[alias]
            conn.ensure_connection()

            def run():
                cur = conn.connection.cursor()
                cur.execute(sql, params)
                rows = cur.fetchall()
                cur.close()
                assert len(rows) == args.rows
                return rows

            return run

        def models(alias):
            def run():
                objs = list(ProfileRow.objects.using(alias).all())
                assert len(objs) == args.rows
                return objs

            return run

        def values(alias):
            return lambda: list(ProfileRow.objects.using(alias).values())

        def values_list(alias):
            return lambda: list(ProfileRow.objects.using(alias).values_list())

        modes = [
            ("decode only (raw cursor fetchall)", decode_only("default")),
            ("native build   list(qs)  materialize on", models("default")),
            ("Django path    list(qs)  materialize off", models("plain")),
            ("stock psycopg3 decode only (raw fetchall)", decode_only("stock")),
            ("stock psycopg3 list(qs)", models("stock")),
            ("native         values()", values("default")),
            ("Django path    values()", values("plain")),
            ("stock psycopg3 values()", values("stock")),
            ("native         values_list()", values_list("default")),
            ("Django path    values_list()", values_list("plain")),
            ("stock psycopg3 values_list()", values_list("stock")),
        ]
        n = args.rows
        print(f"{n} rows of ProfileRow (10 fields + id); {args.repeat} rounds; µs per row: "
              f"wall median (best) and CPU median of this process{'; GC disabled' if args.no_gc else ''}")
        if args.no_gc:
            gc.disable()
        results = measure(modes, args.repeat)
        gc.enable()
        for label, _ in modes:
            med, best, cpu = results[label]
            print(f"  {label:45s} wall {med / n * 1e6:6.2f} ({best / n * 1e6:6.2f})   cpu {cpu / n * 1e6:6.2f}")
        key = {"dec": "decode only (raw cursor fetchall)", "nat": "native build   list(qs)  materialize on",
               "dj": "Django path    list(qs)  materialize off", "stock": "stock psycopg3 list(qs)"}
        print()
        for i, what in ((0, "wall median"), (1, "wall best"), (2, "cpu median")):
            dec, nat, dj, stock = (results[key[k]][i] for k in ("dec", "nat", "dj", "stock"))
            print(f"  [{what}] building on top of decoding: native {(nat - dec) / n * 1e6:.2f} µs/row, "
                  f"Django {(dj - dec) / n * 1e6:.2f} µs/row; list(qs) native vs Django path {dj / nat:.2f}x, "
                  f"vs stock psycopg 3 {stock / nat:.2f}x")
        print()
        print("  cyclic GC during one list(qs) (collections per generation, time), and tracked objects left:")
        for label, alias in (("native", "default"), ("Django path", "plain"), ("stock", "stock")):
            print(f"    {label:12s} {gc_during(models(alias))}")
    finally:
        if args.keep:
            print(f"(kept database {os.environ['MATERIALIZE_TEST_DB']})")
        else:
            drop_database()


if __name__ == "__main__":
    main()
