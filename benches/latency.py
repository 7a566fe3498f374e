"""Same-run ratios for the single-row group, at default options and with prepare_threshold=5.

A noisy machine moves absolute times between minutes, so every ratio here is taken inside
one round, where the engines ran back to back (fresh worker processes, order rotating each
round), and the report gives the median of the per-round ratios with their spread.

    .venv/bin/python benches/latency.py                       # 5 rounds, both groups
    .venv/bin/python benches/latency.py --groups default --rounds 9 --scenarios get_by_pk

Groups: `default` compares django_rustpg at default OPTIONS with the fastest stock
configuration of that round (psycopg 3, psycopg 3 + pool, psycopg2); `prep5` compares
`OPTIONS={"prepare_threshold": 5}` on both django_rustpg and stock psycopg 3.
`--cpu` reports, instead of wall time, CPU time per operation of the client process and of
its server backend (from /proc/<pid>/schedstat; the server must be local): a machine shared
with other work moves these far less than wall time, and their sum is what a round trip
costs apart from waiting for the scheduler.
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
from scenarios import SINGLE_ROW  # noqa: E402
FULL_OPS = {"get_by_pk": 2_000, "n_plus_one_200": 201, "update_filter": 1, "create_1k": 1_000}  # per scenario run
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


def cpu_child(engine, name):
    """In a worker: CPU of this process and of its backend during one run of `name`."""
    import scenarios

    scenarios.load_django()
    sc = scenarios.SCENARIOS[name]
    sc.run(sc.setup()) if sc.setup else sc.run()
    arg = sc.setup() if sc.setup else None
    with scenarios.connection.cursor() as c:
        c.execute("SELECT pg_backend_pid()")
        pid = c.fetchone()[0]

    def backend_ns():
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])

    c0, s0, t0 = time.process_time_ns(), backend_ns(), time.perf_counter()
    sc.run(arg) if sc.setup else sc.run()
    wall = time.perf_counter() - t0
    ops = FULL_OPS[name]
    print(json.dumps({"client_us": (time.process_time_ns() - c0) / ops / 1e3,
                      "server_us": (backend_ns() - s0) / ops / 1e3, "wall_us": wall / ops * 1e6}))


def cpu(args, scenarios, engines):
    lines = ["| scenario | engine | client CPU µs/op | server CPU µs/op | sum | wall µs/op |", "|---|---|---|---|---|---|"]
    for sc in scenarios:
        per = {}
        for r in range(args.rounds):
            for e in engines[r % len(engines):] + engines[:r % len(engines)]:
                cmd = [engine_python(e), Path(__file__).resolve(), "--cpu-child", e, sc]
                out = run_json(cmd, child_env(BENCH_ENGINE=e), timeout=900)
                if "error" in out:
                    raise SystemExit(f"{e} {sc}: {out['error']}")
                per.setdefault(e, []).append(out)
        for e in engines:
            m = {k: statistics.median(o[k] for o in per[e]) for k in ("client_us", "server_us", "wall_us")}
            lines.append(f"| {sc} | {e} | {m['client_us']:.1f} | {m['server_us']:.1f} | "
                         f"{m['client_us'] + m['server_us']:.1f} | {m['wall_us']:.1f} |")
        log(lines[-1])
    print("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SINGLE_ROW))
    ap.add_argument("--groups", default="default,prep5")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per worker (median taken)")
    ap.add_argument("--out", default=str(RESULTS / "latency.json"))
    ap.add_argument("--cpu", action="store_true", help="client and server CPU per operation instead of wall ratios")
    ap.add_argument("--cpu-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cpu_child:
        return cpu_child(*args.cpu_child)
    scenarios = [s for s in args.scenarios.split(",") if s]
    groups = [g for g in args.groups.split(",") if g]
    engines = []
    for g in groups:
        for e in [GROUPS[g]["ours"], *GROUPS[g]["stock"]]:
            if e not in engines:
                engines.append(e)
    if "psycopg2" in engines:
        ensure_psycopg2_venv()
    if args.cpu:
        return cpu(args, [s for s in scenarios if s != "threads_8x500"], engines)
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
