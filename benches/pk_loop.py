"""Raw-driver primary-key loop: one single-row SELECT per call, no Django.

Each (round, driver) is a fresh process that connects, warms up, then times `--n` queries
in batches and reports the median per-query time. Drivers alternate within a round in an
order that rotates each round, and every ratio is taken within one round (the machine is
shared, so absolute times drift; ratios measured side by side drift much less).

    .venv/bin/python benches/pk_loop.py                         # all drivers, default options
    .venv/bin/python benches/pk_loop.py --prepare-threshold 5   # psycopg 3 and ours prepare
    .venv/bin/python benches/pk_loop.py --sslmode disable       # without TLS on loopback
    .venv/bin/python benches/pk_loop.py --count syscalls        # strace -c: syscalls per query
    .venv/bin/python benches/pk_loop.py --count instructions    # callgrind: instructions per query

`--count syscalls` runs each driver under strace twice, with n and 2n queries, and reports
the difference divided by n; `--count instructions` counts only the query loop (callgrind's
instrumentation is switched on around it, see callgrind.py).
psycopg2 runs from benches/run.py's psycopg2 venv (created on first use).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))

# LIMIT as Django's get() writes it (our driver runs such a statement with the simple protocol).
PK_SQL = "SELECT id, book_id, rating, created_at, body FROM shop_review WHERE id = %s LIMIT 21"
DRIVERS = ["rustpg", "psycopg2", "psycopg3", "asyncpg"]
BATCH = 100


def server(sslmode):
    from djbench.settings import BENCH_DB, server_params

    p = server_params()
    return dict(host=p["HOST"], port=int(p["PORT"]), user=p["USER"], password=p["PASSWORD"] or None,
                dbname=BENCH_DB, sslmode=sslmode)


def pk_ids(n):
    # Spread over the table, deterministic, no two neighbours equal.
    return [1 + (i * 7919) % 100_000 for i in range(n)]


def make_query(driver, sslmode, prepare_threshold):
    """A function running one pk query (fetching its row), and a close function."""
    s = {k: v for k, v in server(sslmode).items() if v is not None}
    if driver == "asyncpg":
        import asyncio

        import asyncpg

        s["database"] = s.pop("dbname")
        s["ssl"] = s.pop("sslmode")
        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(asyncpg.connect(**s))
        sql = PK_SQL.replace("%s", "$1")

        async def many(ids):
            for i in ids:
                await conn.fetchrow(sql, i)

        return ((lambda ids: loop.run_until_complete(many(ids))), (lambda: loop.run_until_complete(conn.close())),
                conn.get_server_pid(), None)
    if driver == "psycopg2":
        import psycopg2

        conn = psycopg2.connect(**s)
        conn.autocommit = True
    elif driver == "psycopg3":
        import psycopg

        # Django's default is prepare_threshold=None (psycopg's own default is 5).
        conn = psycopg.connect(autocommit=True, prepare_threshold=prepare_threshold, **s)
    elif driver == "rustpg":
        from django_rustpg import dbapi

        conn = dbapi.connect(autocommit=True, prepare_threshold=prepare_threshold,
                             **{k: str(v) for k, v in s.items()})
    else:
        raise SystemExit(f"unknown driver {driver}")
    cursor = conn.cursor()
    cursor.execute("SELECT pg_backend_pid(), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    backend_pid, ssl = cursor.fetchone()

    def many(ids):
        for i in ids:
            cursor.execute(PK_SQL, (i,))
            cursor.fetchone()

    return many, conn.close, backend_pid, ssl


def cpu_ns(pid):
    """CPU time a process has used (ns), from the scheduler's own accounting."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def child(args):
    many, close, backend_pid, ssl = make_query(args.driver, args.sslmode, args.prepare_threshold)
    ids = pk_ids(args.n + args.warmup)
    many(ids[:args.warmup])
    out = {"driver": args.driver, "tls": ssl}
    if args.count == "instructions":
        from callgrind import measured

        with measured():
            many(ids[args.warmup:])
    elif args.count == "syscalls":
        # strace counts the whole process; n and 2n runs are subtracted by the parent.
        many(ids[args.warmup:])
    else:
        per_query = []
        client0, server0 = time.process_time_ns(), cpu_ns(backend_pid)
        for b in range(args.warmup, args.warmup + args.n, BATCH):
            chunk = ids[b:b + BATCH]
            t0 = time.perf_counter()
            many(chunk)
            per_query.append((time.perf_counter() - t0) / len(chunk))
        # CPU time moves far less with machine load than wall time does.
        out["client_cpu_us"] = (time.process_time_ns() - client0) / args.n / 1e3
        out["server_cpu_us"] = (cpu_ns(backend_pid) - server0) / args.n / 1e3
        out["us_median"] = statistics.median(per_query) * 1e6
        out["us_min"] = min(per_query) * 1e6
    close()
    print(json.dumps(out))


