"""Overhead of django_rustpg.routers per request, on a private primary + streaming standby.

    .venv/bin/python benches/router_overhead.py [--engine django_rustpg] [--requests 300] [--rounds 5]

Each "request" is a read_your_writes() scope. Routed requests go through ReplicaRouter;
their baselines run the same ORM calls with an explicit .using() (no router), interleaved
round by round so machine load hits both alike. Reported: median µs per request.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scaleout"))

from cluster import Pair  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="django_rustpg")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--delay-ms", type=int, default=0, help="the standby's recovery_min_apply_delay")
    args = ap.parse_args()
    pair = Pair.start(delay_ms=args.delay_ms)
    try:
        run(pair, args)
    finally:
        pair.stop()


def run(pair, args):
    import django
    from django.conf import settings

    def db(port):
        return {"ENGINE": args.engine, "NAME": "postgres", "USER": "postgres", "HOST": "127.0.0.1", "PORT": str(port)}

    settings.configure(
        DATABASES={"default": db(pair.primary.port), "replica1": db(pair.standby.port)},
        DATABASE_ROUTERS=["django_rustpg.routers.ReplicaRouter"],
        RUSTPG_REPLICAS={"default": ["replica1"]},
        INSTALLED_APPS=["django.contrib.contenttypes"],
        USE_TZ=True, SECRET_KEY="bench", DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    from django.db import connections, models, router

    from django_rustpg.routers import read_your_writes

    class Item(models.Model):
        n = models.IntegerField()

        class Meta:
            app_label = "router_bench"
            db_table = "router_bench_item"

    with connections["default"].cursor() as cur:
        cur.execute("CREATE TABLE router_bench_item (id bigserial PRIMARY KEY, n int NOT NULL)")
        cur.execute("INSERT INTO router_bench_item (n) SELECT g FROM generate_series(1, 1000) g")
    pair.wait_replayed()

    def read_routed(i):
        with read_your_writes():
            Item.objects.filter(n=i).exists()

    def read_direct(i):
        Item.objects.using("replica1").filter(n=i).exists()

    def write_read_routed(i):
        with read_your_writes():
            Item.objects.create(n=i)
            Item.objects.filter(n=i).exists()

    def write_read_direct(i):
        Item.objects.using("default").create(n=i)
        Item.objects.using("default").filter(n=i).exists()

    def route_only(i):
        router.db_for_read(Item)

    cases = [("read: routed", read_routed), ("read: .using(replica)", read_direct),
             ("write+read: routed", write_read_routed), ("write+read: .using(primary)", write_read_direct)]
    times = {name: [] for name, _ in cases}
    cpu = {name: [] for name, _ in cases}
    queries = {name: {} for name, _ in cases}
    counting = [None]

    def count(alias):
        def wrapper(execute, sql, params, many, context):
            if counting[0] is not None:
                per = queries[counting[0]]
                per[alias] = per.get(alias, 0) + 1
            return execute(sql, params, many, context)
        return wrapper

    for fn in (f for _, f in cases):  # warm up sessions and query compilation
        for i in range(20):
            fn(i)
    with connections["default"].execute_wrapper(count("primary")), \
            connections["replica1"].execute_wrapper(count("replica")):
        for _ in range(args.rounds):
            for name, fn in cases:
                counting[0] = name
                start, start_cpu = time.perf_counter(), time.process_time()
                for i in range(args.requests):
                    fn(i)
                cpu[name].append((time.process_time() - start_cpu) / args.requests * 1e6)
                times[name].append((time.perf_counter() - start) / args.requests * 1e6)
        counting[0] = None
    med = {name: statistics.median(v) for name, v in times.items()}
    med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    n = args.requests * args.rounds
    with read_your_writes():
        start = time.perf_counter()
        for i in range(100_000):
            route_only(i)
        route_us = (time.perf_counter() - start) / 100_000 * 1e6
    print(f"engine={args.engine} requests/round={args.requests} rounds={args.rounds} delay_ms={args.delay_ms}")
    for name, value in med.items():
        q = ", ".join(f"{a} {c / n:.3f}" for a, c in sorted(queries[name].items()))
        print(f"  {name:<28} wall {value:8.1f} µs  client CPU {med_cpu[name]:7.1f} µs  queries/request: {q}")
    for kind, routed, direct in (("read", "read: routed", "read: .using(replica)"),
                                 ("write+read", "write+read: routed", "write+read: .using(primary)")):
        print(f"  {kind} overhead: wall {med[routed] - med[direct]:+8.1f} µs, "
              f"client CPU {med_cpu[routed] - med_cpu[direct]:+7.1f} µs per request")
    print(f"  db_for_read in a scope that wrote nothing: {route_us:.2f} µs")


if __name__ == "__main__":
    main()
