"""Instructions per operation for each scenario and engine, counted by callgrind (`make bench-instr`).

Each (scenario, engine) is one process under `valgrind --tool=callgrind`: Django setup and
one warm-up run of the scenario go uninstrumented, then one run is counted (client process
only: Django, the driver, the interpreter, libc; not the server). Instruction counts do not
move with machine load, so they can be compared across runs and commits.

    .venv/bin/python benches/instr.py                                  # all scenarios, 3 engines
    .venv/bin/python benches/instr.py --scenarios get_by_pk --engines rustpg,psycopg2
    .venv/bin/python benches/instr.py --check                          # compare with the budgets

Writes benches/results/instr.json and instr.md. `--check` then runs check_instr.py, which
compares django_rustpg's figures with benches/instr_budgets.json and fails when one grew by
more than 5%; `--update-budgets` rewrites that file from this run (a commit that raises a
budget says why). The bench database is seeded first unless `--no-seed`.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))
from callgrind import callgrind_prefix, read_total  # noqa: E402
from check_instr import BUDGETS, check  # noqa: E402
from run import RESULTS, child_env, engine_python, ensure_psycopg2_venv, run_json, seed  # noqa: E402
# What one operation is in each scenario: (count, unit), as counted here (see SHRINK).
OPS = {
    "get_by_pk": (200, "get()"),
    "list_models_1k": (20_000, "row"),
    "list_models_20k": (20_000, "row"),
    "values_20k": (20_000, "row"),
    "values_list_100k": (100_000, "row"),
    "narrow_ids_100k": (100_000, "row"),
    "select_related_5k": (5_000, "row"),
    "prefetch_200": (200, "author"),
    "n_plus_one_200": (201, "query"),
    "raw_fetch_100k": (100_000, "row"),
    "iterator_100k": (100_000, "row"),
    "threads_8x500": (400, "get()"),
    "bulk_create_10k": (10_000, "row"),
    "bulk_update_10k": (1_000, "row"),
    "create_1k": (100, "create()"),
    "update_filter": (1, "update()"),
}
ENGINES = ["rustpg", "psycopg2", "psycopg3"]
# Loops of identical operations are counted over a tenth of their length (per-operation
# figures are the same; callgrind runs ~50x slower than the scenario): module list -> length.
SHRINK = {"get_by_pk": ("GET_PKS", 200), "threads_8x500": ("THREAD_PKS", 400)}
# bulk_update_10k: one of its ten batches of 1,000 (stock takes ~1 minute per batch under callgrind).
SHRINK_ARG = {"create_1k": 100, "bulk_update_10k": 1_000}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def child(engine, name):
    """Runs in the measured process: warm up, then count one run."""
    from collections import deque

    import scenarios
    from callgrind import measured

    scenarios.load_django()
    sc = scenarios.SCENARIOS[name]
    if name in SHRINK:
        attr, n = SHRINK[name]
        setattr(scenarios, attr, getattr(scenarios, attr)[:n])
    def argument():  # shrunk for the warm-up too: it runs under valgrind as well
        arg = sc.setup() if sc.setup else None
        return arg[:SHRINK_ARG[name]] if name in SHRINK_ARG else arg

    result = sc.run(argument()) if sc.setup else sc.run()
    if not isinstance(result, list):
        deque(result, maxlen=0)
    del result
    arg = argument()
    import gc

    gc.collect()
    with measured():
        result = sc.run(arg) if sc.setup else sc.run()
        if not isinstance(result, list):
            deque(result, maxlen=0)
        del result, arg
    print(json.dumps({"engine": engine, "scenario": name}))


def measure(engine, name, split=None):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [*callgrind_prefix(out), engine_python(engine), __file__, "--child", engine, name]
        t0 = time.time()
        res = run_json(cmd, child_env(BENCH_ENGINE=engine), timeout=3600)
        if "error" in res:
            raise SystemExit(f"{engine} {name} failed:\n{res['error']}\n{res.get('stderr', '')}")
        total = read_total(out)
        if split is not None:
            split.update(split_by_object(next(Path(tmp).glob("callgrind.out.*"))))
    count, unit = OPS[name]
    log(f"  {name} {engine}: {total / count:,.0f} instructions/{unit} ({time.time() - t0:.0f}s)")
    return total


def split_by_object(dump):
    """Instructions by where they ran: the driver's extension (decoding, row and object
    building in Rust), the garbage collector, the allocator and the rest of the interpreter
    (Django's Python, converters, object building in Python)."""
    import re
    import subprocess

    def annotate(*flags):
        return subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", *flags, str(dump)],
                              capture_output=True, text=True, check=True).stdout

    line_re = re.compile(r"^\s*([\d,]+) \([ \d.]+%\)\s+(.*?)(?: \[(.*)\])?$")
    parts = {"driver": 0, "gc": 0, "allocator": 0, "interpreter": 0, "other": 0}
    for line in annotate("--inclusive=no").splitlines():
        m = line_re.match(line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        ir, fn, obj = int(m.group(1).replace(",", "")), m.group(2), m.group(3) or ""
        if "_native" in obj or "psycopg" in obj or "libpq" in obj or "libssl" in obj or "libcrypto" in obj:
            parts["driver"] += ir
        elif "malloc" in fn or "obmalloc" in fn or ":free" in fn or "memmove" in fn:
            parts["allocator"] += ir
        elif "libpython" in obj or "/python" in obj:
            parts["interpreter"] += ir
        else:
            parts["other"] += ir
    for line in annotate("--inclusive=yes").splitlines():
        m = line_re.match(line)
        if m and m.group(2).endswith(":gc_collect_main"):
            parts["gc"] = int(m.group(1).replace(",", ""))
            parts["interpreter"] -= parts["gc"]  # an approximation: GC's own frames sit in libpython
            break
    return parts


def render(results, engines, scenarios):
    head = ["scenario", "per"] + engines + [f"{e} / django_rustpg" for e in engines if e != "rustpg"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in scenarios:
        cells = [name, OPS[name][1]]
        cells += [f"{results[e][name]:,.0f}" if name in results.get(e, {}) else "" for e in engines]
        ours = results.get("rustpg", {}).get(name)
        for e in engines:
            if e != "rustpg":
                theirs = results.get(e, {}).get(name)
                cells.append(f"{theirs / ours:.2f}" if ours and theirs else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(OPS))
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--check", action="store_true", help="fail when a django_rustpg figure is >5%% over budget")
    ap.add_argument("--update-budgets", action="store_true", help="write this run's django_rustpg figures as budgets")
    ap.add_argument("--out", default=str(RESULTS / "instr"), help="writes <out>.json and <out>.md")
    ap.add_argument("--no-seed", action="store_true", help="reuse the seeded bench database")
    ap.add_argument("--split", action="store_true", help="also split each figure by where it ran (driver, GC, ...)")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "SCENARIO"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child)
    scenarios = [s for s in args.scenarios.split(",") if s]
    engines = [e for e in args.engines.split(",") if e]
    if "psycopg2" in engines:
        ensure_psycopg2_venv()
    if not args.no_seed:
        seed()
    results, splits = {}, {}
    for name in scenarios:
        for e in engines:
            split = {} if args.split else None
            results.setdefault(e, {})[name] = measure(e, name, split) / OPS[name][0]
            if split:
                splits.setdefault(e, {})[name] = {k: v / OPS[name][0] for k, v in split.items()}
                log("    per " + OPS[name][1] + ": " + ", ".join(f"{k} {v / OPS[name][0]:,.0f}" for k, v in split.items()))
    md = render(results, engines, scenarios)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"per_operation": results, "units": {n: OPS[n][1] for n in scenarios},
                                                    "split": splits}, indent=1, sort_keys=True))
    out.with_suffix(".md").write_text("Instructions per operation (callgrind, client process only)\n\n" + md + "\n")
    if args.update_budgets:
        budgets = json.loads(BUDGETS.read_text()) if BUDGETS.exists() else {"rustpg": {}}
        budgets["rustpg"].update({k: round(v) for k, v in results.get("rustpg", {}).items()})
        BUDGETS.write_text(json.dumps(budgets, indent=1, sort_keys=True) + "\n")
        log(f"wrote {BUDGETS}")
    if args.check:
        return check(out.with_suffix(".json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
