#!/usr/bin/env python3
"""Per-statement cost of N+1 detection: the same statements with no scope open (the
driver's hook is one atomic load) and inside an open ``nplusone.scope()``.

    .venv/bin/python scripts/nplusone_overhead.py [--n 4000] [--depth 40]

Statements run through Django's cursor (and the ORM) at a realistic Python stack depth
(``--depth`` extra frames, like a view under middleware). Disabled and enabled batches
alternate so drift cancels; the reported overhead is the difference of medians, of
wall time and of this thread's CPU time (the hook is CPU work in the calling thread, so
CPU time isolates it from server round-trip noise on a loaded machine).
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


def measure(label, run_one, n, depth, batch=200):
    from django_rustpg import nplusone

    off, on = [], []
    coff, con = [], []
    rounds = max(1, n // batch)
    for r in range(rounds):
        for enabled in ((False, True) if r % 2 == 0 else (True, False)):
            samples, cpu = (on, con) if enabled else (off, coff)
            if enabled:
                with nplusone.scope(mode="collect", duplicates=False) as _:
                    at_depth(depth, lambda: _batch(run_one, batch, samples, cpu))
            else:
                at_depth(depth, lambda: _batch(run_one, batch, samples, cpu))
    m_off, m_on = statistics.median(off), statistics.median(on)
    c_off, c_on = statistics.median(coff), statistics.median(con)
    print(f"{label:<34} wall: off {m_off / 1000:7.1f} on {m_on / 1000:7.1f} (+{(m_on - m_off) / 1000:5.2f}) µs   "
          f"cpu: off {c_off / 1000:7.1f} on {c_on / 1000:7.1f} (+{(c_on - c_off) / 1000:5.2f}) µs")
    return m_on - m_off, c_on - c_off


def _batch(run_one, batch, samples, cpu):
    perf, cput = time.perf_counter_ns, time.thread_time_ns
    for i in range(batch):
        c0 = cput()
        t0 = perf()
        run_one(i)
        t1 = perf()
        cpu.append(cput() - c0)
        samples.append(t1 - t0)


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

        print(f"python stack: +{args.depth} frames; {args.n} statements per configuration")
        results = {
            "raw cursor, 1 row": measure("raw cursor, SELECT %s::int", raw_same, args.n, args.depth),
            "raw cursor, ~45 rows x 3 cols": measure("raw cursor, 40-50 rows x 3 cols", raw_rows, args.n, args.depth),
            "ORM .get()": measure("ORM Book.objects.get(pk=...)", orm_get, args.n, args.depth),
            "ORM forward FK": measure("ORM book.author (N+1 shape)", orm_fk, args.n, args.depth),
        }
        print(f"max median overhead: wall {max(w for w, _ in results.values()) / 1000:.2f} µs, "
              f"cpu {max(c for _, c in results.values()) / 1000:.2f} µs per statement")
        cursor.close()
    finally:
        connections.close_all()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
