"""The physical floor of the read scenarios: the same statements, rows fetched through the
driver's pool into its Rust buffers and never turned into Python objects.

For each scenario the statements Django sends (captured from one run of the scenario on
django_rustpg) are replayed through ``connection.cursor()``: ``execute()`` returns once every
row has arrived and been parsed into tokio-postgres rows; nothing is decoded. A server-side
cursor's ``FETCH FORWARD`` statements are replayed as such, inside the same transaction as
Django's ``DECLARE``. The wall time is what no client can go below (server, socket, TLS,
protocol parsing); with ``--count`` the client's instructions are counted by callgrind.

    BENCH_DB=reads_bench .venv/bin/python benches/reads_floor.py --scenarios values_20k,iterator_100k
    BENCH_DB=reads_bench .venv/bin/python benches/reads_floor.py --count
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))

DEFAULT = "values_20k,list_models_20k,prefetch_200,iterator_100k"
ROWS = {"values_20k": 20_000, "list_models_20k": 20_000, "prefetch_200": 200, "iterator_100k": 100_000}


def statements(name):
    """The statements one run of the scenario sends (FETCHes of server-side cursors made explicit)."""
    from collections import deque

    import scenarios
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sc = scenarios.SCENARIOS[name]
    with CaptureQueriesContext(connection) as ctx:
        result = sc.run(sc.setup()) if sc.setup else sc.run()
        if not isinstance(result, list):
            deque(result, maxlen=0)
    sqls = [q["sql"] for q in ctx.captured_queries]
    if name == "iterator_100k":
        # Django logs the DECLAREd query only; the FETCHes are the cursor's own.
        (query,) = sqls
        return [("declare", query, 2_000)]
    return [("plain", s, None) for s in sqls]


def replay(plan):
    from django.db import connection, transaction

    for kind, sql, chunk in plan:
        if kind == "plain":
            with connection.cursor() as c:
                c.execute(sql)
        else:
            with transaction.atomic(), connection.cursor() as c:
                c.execute(f"DECLARE floor_c NO SCROLL CURSOR WITHOUT HOLD FOR {sql}")
                while True:
                    c.execute(f"FETCH FORWARD {chunk} FROM floor_c")
                    if c.rowcount < chunk:
                        break
                c.execute("CLOSE floor_c")


def child(name, reps, count):
    import scenarios

    scenarios.load_django()
    plan = statements(name)
    replay(plan)  # warm
    if count:
        from callgrind import measured

        with measured():
            replay(plan)
        print(json.dumps({"scenario": name}))
        return
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        replay(plan)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"scenario": name, "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=DEFAULT)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--count", action="store_true", help="instructions (callgrind) instead of wall time")
    ap.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.reps, args.count)
    from callgrind import callgrind_prefix, read_total
    from run import child_env, run_json

    for name in args.scenarios.split(","):
        cmd = [sys.executable, __file__, "--child", name, "--reps", str(args.reps)]
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "callgrind.out"
            if args.count:
                cmd = [*callgrind_prefix(out), *cmd, "--count"]
            res = run_json(cmd, child_env(BENCH_ENGINE="rustpg"), timeout=1800)
            if "error" in res:
                sys.exit(f"{name}: {res['error']}\n{res.get('stderr', '')}")
            if args.count:
                res["instructions_per_op"] = read_total(out) / ROWS[name]
        print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
