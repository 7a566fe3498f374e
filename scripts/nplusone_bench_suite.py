#!/usr/bin/env python3
"""The benchmark suite's scenarios (benches/scenarios.py) with and without an N+1 scope.

    .venv/bin/python scripts/nplusone_bench_suite.py [--reps 7] [--scenarios a,b]

Runs in one process on the rustpg engine against the seeded benchmark database
(``django_rustpg_bench``: run ``make bench`` or ``benches/run.py`` once to create it).
For each scenario, disabled and enabled repetitions alternate (enabled: the scenario runs
inside ``nplusone.scope(mode="collect")``, report building included); the overhead is
the ratio of the medians, and of the suite totals.
"""

import argparse
import gc
import os
import statistics
import sys
import time
from collections import deque

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches"))
os.environ["BENCH_ENGINE"] = "rustpg"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings")


def timed(sc, enabled):
    from django_rustpg import nplusone

    arg = sc.setup() if sc.setup else None
    gc.collect()
    t0 = time.perf_counter()
    if enabled:
        with nplusone.scope(mode="collect") as report:
            result = sc.run(arg) if sc.setup else sc.run()
            if not isinstance(result, list):
                deque(result, maxlen=0)
    else:
        report = None
        result = sc.run(arg) if sc.setup else sc.run()
        if not isinstance(result, list):
            deque(result, maxlen=0)
    del result, arg
    return time.perf_counter() - t0, report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--scenarios", default="")
    args = ap.parse_args()

    import scenarios as bench

    bench.load_django()
    wanted = [s for s in args.scenarios.split(",") if s] or [n for n, s in bench.SCENARIOS.items() if s.run]
    totals = {False: 0.0, True: 0.0}
    print(f"{'scenario':<22} {'disabled':>10} {'enabled':>10} {'overhead':>9}  findings")
    for name in wanted:
        sc = bench.SCENARIOS[name]
        timed(sc, False)  # warm-up
        times = {False: [], True: []}
        findings = 0
        for r in range(args.reps):
            for enabled in ((False, True) if r % 2 == 0 else (True, False)):
                t, report = timed(sc, enabled)
                times[enabled].append(t)
                if report is not None:
                    findings = len(report.findings)
        off, on = statistics.median(times[False]), statistics.median(times[True])
        totals[False] += off
        totals[True] += on
        print(f"{name:<22} {off * 1000:9.1f}ms {on * 1000:9.1f}ms {(on / off - 1) * 100:8.1f}%  {findings}")
    print(f"{'suite total':<22} {totals[False] * 1000:9.1f}ms {totals[True] * 1000:9.1f}ms "
          f"{(totals[True] / totals[False] - 1) * 100:8.1f}%")


if __name__ == "__main__":
    main()
