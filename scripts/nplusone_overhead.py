#!/usr/bin/env python3
"""Per-statement cost of N+1 detection: the same statements with no scope open (the
driver's hook is one atomic load) and inside an open ``nplusone.scope()``.

    .venv/bin/python scripts/nplusone_overhead.py [--n 4000] [--depth 40]

Statements run through Django's cursor (and the ORM) at a realistic Python stack depth
(``--depth`` extra frames, like a view under middleware). Disabled and enabled runs
alternate statement by statement (same load for both); the reported overhead is the
difference of medians, of wall time and of this thread's CPU time (the hook is CPU work
in the calling thread: CPU time isolates it from round-trip noise on a busy machine).
Uses the tests' settings (tests/nplusone/np_settings.py) and creates, then drops, its
own database (``django_rustpg_nplusone_bench``).
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "nplusone"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "np_settings")
os.environ.setdefault("NPLUSONE_TEST_DB", "django_rustpg_nplusone_bench")


def at_depth(depth, fn):
    if depth <= 0:
        return fn()
    return at_depth(depth - 1, fn)


def measure(label, run_one, n, depth):
    """Alternates disabled/enabled statement by statement inside one open scope: the
    scope's counter is switched off (the driver's hook sees no open scope: one atomic
    load) and on around single statements, so both halves share the machine's load."""
    from django_rustpg import nplusone
    from django_rustpg.nplusone import _markers

    walls = ([], [])
    cpus = ([], [])

    def body():
        native = _markers.scope_var.get()
        perf, cput = time.perf_counter_ns, time.thread_time_ns
        for i in range(2 * n):
            enabled = i % 2 == 1
            (native.activate if enabled else native.deactivate)()
            c0 = cput()
            t0 = perf()
            run_one(i // 2)
            t1 = perf()
            cpus[enabled].append(cput() - c0)
            walls[enabled].append(t1 - t0)
        native.activate()

    with nplusone.scope(mode="collect", duplicates=False):
        at_depth(depth, body)
    w_off, w_on = statistics.median(walls[0]), statistics.median(walls[1])
    c_off, c_on = statistics.median(cpus[0]), statistics.median(cpus[1])
    print(f"{label:<34} wall: off {w_off / 1000:7.1f} on {w_on / 1000:7.1f} (+{(w_on - w_off) / 1000:5.2f}) µs   "
          f"cpu: off {c_off / 1000:7.1f} on {c_on / 1000:7.1f} (+{(c_on - c_off) / 1000:5.2f}) µs")
    return w_on - w_off, c_on - c_off


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--depth", type=int, default=40)
    args = ap.parse_args()

    import django

    django.setup()
    from django.db import connection, connections
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        from shop.models import Author, Book

        a = Author.objects.create(name="a")
        ids = [Book.objects.create(title=f"b{i}", author=a).pk for i in range(50)]
        cursor = connection.cursor()

        def raw_same(i):
            cursor.execute("SELECT %s::int", [i])
            cursor.fetchall()

        def raw_rows(i):
            cursor.execute('SELECT "id", "author_id", "title" FROM "shop_book" WHERE "id" > %s', [i % 10])
            cursor.fetchall()

        def orm_get(i):
            Book.objects.get(pk=ids[i % 50])

        def orm_fk(i):
            # A new instance each time: an N+1-shaped forward FK load.
            Book(pk=ids[i % 50], author_id=a.pk, title="x").author

        books = list(Book.objects.filter(pk__in=ids).order_by("pk"))

        def orm_save(i):
            # A write per row: save(update_fields=...) of an existing book.
            book = books[i % 50]
            book.title = f"t{i % 7}"
            book.save(update_fields=["title"])

        print(f"python stack: +{args.depth} frames; {args.n} statements per configuration")
        results = {
            "raw cursor, 1 row": measure("raw cursor, SELECT %s::int", raw_same, args.n, args.depth),
            "raw cursor, ~45 rows x 3 cols": measure("raw cursor, 40-50 rows x 3 cols", raw_rows, args.n, args.depth),
            "ORM .get()": measure("ORM Book.objects.get(pk=...)", orm_get, args.n, args.depth),
            "ORM forward FK": measure("ORM book.author (N+1 shape)", orm_fk, args.n, args.depth),
            "ORM save()": measure("ORM book.save(update_fields=...)", orm_save, args.n, args.depth),
        }
        print(f"max median overhead: wall {max(w for w, _ in results.values()) / 1000:.2f} µs, "
              f"cpu {max(c for _, c in results.values()) / 1000:.2f} µs per statement")
        cursor.close()
    finally:
        connections.close_all()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
