"""Same-run ratios for the single-row group, at default options and with prepare_threshold=5.

A noisy machine moves absolute times between minutes, so every ratio here is taken inside
one round, where the engines ran back to back (fresh worker processes, order rotating each
round), and the report gives the median of the per-round ratios with their spread.

    .venv/bin/python benches/latency.py                       # 5 rounds, both groups
    .venv/bin/python benches/latency.py --groups default --rounds 9 --scenarios get_by_pk

Groups: `default` compares django_rustpg at default OPTIONS with the fastest stock
configuration of that round (psycopg 3, psycopg 3 + pool, psycopg2); `prep5` compares
`OPTIONS={"prepare_threshold": 5}` on both django_rustpg and stock psycopg 3.
Needs a seeded bench database (benches/run.py seeds `BENCH_DB`, default django_rustpg_bench).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))
from run import RESULTS, child_env, engine_python, ensure_psycopg2_venv, run_json  # noqa: E402

SINGLE_ROW = ["get_by_pk", "n_plus_one_200", "update_filter", "create_1k", "threads_8x500"]
GROUPS = {
    "default": {"ours": "rustpg", "stock": ["psycopg3", "psycopg3_pool", "psycopg2"], "target": 1.05},
    "prep5": {"ours": "rustpg_prep5", "stock": ["psycopg3_prep5"], "target": 1.3},
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def worker(engine, scenario, reps):
    cmd = [engine_python(engine), BENCHES / "scenarios.py", "run", scenario, "--reps", reps, "--no-verify"]
    out = run_json(cmd, child_env(BENCH_ENGINE=engine), timeout=900)
    if "error" in out:
        raise SystemExit(f"{engine} {scenario} failed:\n{out['error']}")
    return statistics.median(out["times"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SINGLE_ROW))
    ap.add_argument("--groups", default="default,prep5")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per worker (median taken)")
    ap.add_argument("--out", default=str(RESULTS / "latency.json"))
    args = ap.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    groups = [g for g in args.groups.split(",") if g]
    engines = []
    for g in groups:
        for e in [GROUPS[g]["ours"], *GROUPS[g]["stock"]]:
            if e not in engines:
                engines.append(e)
    if "psycopg2" in engines:
        ensure_psycopg2_venv()
    t0 = time.time()
    rounds = []
    for r in range(args.rounds):
        times = {}
        for sc in scenarios:
            order = engines[r % len(engines):] + engines[:r % len(engines)]
            times[sc] = {e: worker(e, sc, args.reps) for e in order}
        rounds.append(times)
        log(f"round {r + 1}/{args.rounds} ({time.time() - t0:.0f}s): " + "; ".join(
            f"{sc} " + " ".join(f"{g}={ratio(times[sc], g):.3f}" for g in groups) for sc in scenarios))
    report = {"rounds": rounds, "summary": {}}
    lines = ["| scenario | group | × median | min | max | target | ms ours | ms best stock |", "|---|---|---|---|---|---|---|---|"]
    for sc in scenarios:
        for g in groups:
            xs = [ratio(rd[sc], g) for rd in rounds]
            ours = statistics.median(rd[sc][GROUPS[g]["ours"]] for rd in rounds) * 1e3
            best = statistics.median(min(rd[sc][e] for e in GROUPS[g]["stock"]) for rd in rounds) * 1e3
            report["summary"].setdefault(sc, {})[g] = {"x_median": statistics.median(xs), "x_all": xs}
            lines.append(f"| {sc} | {g} | {statistics.median(xs):.3f} | {min(xs):.3f} | {max(xs):.3f} | "
                         f"≥{GROUPS[g]['target']} | {ours:.1f} | {best:.1f} |")
    print("\n".join(lines))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


def ratio(times, group):
    g = GROUPS[group]
    return min(times[e] for e in g["stock"]) / times[g["ours"]]


if __name__ == "__main__":
    sys.exit(main())
