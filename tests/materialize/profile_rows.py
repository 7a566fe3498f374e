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


def timed(fn, repeat):
    fn()  # warm-up (connection, type caches, plans)
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
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
        print(f"{n} rows of ProfileRow (10 fields + id), median / best of {args.repeat} runs, µs per row")
        results = {}
        for label, fn in modes:
            med, best = timed(fn, args.repeat)
            results[label] = med
            print(f"  {label:45s} {med / n * 1e6:7.2f}   (best {best / n * 1e6:6.2f})   {med * 1e3:8.1f} ms")
        dec = results["decode only (raw cursor fetchall)"]
        nat = results["native build   list(qs)  materialize on"]
        dj = results["Django path    list(qs)  materialize off"]
        stock = results["stock psycopg3 list(qs)"]
        print()
        print(f"  building instances on top of decoding: native {(nat - dec) / n * 1e6:.2f} µs/row, "
              f"Django {(dj - dec) / n * 1e6:.2f} µs/row")
        print(f"  list(qs): native is {dj / nat:.2f}x faster than Django's path on the same driver, "
              f"{stock / nat:.2f}x faster than the stock psycopg 3 backend")
    finally:
        if args.keep:
            print(f"(kept database {os.environ['MATERIALIZE_TEST_DB']})")
        else:
            drop_database()


if __name__ == "__main__":
    main()
