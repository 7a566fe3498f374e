"""How far apart engines that should tie land on a near-parity scenario, in lockstep.

Runs `run.py`'s lockstep rounds of one scenario and reports, besides our ratio against the
best stock engine (by median and by cycle), each stock engine's ratio against the best of
the *other* stock engines: the spread an engine equal to stock shows under the same
"best of the stock engines" rule. It also splits each engine's times by its place in the
cycle (the order rotates, so every engine meets every place equally often).

    .venv/bin/python benches/parity_check.py --scenario update_filter --rounds 4
    BENCH_BEFORE_CLOCK=pause .venv/bin/python benches/parity_check.py   # no collection before the clock
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))

ENGINES = ["rustpg", "psycopg3", "psycopg3_pool", "psycopg2"]


def main(argv=None):
    import run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="update_filter")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", help="also write the per-round times there (JSON)")
    args = ap.parse_args(argv)
    run.ensure_psycopg2_venv()
    prof = dict(run.PROFILES["full"])
    times = {e: [] for e in ENGINES}
    for _ in range(args.rounds):
        for engine, result in zip(ENGINES, run.run_interleaved(ENGINES, args.scenario, prof, False)):
            if "error" in result:
                raise SystemExit(f"{engine}: {result['error']}")
            times[engine].append(result["times"])
    if args.out:
        Path(args.out).write_text(json.dumps({"scenario": args.scenario, "engines": ENGINES, "times": times}))
    median = {e: statistics.median(t for r in times[e] for t in r) for e in ENGINES}
    stock = ENGINES[1:]
    best = min(stock, key=median.get)
    pairs = [b / a for ra, rb in zip(times["rustpg"], times[best]) for a, b in zip(ra, rb)]
    before = os.environ.get("BENCH_BEFORE_CLOCK", "collect")
    print(f"{args.scenario} (before the clock: {before}): medians (ms) " + ", ".join(f"{e} {median[e] * 1e3:.2f}" for e in ENGINES))
    print(f"  ours against the best stock engine ({best}): {median[best] / median['rustpg']:.3f}x by median, "
          f"{statistics.median(pairs):.3f}x by cycle (won {sum(p > 1 for p in pairs)}/{len(pairs)})")
    for e in stock:
        rival = min((o for o in stock if o != e), key=median.get)
        print(f"  {e} against the best other stock engine ({rival}): {median[rival] / median[e]:.3f}x by median")
    n = len(ENGINES)
    for i, e in enumerate(ENGINES):
        by_place = {p: [] for p in range(n)}
        for r in times[e]:
            for cycle, t in enumerate(r):
                by_place[(i - cycle) % n].append(t)
        print(f"  {e} by place in the cycle (ms): "
              + ", ".join(f"{p}: {statistics.median(v) * 1e3:.2f}" for p, v in by_place.items() if v))


if __name__ == "__main__":
    sys.exit(main())