def driver_python(driver):
    if driver == "psycopg2":
        from run import ensure_psycopg2_venv

        return str(ensure_psycopg2_venv())
    return sys.executable


def child_cmd(args, driver, n, count=None):
    cmd = [driver_python(driver), str(Path(__file__).resolve()), "--child", "--driver", driver, "--n", str(n),
           "--warmup", str(args.warmup), "--sslmode", args.sslmode]
    if args.prepare_threshold is not None:
        cmd += ["--prepare-threshold", str(args.prepare_threshold)]
    if count:
        cmd += ["--count", count]
    return cmd


def env():
    return dict(os.environ, PYTHONPATH=str(BENCHES))


def run_child(cmd, prefix=()):
    p = subprocess.run([*prefix, *cmd], env=env(), capture_output=True, text=True, timeout=1800)
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(lines[-1])


def strace_calls(path):
    """{syscall: calls} from an `strace -c` summary."""
    calls = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls[parts[-1]] = int(parts[3])
    return calls


def count_syscalls(args, drivers):
    """Per-query syscalls: (2n run - n run) / n, so connecting and start-up cancel out."""
    rows = {}
    for d in drivers:
        totals = []
        for n in (args.n, 2 * args.n):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "strace.txt"
                run_child(child_cmd(args, d, n, "syscalls"), ["strace", "-f", "-c", "-o", str(out)])
                totals.append(strace_calls(out))
        names = set(totals[0]) | set(totals[1])
        per = {k: (totals[1].get(k, 0) - totals[0].get(k, 0)) / args.n for k in names}
        rows[d] = {k: v for k, v in per.items() if abs(v) >= 0.005}
        log(f"{d}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(rows[d].items(), key=lambda kv: -kv[1])))
    return rows


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def timed(args, drivers):
    per_round = []
    for r in range(args.rounds):
        order = drivers[r % len(drivers):] + drivers[:r % len(drivers)]
        res = {d: run_child(child_cmd(args, d, args.n)) for d in order}
        per_round.append(res)
        log(f"round {r + 1}: " + "  ".join(
            f"{d} {res[d]['us_median']:.1f}µs (cpu client {res[d]['client_cpu_us']:.1f} server {res[d]['server_cpu_us']:.1f})"
            for d in drivers))
    summary = {}
    ref = args.reference if args.reference in drivers else drivers[0]
    for d in drivers:
        us = [r[d]["us_median"] for r in per_round]
        ratios = [r[ref]["us_median"] / r[d]["us_median"] for r in per_round]
        summary[d] = {"us_median": statistics.median(us), "us_min": min(r[d]["us_min"] for r in per_round),
                      "client_cpu_us": statistics.median(r[d]["client_cpu_us"] for r in per_round),
                      "server_cpu_us": statistics.median(r[d]["server_cpu_us"] for r in per_round),
                      f"x_{ref}_median": statistics.median(ratios), "x_min": min(ratios), "x_max": max(ratios)}
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drivers", default=",".join(DRIVERS))
    ap.add_argument("--n", type=int, default=2000, help="timed queries per process")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sslmode", default="prefer")
    ap.add_argument("--prepare-threshold", type=int, default=None)
    ap.add_argument("--reference", default="psycopg2", help="ratios are this driver's time / each driver's")
    ap.add_argument("--count", choices=["syscalls", "instructions"])
    ap.add_argument("--json", help="also write the summary here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--driver", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    drivers = [d.strip() for d in args.drivers.split(",") if d.strip()]
    if args.count == "instructions":
        from callgrind import callgrind_prefix, read_total

        rows = {}
        for d in drivers:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "callgrind.out"
                run_child(child_cmd(args, d, args.n, "instructions"), callgrind_prefix(out))
                rows[d] = {"instructions_per_query": read_total(out) / args.n}
            log(f"{d}: {rows[d]['instructions_per_query']:,.0f} instructions/query")
        summary = rows
    elif args.count == "syscalls":
        summary = count_syscalls(args, drivers)
    else:
        summary = timed(args, drivers)
    print(json.dumps({"options": {"sslmode": args.sslmode, "prepare_threshold": args.prepare_threshold,
                                  "n": args.n, "rounds": args.rounds}, "summary": summary}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
