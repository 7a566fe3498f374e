"""Instructions per row of a read scenario on django_rustpg, split by phase (callgrind).

One process per scenario under callgrind, counted as `instr.py` counts (warm-up run first,
then one counted run); the dump is split with `callgrind_annotate --inclusive=yes`:

- fetch: the statements on the wire (`ConnCore::run_formats`: socket, TLS, protocol)
- decode: column values into Python objects (`DecodeCtx::decode`, native JSON `json::loads`)
- build: rows into the iterable's objects (`convert_consuming` minus decode; includes any
  Python converter the plan calls; the bench models have none but JSONField's, which the
  driver replaces by its native parse)
- gc: `gc_collect_main`
- django: the rest (Django's Python: compiling, iterating, prefetching, ...)

    BENCH_DB=reads_bench .venv/bin/python benches/reads_split.py --scenarios values_20k,list_models_20k
"""
import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))

PHASES = {
    "fetch": [r"ConnCore>::run_formats \["],
    "decode": [r"_native::types::decode::DecodeCtx::decode \[", r"_native::types::json::loads(_with)? \["],
    "materialize": [r"_native::row::convert_consuming \["],
    "gc": [r":gc_collect_main \["],
}
LINE = re.compile(r"^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$")


def split(dump):
    text = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=yes", "--auto=no", str(dump)],
                          capture_output=True, text=True, check=True).stdout
    total, found = 0, {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ir, fn = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in fn:
            total = ir
            continue
        for phase, patterns in PHASES.items():
            for p in patterns:
                # The largest matching line per pattern: its inclusive cost.
                if re.search(p, fn):
                    found[(phase, p)] = max(ir, found.get((phase, p), 0))
    got = {ph: sum(v for (p, _), v in found.items() if p == ph) for ph in PHASES}
    parts = {
        "fetch": got["fetch"],
        "decode": got["decode"],
        "build": max(got["materialize"] - got["decode"], 0),
        "gc": got["gc"],
    }
    parts["django"] = total - sum(parts.values())
    return total, parts


def main():
    from callgrind import callgrind_prefix
    from instr import OPS
    from run import child_env, run_json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="values_20k,list_models_20k,prefetch_200,iterator_100k")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind dumps there")
    args = ap.parse_args()
    for name in args.scenarios.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.keep or tmp) / f"callgrind.{name}.out"
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = [*callgrind_prefix(out), sys.executable, str(BENCHES / "instr.py"), "--child", "rustpg", name]
            res = run_json(cmd, child_env(BENCH_ENGINE="rustpg"), timeout=3600)
            if "error" in res:
                sys.exit(f"{name}: {res['error']}\n{res.get('stderr', '')}")
            total, parts = split(next(out.parent.glob(out.name + ".*")))
        n, unit = OPS[name]
        cells = ", ".join(f"{k} {v / n:,.0f}" for k, v in parts.items())
        print(f"{name}: {total / n:,.0f} instructions/{unit}: {cells}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
