#!/usr/bin/env python3
"""Sustained throughput: each engine runs a scenario many times in one process, as a web
worker does, with no explicit collection between repetitions, and the ratio is of mean
times (a median hides a collection that lands on one run in ten).

    make bench-sustained
    .venv/bin/python benches/sustained.py --scenarios prefetch_200 --reps 40

Why it exists: `make bench` times each repetition after a full collection outside the
clock, so cyclic garbage (prefetch_related's graphs) is never charged to any engine there.
Stop 28's collector pause around prefetch_related looked 1.4-2x faster by that median
while its mean was slower than without it (README, Materialization). Engines run in
lockstep (run.py's interleaved workers), the order rotating each cycle.

Writes benches/results/sustained{-dj61}.{md,json}.
"""
import argparse
import json
import os
import statistics
import sys
import time

import run

DEFAULT_SCENARIOS = ["prefetch_200", "list_models_20k", "values_20k", "select_related_5k",
                     "iterator_100k", "n_plus_one_200", "get_by_pk"]


def summarize(times):
    ordered = sorted(times)
    return {
        "n": len(times),
        "mean": statistics.fmean(times),
        "median": statistics.median(times),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    ap.add_argument("--engines", default=",".join(run.ENGINES))
    ap.add_argument("--reps", type=int, default=30, help="timed repetitions per engine, one process each")
    ap.add_argument("--no-seed", action="store_true")
    args = ap.parse_args(argv)
    engines = args.engines.split(",")
    unknown = [e for e in engines if e not in run.ENGINES]
    if unknown or "rustpg" not in engines:
        sys.exit(f"--engines: unknown {unknown} (rustpg is required; known: {run.ENGINES})")
    if "psycopg2" in engines:
        run.ensure_psycopg2_venv()
    if not args.no_seed:
        run.seed()
    # The workers skip the per-repetition gc.collect() (scenarios.timed_repetition).
    os.environ["BENCH_SUSTAINED"] = "1"
    prof = {"reps": args.reps, "min_time": 0.0}
    load_start = os.getloadavg()
    results, started = {}, time.time()
    for name in args.scenarios.split(","):
        if name not in run.SCENARIOS or run.SCENARIOS[name].setup:
            sys.exit(f"--scenarios: {name!r} is not a read scenario (writes need a setup per run)")
        run.log(f"{name}: {args.reps} repetitions per engine in lockstep ...")
        outs = run.run_interleaved(engines, name, prof, verify=True, timeout=1800)
        per = {}
        for engine, out in zip(engines, outs):
            if "error" in out:
                sys.exit(f"{name} / {engine} failed:\n{out['error']}")
            per[engine] = dict(summarize(out["times"]), digest=out.get("digest"), queries=out.get("queries"))
        digests = {(d["digest"], d["queries"]) for d in per.values()}
        if len(digests) != 1:
            sys.exit(f"{name}: engines returned different data or query counts: {digests}")
        stock = {e: d for e, d in per.items() if e != "rustpg"}
        best = min(stock, key=lambda e: stock[e]["mean"]) if stock else None
        x = {
            "best_stock": best,
            "mean": stock[best]["mean"] / per["rustpg"]["mean"] if best else None,
            "median": min(d["median"] for d in stock.values()) / per["rustpg"]["median"] if stock else None,
            "p95": min(d["p95"] for d in stock.values()) / per["rustpg"]["p95"] if stock else None,
        }
        results[name] = {"engines": per, "x": x}
        if best:
            run.log(f"  x best stock by mean {x['mean']:.2f} (median {x['median']:.2f}, p95 {x['p95']:.2f})")
    info = run.machine_info(load_start)
    info["versions"].setdefault("django", ".".join(map(str, run.DJANGO)))
    info["wall_seconds"] = round(time.time() - started)
    write(results, engines, args.reps, info)


def write(results, engines, reps, info):
    stem = run.RESULTS / f"sustained{run.DJ_TAG}"
    stem.with_suffix(".json").write_text(json.dumps({"info": info, "reps": reps, "results": results}, indent=1))
    lines = [
        "# Sustained throughput (`make bench-sustained`)", "",
        f"{info['date']} (Django {info['versions'].get('django')}, Python {info['python']}, "
        f"PostgreSQL {info.get('pg')}); {reps} repetitions per engine in one process each, engines in lockstep, "
        "no collection between repetitions. Cells: mean / median / p95 / max in ms. "
        "× = best stock engine's value / django_rustpg's, above 1 is faster.", "",
        "| scenario | " + " | ".join(run.LABELS[e] for e in engines) + " | × by mean | × by median | × by p95 |",
        "|---|" + "---|" * (len(engines) + 3),
    ]
    for name, r in results.items():
        cells = [" / ".join(run.fmt_ms(d[k]) for k in ("mean", "median", "p95", "max"))
                 for d in (r["engines"][e] for e in engines)]
        x = r["x"]
        ratios = [f"{x[k]:.2f}×" if x[k] else "–" for k in ("mean", "median", "p95")]
        lines.append(f"| `{name}` | " + " | ".join(cells + ratios) + " |")
    load = lambda la: "/".join(f"{v:.1f}" for v in la)  # noqa: E731
    lines += ["", f"Machine: {info['nproc']} × {info.get('cpu', '')}; load average {load(info['loadavg_start'])} "
              f"at the start, {load(info['loadavg_end'])} at the end; {info.get('wall_seconds')} s."]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
