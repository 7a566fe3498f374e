#!/usr/bin/env python3
"""Comparative benchmark: django_rustpg against Django's stock PostgreSQL backend.

    make bench                                  full run (<= 15 min on 2 cores)
    .venv/bin/python benches/run.py --quick     one round, fewer repetitions (~3-4 min)
    .venv/bin/python benches/run.py --scenarios get_by_pk,values_20k --engines rustpg,psycopg3
    .venv/bin/python benches/run.py --rust      also the criterion micro-benchmarks (cargo bench)
    .venv/bin/python benches/run.py --rust-only just those

Engines, each in its own processes: rustpg (ENGINE django_rustpg, default OPTIONS),
psycopg3 (stock backend), psycopg3_pool (stock, OPTIONS pool=True), psycopg2 (stock, from
its own virtualenv .cache/bench-venv-psycopg2, since Django prefers psycopg 3 whenever it is
importable). Every (round, scenario, engine) runs in a fresh worker (benches/scenarios.py):
peak RSS is per process, and engines alternate within each round so that machine load
hits all of them alike. The near-parity scenarios (scenarios.NEAR_PARITY) go further: their
workers of one round are started together and run in lockstep, one repetition of one
engine at a time, the engine order rotating each cycle (--no-interleave: one after another). The database (django_rustpg_bench) is recreated and seeded once per
run. DATABASE_URL names the server (make bench gets it from scripts/find_pg.py).

Writes benches/results/latest.{md,json,png}; exits non-zero when an engine crashed or
returned different data or query counts than the others.
"""
import argparse
import hashlib
import json
import os
import queue
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent
RESULTS = BENCHES / "results"

def _running_django():
    """(major, minor) of the Django this interpreter has, read without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return tuple(int(x) for x in version("django").split(".")[:2])
    except PackageNotFoundError:
        return (5, 2)


# The stock engines run on the same Django as django_rustpg: 5.2 in .venv, 6.1 in .venv-dj61
# (make bench-dj61). psycopg2's venv and the result files are per Django.
DJANGO = _running_django()
DJ_TAG = "" if DJANGO == (5, 2) else f"-dj{DJANGO[0]}{DJANGO[1]}"
PSYCOPG2_VENV = ROOT / ".cache" / f"bench-venv-psycopg2{DJ_TAG}"
LATEST = f"latest{DJ_TAG}"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

sys.path.insert(0, str(BENCHES))
from scenarios import ANCHORS, NEAR_PARITY, SCENARIOS  # noqa: E402  (no Django import happens here)

ENGINES = ["rustpg", "psycopg3", "psycopg3_pool", "psycopg2"]
LABELS = {"rustpg": "django_rustpg", "psycopg3": "psycopg 3", "psycopg3_pool": "psycopg 3 + pool",
          "psycopg2": "psycopg2"}
STOCK = [e for e in ENGINES if e != "rustpg"]
ANCHOR_LABELS = {"rustpg": "django_rustpg cursor", "psycopg3_text": "psycopg 3 (text)",
                 "psycopg3_binary": "psycopg 3 (binary cursor)", "asyncpg": "asyncpg", "psycopg2": "psycopg2"}

# rounds x (>= reps repetitions, or more until min_time seconds were timed) per worker;
# the single-row group and the other near-parity scenarios (scenarios.NEAR_PARITY) run
# single_row_rounds (their ratios sit near 1, where a median of four samples decides
# nothing on a shared VM, and a worker of theirs takes seconds).
PROFILES = {
    "full": dict(rounds=2, single_row_rounds=6, reps=2, min_time=0.5, http_seconds=10, anchor_reps=3),
    "quick": dict(rounds=1, single_row_rounds=1, reps=1, min_time=0.0, http_seconds=5, anchor_reps=2),
}
HTTP_CONCURRENCY = 4
GUNICORN_WORKERS = 2


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- environments

def pip_install(python, *args):
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], check=True)


def ensure_main_deps():
    import importlib.util

    missing = [m for m in ("psycopg_pool", "asyncpg", "matplotlib", "gunicorn") if importlib.util.find_spec(m) is None]
    if missing:
        log(f"installing bench dependencies into {sys.prefix} (missing: {', '.join(missing)})")
        pip_install(sys.executable, "-r", str(BENCHES / "requirements.txt"))
    if importlib.util.find_spec("django_rustpg") is None:
        sys.exit("run.py: django_rustpg is not importable; run it with the project venv after `make build`")


def venv_python(venv):
    return venv / "bin" / "python"


def ensure_psycopg2_venv():
    py = venv_python(PSYCOPG2_VENV)
    major, minor = DJANGO
    check = [str(py), "-c", f"import django, psycopg2, gunicorn; assert django.VERSION[:2] == {DJANGO}"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    log(f"creating {PSYCOPG2_VENV.relative_to(ROOT)} (Django {major}.{minor} + psycopg2-binary + gunicorn)")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(PSYCOPG2_VENV)], check=True)
    pip_install(py, f"Django>={major}.{minor},<{major}.{minor + 1}", "psycopg2-binary", "gunicorn")
    subprocess.run(check, check=True)
    return py


def engine_python(engine):
    return venv_python(PSYCOPG2_VENV) if engine == "psycopg2" else Path(sys.executable)


def child_env(**extra):
    env = dict(os.environ, PYTHONPATH=str(BENCHES), DATABASE_URL=os.environ.get("DATABASE_URL", DEFAULT_URL))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_json(cmd, env, timeout):
    """Runs a worker; returns its last stdout line as JSON, or {"error": ...}."""
    try:
        p = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s: {' '.join(map(str, cmd))}"}
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        out = {"error": f"exit {p.returncode}, no result\nstdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-4000:]}"}
    if p.stderr.strip():
        out["stderr"] = p.stderr.strip()[-2000:]
    return out


# ---------------------------------------------------------------- phases

def seed():
    log("seeding django_rustpg_bench ...")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "djbench.seed"], env=child_env(BENCH_ENGINE="psycopg3"),
                       cwd=BENCHES, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"seeding failed:\n{r.stdout}{r.stderr}")
    log(f"  {r.stdout.strip()} in {time.time() - t0:.1f}s")


def run_scenario(engine, name, prof, verify):
    cmd = [engine_python(engine), BENCHES / "scenarios.py", "run", name,
           "--reps", prof["reps"], "--min-time", prof["min_time"]]
    if not verify:
        cmd.append("--no-verify")
    return run_json(cmd, child_env(BENCH_ENGINE=engine), timeout=900)


def run_interleaved(engines, name, prof, verify, timeout=900):
    """One round of a near-parity scenario with every engine's worker alive at once, in
    lockstep: each cycle times one repetition per engine, one engine at a time, in an order
    rotating by cycle, until each engine has >= reps repetitions and min_time seconds timed
    (at most 10 x reps). Every engine gets the same number of repetitions, taken side by side,
    so a burst of load on a shared machine lands on all of them instead of on whichever
    engine's worker happened to be running. Returns one result per engine, as run_scenario."""
    workers, results = {}, {}

    def start(engine):
        cmd = [engine_python(engine), BENCHES / "scenarios.py", "run", name, "--interleave"]
        if not verify:
            cmd.append("--no-verify")
        err = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([str(c) for c in cmd], env=child_env(BENCH_ENGINE=engine), text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=1)
        lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        workers[engine] = (proc, lines, err)

    def reply(engine):
        """The worker's next JSON object; {"error": ...} once it has exited or timed out."""
        proc, lines, err = workers[engine]
        deadline = time.time() + timeout
        last = None
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.time(), 0.01))
            except queue.Empty:
                return {"error": f"{engine}: no answer within {timeout}s"}
            if line is None:
                proc.wait()
                err.seek(0)
                if last is not None:
                    return last
                return {"error": f"exit {proc.returncode}, no result\nstderr: {err.read()[-4000:]}"}
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a stray print
            if isinstance(obj, dict) and ("ready" in obj or "t" in obj):
                return obj
            last = obj  # the final record (or an error) comes last, then EOF

    def finish(engine, out=None):
        proc, lines, err = workers[engine]
        if proc.poll() is None:
            try:
                proc.stdin.write("done\n")
                proc.stdin.close()
            except OSError:
                pass
        out = out or reply(engine)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.seek(0)
        text = err.read().strip()
        if text:
            out["stderr"] = text[-2000:]
        err.close()
        results[engine] = out

    try:
        # Started one at a time: the verification runs (which write, for the write
        # scenarios) must not overlap, and a worker's start-up must not land on another's clock.
        for engine in engines:
            start(engine)
            r = reply(engine)
            if "error" in r:
                finish(engine, r)
        live = [e for e in engines if e not in results]
        times = {e: [] for e in live}
        cycle, max_reps = 0, max(prof["reps"], 1) * 10
        while live:
            counts = [len(times[e]) for e in live]
            sums = [sum(times[e]) for e in live]
            if min(counts) >= prof["reps"] and (min(sums) >= prof["min_time"] or min(counts) >= max_reps):
                break
            k = cycle % len(live)
            for engine in live[k:] + live[:k]:
                proc, lines, err = workers[engine]
                proc.stdin.write("go\n")
                proc.stdin.flush()
                r = reply(engine)
                if "t" not in r:
                    finish(engine, r if "error" in r else {"error": f"unexpected answer {r!r}"})
                    continue
                times[engine].append(r["t"])
            live = [e for e in live if e not in results]
            cycle += 1
        for engine in live:
            finish(engine)
    finally:
        for engine, (proc, lines, err) in workers.items():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [results[e] for e in engines]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers, r.read()


def parse_duration_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def wrk(url, seconds):
    p = subprocess.run(["wrk", "-t1", f"-c{HTTP_CONCURRENCY}", f"-d{seconds}s", "--latency", url],
                       capture_output=True, text=True, timeout=seconds + 60)
    out = p.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if p.returncode or not rps or not p99:
        raise RuntimeError(f"wrk failed (exit {p.returncode}):\n{out}{p.stderr}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad:
        raise RuntimeError(f"wrk: {bad.group(1)} non-2xx responses\n{out}")
    return {"rps": float(rps.group(1)), "p99_ms": parse_duration_ms(p99.group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "socket_errors": errors.group(1) if errors else None}


def python_load(url, seconds):
    """Fallback load generator: HTTP_CONCURRENCY threads, one request at a time each."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    lat, errors, deadline = [], [], time.perf_counter() + seconds
    lock = threading.Lock()

    def worker():
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                c.request("GET", u.path)
                r = c.getresponse()
                r.read()
                c.close()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
            except Exception as e:
                errors.append(repr(e))
                continue
            with lock:
                lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(HTTP_CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    lat.sort()
    return {"rps": len(lat) / (time.perf_counter() - t0), "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
            "requests": len(lat), "socket_errors": None}


def run_http(engine, seconds, verify):
    """gunicorn (sync workers) serving djbench, loaded by wrk at fixed concurrency."""
    gunicorn = engine_python(engine).parent / "gunicorn"
    port = free_port()
    url = f"http://127.0.0.1:{port}/books/"
    cmd = [gunicorn, "djbench.wsgi:application", "--workers", GUNICORN_WORKERS, "--bind", f"127.0.0.1:{port}",
           "--chdir", BENCHES, "--pythonpath", BENCHES, "--log-level", "warning"]
    errlog = RESULTS / "raw" / f"gunicorn-{engine}.log"
    errlog.parent.mkdir(parents=True, exist_ok=True)
    with open(errlog, "w") as err:
        proc = subprocess.Popen([str(c) for c in cmd], env=child_env(BENCH_ENGINE=engine),
                                stdout=subprocess.DEVNULL, stderr=err)
    out = {"scenario": "http_list_100", "engine": engine}
    try:
        deadline = time.time() + 60
        while True:
            try:
                status, headers, body = http_get(url)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"gunicorn did not serve {url}:\n{errlog.read_text()[-3000:]}")
                time.sleep(0.2)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body[:500]!r}")
        if verify:
            out.update(digest=hashlib.sha256(body).hexdigest(), queries=int(headers["X-Queries"]),
                       items=len(json.loads(body)["results"]), types=["json"], sample=body[:700].decode())
        load = wrk if shutil.which("wrk") else python_load
        load(url, 1)  # warm-up: every worker connected, caches filled
        out.update(load(url, seconds), load_generator="wrk" if load is wrk else "python (wrk not found)")
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log_text = errlog.read_text().strip()
    if log_text:
        out["stderr"] = log_text[-2000:]
    return out


def run_anchor(name, reps):
    py = venv_python(PSYCOPG2_VENV) if name == "psycopg2" else sys.executable
    return run_json([py, BENCHES / "scenarios.py", "anchor", name, "--reps", reps], child_env(), timeout=600)


def rust_env():
    py = ROOT / ".venv" / "bin" / "python"
    py = py if py.exists() else Path(sys.executable)
    q = lambda expr: subprocess.run([str(py), "-c", f"import sysconfig; print({expr})"],
                                    capture_output=True, text=True, check=True).stdout.strip()
    libdir, site = q('sysconfig.get_config_var("LIBDIR")'), q('sysconfig.get_path("purelib")')
    # As `make test-rust`: without extension-module the bench binary links libpython, must
    # load the venv's base interpreter's, and needs site-packages on sys.path.
    return child_env(PYO3_PYTHON=py.absolute(),
                     LD_LIBRARY_PATH=":".join(filter(None, [libdir, os.environ.get("LD_LIBRARY_PATH")])),
                     PYTHONPATH=f"{site}:{ROOT / 'django_backend'}")


def run_rust(quick):
    """cargo bench --bench micro; returns {benchmark id: median ns} from criterion's files."""
    if not shutil.which("cargo"):
        return {"error": "cargo not found"}
    started = time.time()
    cmd = ["cargo", "bench", "--bench", "micro"]
    if quick:
        cmd += ["--", "--warm-up-time", "1", "--measurement-time", "2"]
    log(f"running {' '.join(cmd)} (first build takes a few minutes) ...")
    r = subprocess.run(cmd, cwd=ROOT, env=rust_env())
    if r.returncode:
        return {"error": f"cargo bench exited {r.returncode} (output above)"}
    return criterion_results(since=started)


def criterion_results(since=0.0):
    """{benchmark id: median ns} from criterion's files written after `since`, and their date."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "criterion"
    results, newest = {}, 0.0
    for est in target.glob("**/new/estimates.json"):
        mtime = est.stat().st_mtime
        if mtime < since:
            continue
        meta = json.loads((est.parent / "benchmark.json").read_text())
        results[meta["full_id"]] = json.loads(est.read_text())["median"]["point_estimate"]
        newest = max(newest, mtime)
    when = datetime.fromtimestamp(newest, timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if results else None
    return {"medians_ns": dict(sorted(results.items())), "date": when, "this_run": since > 0}


# ---------------------------------------------------------------- report

def machine_info(load_start):
    info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "python": platform.python_version()}
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        info["cpu"] = cpu.group(1).strip() if cpu else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    q = ("import django, psycopg, psycopg_pool, asyncpg, django_rustpg, json; print(json.dumps({'django': django.get_version(),"
         "'psycopg': psycopg.__version__, 'psycopg_pool': psycopg_pool.__version__, 'asyncpg': asyncpg.__version__,"
         "'django_rustpg': django_rustpg.__version__}))")
    info["versions"] = json.loads(subprocess.run([sys.executable, "-c", q], capture_output=True, text=True).stdout or "{}")
    if venv_python(PSYCOPG2_VENV).exists():
        info["versions"]["psycopg2"] = subprocess.run(
            [str(venv_python(PSYCOPG2_VENV)), "-c", "import psycopg2; print(psycopg2.__version__.split()[0])"],
            capture_output=True, text=True).stdout.strip()
    try:
        import psycopg
        from djbench.settings import server_params

        p = server_params(os.environ.get("DATABASE_URL", DEFAULT_URL))
        with psycopg.connect(host=p["HOST"], port=p["PORT"], user=p["USER"], password=p["PASSWORD"] or None,
                             dbname="postgres") as c:
            info["pg"] = c.execute("SHOW server_version").fetchone()[0]
            info["pg_ssl"] = c.execute("SHOW ssl").fetchone()[0]
    except Exception as e:
        info["pg"] = f"? ({e})"
    return info


def fmt_ms(s):
    ms = s * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def fmt_x(x):
    return "–" if x is None else f"{x:.2f}×"


def summarize(runs, engines):
    """Per scenario and engine: samples, median, min, RSS, verification; then ratios, checks."""
    rows = {}
    for r in runs:
        s = rows.setdefault(r["scenario"], {}).setdefault(r["engine"], {"times": [], "errors": [], "verify": None,
                                                                        "rss_peak_kb": 0, "rss_delta_kb": 0, "http": []})
        if "error" in r:
            s["errors"].append(r["error"])
            continue
        if "digest" in r and s["verify"] is None:
            s["verify"] = {k: r[k] for k in ("digest", "queries", "items", "types", "sample")}
        if "times" in r:
            s["times"] += r["times"]
            s["rss_peak_kb"] = max(s["rss_peak_kb"], r["rss_peak_kb"])
            s["rss_delta_kb"] = max(s["rss_delta_kb"], r["rss_peak_kb"] - r["rss_base_kb"])
        if "rps" in r:
            s["http"].append(r)
        if r.get("stderr"):
            s.setdefault("stderr", r["stderr"])
    out = {}
    for name, per in rows.items():
        res = {"engines": {}, "problems": [], "mismatches": []}
        for e in engines:
            s = per.get(e)
            if s is None:
                continue
            d = {"errors": s["errors"], "verify": s["verify"], "stderr": s.get("stderr")}
            if s["http"]:
                rps = [h["rps"] for h in s["http"]]
                d.update(rps=statistics.median(rps), rps_all=rps, p99_ms=statistics.median(h["p99_ms"] for h in s["http"]),
                         load_generator=s["http"][0]["load_generator"], median=1 / statistics.median(rps), min=1 / max(rps))
            elif s["times"]:
                d.update(median=statistics.median(s["times"]), min=min(s["times"]), n=len(s["times"]),
                         rss_peak_mb=s["rss_peak_kb"] / 1024, rss_delta_mb=s["rss_delta_kb"] / 1024)
            res["engines"][e] = d
            for err in s["errors"]:
                res["problems"].append(f"{LABELS[e]} failed:\n{err}")
        # Identical data (values and types) and query counts, against django_rustpg's if it ran.
        verified = {e: d["verify"] for e, d in res["engines"].items() if d["verify"]}
        if verified:
            ref = "rustpg" if "rustpg" in verified else next(iter(verified))
            rv = verified[ref]
            for e, v in verified.items():
                if e == ref:
                    continue
                if v["queries"] != rv["queries"]:
                    res["mismatches"].append(f"query count: {LABELS[ref]} sent {rv['queries']}, {LABELS[e]} {v['queries']}")
                if v["digest"] != rv["digest"]:
                    msg = f"data differs: {LABELS[ref]} vs {LABELS[e]} ({rv['items']} vs {v['items']} items)"
                    only_ref = sorted(set(rv["types"]) - set(v["types"]))
                    only_e = sorted(set(v["types"]) - set(rv["types"]))
                    if only_ref or only_e:
                        msg += f"\n  types only in {LABELS[ref]}: {only_ref}\n  types only in {LABELS[e]}: {only_e}"
                    if rv["sample"] != v["sample"]:
                        i = next((i for i, (a, b) in enumerate(zip(rv["sample"], v["sample"])) if a != b),
                                 min(len(rv["sample"]), len(v["sample"])))
                        lo = max(0, i - 80)
                        msg += (f"\n  first item, from char {lo}:\n    {LABELS[ref]}: {rv['sample'][lo:i + 160]}"
                                f"\n    {LABELS[e]}: {v['sample'][lo:i + 160]}")
                    res["mismatches"].append(msg)
        rust = res["engines"].get("rustpg", {}).get("median")
        res["verified"] = len(verified)
        res["x"] = {}
        if rust:
            for e in STOCK:
                m = res["engines"].get(e, {}).get("median")
                if m:
                    res["x"][e] = m / rust
            stock = [res["engines"][e]["median"] for e in STOCK if res["engines"].get(e, {}).get("median")]
            if stock:
                res["x"]["best"] = min(stock) / rust
                # Minimums are the estimate least disturbed by other load on the machine.
                mins = [res["engines"][e]["min"] for e in STOCK if res["engines"].get(e, {}).get("min")]
                res["x"]["best_by_min"] = min(mins) / res["engines"]["rustpg"]["min"]
                interval = best_ratio_interval(per, name)
                if interval:
                    res["x"]["best_interval"] = interval
                paired = paired_by_round(runs, name)
                if paired:
                    res["x"]["best_paired"], res["x"]["rounds_won"] = paired
                cycles = paired_by_cycle(runs, name)
                if cycles:
                    res["x"]["best_by_cycle"], res["x"]["cycles_won"] = cycles
        target = SCENARIOS[name].target
        res["target"] = target
        if target and rust:
            ref, factor = target
            got = res["x"].get(ref)
            res["target_met"] = None if got is None else got >= factor
        out[name] = res
    return out


def best_stock_engine(runs, name):
    """The stock engine with the lowest median over all its repetitions: the paired ratios
    compare against that one configuration in every round or cycle. (The fastest stock engine
    of each round would be the best of three noisy draws, a bias against django_rustpg.)"""
    times = {}
    for r in runs:
        if r.get("scenario") == name and r.get("times") and r.get("engine") in STOCK:
            times.setdefault(r["engine"], []).extend(r["times"])
    return min(times, key=lambda e: statistics.median(times[e])) if times else None


def paired_by_round(runs, name):
    """(median over rounds of best stock / ours within the round, "won/rounds"): engines of
    one round run back to back, so drift between rounds cancels. None with one round."""
    by_round = {}
    for r in runs:
        if r.get("scenario") == name and r.get("times") and "round" in r:
            by_round.setdefault(r["round"], {})[r["engine"]] = statistics.median(r["times"])
    best = best_stock_engine(runs, name)
    ratios = [engines[best] / engines["rustpg"] for engines in by_round.values() if "rustpg" in engines and best in engines]
    if len(ratios) < 2:
        return None
    return statistics.median(ratios), f"{sum(x > 1 for x in ratios)}/{len(ratios)}"


def paired_by_cycle(runs, name):
    """(median over lockstep cycles of best stock / ours within the cycle, "won/cycles"): in
    an interleaved round, repetition i of every engine ran in the same cycle, seconds apart.
    None when the scenario did not run interleaved."""
    by_round = {}
    for r in runs:
        if r.get("scenario") == name and r.get("times") and r.get("interleaved"):
            by_round.setdefault(r["round"], {})[r["engine"]] = r["times"]
    best = best_stock_engine(runs, name)
    ratios = [stock / ours for engines in by_round.values() if "rustpg" in engines and best in engines
              for stock, ours in zip(engines[best], engines["rustpg"])]
    if len(ratios) < 2:
        return None
    return statistics.median(ratios), f"{sum(x > 1 for x in ratios)}/{len(ratios)}"


def best_ratio_interval(per, name, draws=2000, level=0.90):
    """A bootstrap interval for "× best stock": every engine's repetitions resampled (with
    replacement), the ratio of medians recomputed. Where it spans 1.0, this run cannot tell
    the engines apart. Approximate: repetitions of one worker are not independent."""
    import random

    ours = per.get("rustpg", {}).get("times") or []
    stock = [per[e]["times"] for e in STOCK if per.get(e, {}).get("times")]
    if len(ours) < 3 or not stock or any(len(t) < 3 for t in stock):
        return None
    rng = random.Random(f"{name}:{len(ours)}")
    ratios = sorted(
        min(statistics.median(rng.choices(t, k=len(t))) for t in stock) / statistics.median(rng.choices(ours, k=len(ours)))
        for _ in range(draws)
    )
    tail = (1 - level) / 2
    return ratios[int(tail * draws)], ratios[int((1 - tail) * draws) - 1]


def target_text(target):
    if not target:
        return ""
    ref, factor = target
    return f"≥{factor:g}× {'best' if ref == 'best' else LABELS[ref]}"


def render_markdown(info, summary, anchors, rust, order, engines, wall, profile, argv):
    v = info.get("versions", {})
    lines = [f"# django_rustpg benchmark — {info['date']}", ""]
    la = lambda t: "/".join(f"{x:.2f}" for x in t)
    lines.append(
        f"**Machine:** {info['nproc']} CPUs ({info.get('cpu', '?')}), load average {la(info['loadavg_start'])} at start, "
        f"{la(info['loadavg_end'])} at end; PostgreSQL {info.get('pg', '?')} (ssl={info.get('pg_ssl', '?')}: every client "
        f"on its default sslmode=prefer, so TLS); Python {info['python']}, Django {v.get('django', '?')}, "
        f"django_rustpg {v.get('django_rustpg', '?')}, psycopg {v.get('psycopg', '?')} (pool {v.get('psycopg_pool', '?')}), "
        f"psycopg2 {v.get('psycopg2', '–')}, asyncpg {v.get('asyncpg', '?')}. "
        f"**Run:** `{' '.join(['benches/run.py', *argv])}` ({profile}: {PROFILES[profile]['rounds']} round(s), "
        f"{PROFILES[profile]['single_row_rounds']} for the single-row group and prefetch_200, "
        f"≥{PROFILES[profile]['reps']} timed repetition(s) per worker), wall time {wall / 60:.1f} min.")
    ns = [d["n"] for r in summary.values() for d in r["engines"].values() if "n" in d]
    samples = f"{min(ns)}–{max(ns)}" if ns and min(ns) != max(ns) else str(ns[0]) if ns else "0"
    lines += ["", f"Times: median (min) in ms over all timed repetitions ({samples} per engine and scenario, "
              "from fresh worker processes, engines alternating; the near-parity scenarios' workers of a round "
              "run in lockstep, one repetition of one engine at a time, rotating). `×` = stock median / django_rustpg median, "
              "so above 1 means django_rustpg is faster; `× best (by min)` compares minimums instead, which other "
              "load on the machine disturbs least. http_list_100 shows requests/s and p99 latency (ratios of "
              "requests/s). **loses** = slower than the best stock configuration; targets are judged on medians. "
              "In brackets: a 90% bootstrap interval of `× best stock` (repetitions resampled); where it spans 1.00 "
              "the run cannot tell the engines apart. \"by round\": the median over rounds of the ratio within each round "
              "(the engines of a round run back to back, so drift between rounds cancels), and how many rounds "
              "django_rustpg won (best stock: the stock engine with the lowest median over the whole run); \"by cycle\": the same over the lockstep cycles of the near-parity scenarios, "
              "whose repetitions of all engines ran seconds apart.", ""]
    head = (["scenario"] + [LABELS[e] for e in engines]
            + [f"× {LABELS[e]}" for e in engines if e != "rustpg"]
            + (["× best stock", "× best (by min)", "target", "result"] if "rustpg" in engines else [])
            + ["same data & queries"])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in order:
        res = summary.get(name)
        if not res:
            continue
        cells = [f"`{name}`"]
        for e in engines:
            d = res["engines"].get(e, {})
            if d.get("errors") and "median" not in d:
                cells.append("**FAILED**")
            elif "rps" in d:
                cells.append(f"{d['rps']:.0f} rps, p99 {d['p99_ms']:.0f} ms")
            elif "median" in d:
                cells.append(f"{fmt_ms(d['median'])} ({fmt_ms(d['min'])})")
            else:
                cells.append("–")
        cells += [fmt_x(res["x"].get(e)) for e in engines if e != "rustpg"]
        if "rustpg" in engines:
            best = res["x"].get("best")
            cell = "–" if best is None else f"**loses {best:.2f}×**" if best < 0.995 else f"{best:.2f}×"
            interval = res["x"].get("best_interval")
            if interval:
                cell += f" ({interval[0]:.2f}–{interval[1]:.2f})"
            if res["x"].get("best_paired") is not None:
                cell += f"; by round {res['x']['best_paired']:.2f}× (won {res['x']['rounds_won']})"
            if res["x"].get("best_by_cycle") is not None:
                cell += f"; by cycle {res['x']['best_by_cycle']:.2f}× (won {res['x']['cycles_won']})"
            cells.append(cell)
            by_min = res["x"].get("best_by_min")
            cells.append("–" if by_min is None else f"loses {by_min:.2f}×" if by_min < 0.995 else f"{by_min:.2f}×")
            cells.append(target_text(res["target"]))
            met = res.get("target_met")
            cells.append("" if met is None else "met" if met else "below target")
        cells.append("**NO** (see below)" if res["mismatches"] else "yes" if res["verified"] > 1 else "–")
        lines.append("| " + " | ".join(cells) + " |")

    # Memory.
    lines += ["", "## Peak RSS per worker process (MB)", "",
              "Peak = the worker's ru_maxrss; Δ = peak minus the process's RSS after Django setup and connecting.", ""]
    mem_engines = engines
    lines += ["| scenario | " + " | ".join(f"{LABELS[e]} peak (Δ)" for e in mem_engines)
              + (" | Δ django_rustpg / Δ psycopg 3 |" if "rustpg" in engines and "psycopg3" in engines else " |"),
              "|" + "---|" * (len(mem_engines) + 1 + ("rustpg" in engines and "psycopg3" in engines))]
    for name in order:
        res = summary.get(name)
        if not res or name == "http_list_100":
            continue
        cells = [f"`{name}`"]
        for e in mem_engines:
            d = res["engines"].get(e, {})
            cells.append(f"{d['rss_peak_mb']:.0f} ({d['rss_delta_mb']:.1f})" if "rss_peak_mb" in d else "–")
        if "rustpg" in engines and "psycopg3" in engines:
            a, b = (res["engines"].get(e, {}).get("rss_delta_mb") for e in ("rustpg", "psycopg3"))
            cells.append(f"{a / b:.2f}" if a is not None and b else "–")
        lines.append("| " + " | ".join(cells) + " |")

    # Anchors.
    if anchors:
        lines += ["", "## Raw drivers outside Django (same data)", "",
                  f"`{ANCHOR_FETCH_DESC}`; and 2,000 single-row fetches by primary key. Autocommit, each driver's "
                  "defaults otherwise (psycopg 3 prepares after 5 executions, asyncpg always, django_rustpg never).", "",
                  "| driver | version | 100k fetch ms | µs/row | 2,000 pk fetches ms | µs/query | peak RSS MB |",
                  "|---|---|---|---|---|---|---|"]
        for name, a in anchors.items():
            if "error" in a:
                lines.append(f"| {ANCHOR_LABELS[name]} | | **FAILED** | | | | |")
                continue
            f, p = statistics.median(a["fetch_times"]), statistics.median(a["pk_times"])
            lines.append(f"| {ANCHOR_LABELS[name]} | {a['driver'].split()[-1]} | {fmt_ms(f)} | {f / 100_000 * 1e6:.2f} | "
                         f"{fmt_ms(p)} | {p / 2_000 * 1e6:.0f} | {a['rss_peak_kb'] / 1024:.0f} |")
        floor = (rust or {}).get("medians_ns", {})
        for key in ("pool_fetch_100k/raw", "pool_fetch_100k/decoded"):
            if key in floor:
                ns = floor[key]
                when = "" if rust.get("this_run") else f", from the `cargo bench` of {rust['date']}"
                lines.append(f"| Rust only, no Python objects (`{key}`{when}) | criterion | {ns / 1e6:.0f} | "
                             f"{ns / 1e3 / 100_000:.2f} | | | |")
    checks = target_checks(summary, anchors)
    if checks:
        lines += ["", "## Other design targets", ""] + [f"- {c}" for c in checks]
    if rust and rust.get("medians_ns") and rust.get("this_run"):
        lines += ["", "## Rust micro-benchmarks (criterion medians)", "", "| benchmark | median |", "|---|---|"]
        for k, ns in rust["medians_ns"].items():
            lines.append(f"| `{k}` | {ns / 1e6:.2f} ms |" if ns >= 1e6 else f"| `{k}` | {ns / 1e3:.2f} µs |" if ns >= 1e3
                         else f"| `{k}` | {ns:.1f} ns |")
    elif rust and rust.get("error"):
        lines += ["", f"Rust micro-benchmarks: **{rust['error']}**"]

    problems = [(name, p) for name in order if name in summary
                for p in summary[name]["problems"] + summary[name]["mismatches"]]
    problems += [(f"anchor {name}", f"{ANCHOR_LABELS[name]} failed:\n{a['error']}") for name, a in anchors.items()
                 if "error" in a]
    if any("load_generator" in d and d["load_generator"] != "wrk" for r in summary.values() for d in r["engines"].values()):
        lines += ["", "**Note:** wrk was not found; http_list_100 used the Python fallback load generator, "
                  "which competes with gunicorn for the CPUs (install wrk: `apt-get install -y wrk`)."]
    lines += ["", "## Errors and mismatches", ""]
    if problems:
        for name, p in problems:
            first, *rest = p.splitlines()
            lines.append(f"- `{name}`: {first}")
            if rest:
                lines += ["  ```", *("  " + x for x in rest), "  ```"]
    else:
        lines.append("None: every engine returned identical values (and Python types) and sent the same number of queries.")
    notes = [(name, e, d["stderr"]) for name in order if name in summary
             for e, d in summary[name]["engines"].items() if d.get("stderr") and not d["errors"]]
    if notes:
        lines += ["", "## Worker stderr (runs that succeeded)", ""]
        for name, e, text in notes:
            lines += [f"- `{name}` / {LABELS[e]}:", "  ```", *("  " + x for x in text.splitlines()[-8:]), "  ```"]
    lines += ["", "Scenarios:", ""] + [f"- `{n}`: {SCENARIOS[n].doc}" for n in order]
    return "\n".join(lines) + "\n"


ANCHOR_FETCH_DESC = "SELECT id, book_id, rating, created_at, body FROM shop_review ORDER BY id (100,000 rows)"


def target_checks(summary, anchors):
    out = []
    per_row = {n: statistics.median(a["fetch_times"]) / 100_000 * 1e6 for n, a in anchors.items() if "error" not in a}
    if "rustpg" in per_row:
        r = per_row["rustpg"]
        out.append(f"Raw django_rustpg cursor ≤2 µs/row: {r:.2f} µs/row — {'met' if r <= 2 else 'not met'}.")
        if "asyncpg" in per_row:
            a = per_row["asyncpg"]
            out.append(f"Raw cursor ahead of asyncpg: {r:.2f} vs {a:.2f} µs/row — {'met' if r < a else 'not met (loses)'}.")
    fetch = summary.get("raw_fetch_100k", {}).get("engines", {})
    if "rss_delta_mb" in fetch.get("rustpg", {}) and "rss_delta_mb" in fetch.get("psycopg3", {}):
        a, b = fetch["rustpg"]["rss_delta_mb"], fetch["psycopg3"]["rss_delta_mb"]
        pa, pb = fetch["rustpg"]["rss_peak_mb"], fetch["psycopg3"]["rss_peak_mb"]
        out.append(f"Peak RSS on raw_fetch_100k ≤0.7× psycopg 3: Δ {a:.1f} vs {b:.1f} MB = {a / b:.2f}× "
                   f"(whole process {pa:.0f} vs {pb:.0f} MB = {pa / pb:.2f}×) — {'met' if a / b <= 0.7 else 'not met'}.")
    return out


def render_chart(summary, order, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in order if summary.get(n, {}).get("x")]
    if not names:
        return False
    stock = [e for e in STOCK if any(e in summary[n]["x"] for n in names)]
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(names) + 1.5))
    h = 0.8 / max(len(stock), 1)
    for i, e in enumerate(stock):
        ys = [k + i * h for k in range(len(names))]
        ax.barh(ys, [summary[n]["x"].get(e, 0) for n in names], height=h, label=f"vs {LABELS[e]}")
    for k, n in enumerate(names):
        t = summary[n]["target"]
        if t:
            ax.plot([t[1]] * 2, [k - h / 2, k + h * (len(stock) - 0.5)], color="black", lw=1.5)
    ax.axvline(1.0, color="red", lw=1, ls="--")
    ax.set_yticks([k + h * (len(stock) - 1) / 2 for k in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xscale("log", base=2)
    ticks = [t for t in (0.25, 0.5, 1, 1.5, 2, 3, 4, 8) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1] * 1.05]
    ax.set_xticks(ticks, [f"{t:g}×" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("speed-up of django_rustpg = stock median / django_rustpg median (black tick: design target)")
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- main

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one round, fewer repetitions (~3-4 min)")
    ap.add_argument("--scenarios", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    ap.add_argument("--engines", help=f"comma-separated subset of: {', '.join(ENGINES)}")
    ap.add_argument("--rounds", type=int, help="override the profile's number of rounds")
    ap.add_argument("--no-interleave", action="store_true",
                    help="near-parity scenarios too: one worker after another, not in lockstep")
    ap.add_argument("--no-seed", action="store_true", help="reuse the existing bench database (development)")
    ap.add_argument("--no-anchors", action="store_true", help="skip the raw-driver anchors")
    ap.add_argument("--rust", action="store_true", help="also run `cargo bench --bench micro` (criterion) first")
    ap.add_argument("--rust-only", action="store_true", help="only the criterion micro-benchmarks")
    ap.add_argument("--from-json", metavar="PATH", help="re-render the report from a saved latest.json; run nothing")
    args = ap.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        return write_report(saved["info"], saved["profile_name"], saved["argv"], saved["wall_seconds"],
                            saved["engines"], saved["order"], saved["anchors"], saved["rust"], saved["runs"])
    profile = "quick" if args.quick else "full"
    prof = dict(PROFILES[profile])
    if args.rounds:
        prof["rounds"] = prof["single_row_rounds"] = args.rounds
    order = list(SCENARIOS)
    if args.scenarios:
        order = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = set(order) - set(SCENARIOS)
        if unknown:
            ap.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    engines = ENGINES
    if args.engines:
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        if set(engines) - set(ENGINES):
            ap.error(f"unknown engines: {', '.join(sorted(set(engines) - set(ENGINES)))}")
        engines = [e for e in ENGINES if e in engines]
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)

    t_start, load_start = time.time(), os.getloadavg()
    ensure_main_deps()
    if "psycopg2" in engines or not args.no_anchors:
        ensure_psycopg2_venv()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rust = None
    if args.rust or args.rust_only:
        if not args.no_seed:
            seed()  # the Rust fetch reads the bench database
            args.no_seed = True
        rust = run_rust(args.quick)
        if args.rust_only:
            print(json.dumps(rust, indent=1))
            return 1 if "error" in rust else 0
    if not args.no_seed:
        seed()
    if rust is None:
        rust = criterion_results()  # an earlier `cargo bench`, for the Rust-only floor (dated)

    runs = []
    all_rounds = max(prof["rounds"], prof["single_row_rounds"])
    for rnd in range(all_rounds):
        rot = engines[rnd % len(engines):] + engines[:rnd % len(engines)]  # no engine always goes first
        for name in order:
            if rnd >= (prof["single_row_rounds"] if name in NEAR_PARITY else prof["rounds"]):
                continue
            if name in NEAR_PARITY and SCENARIOS[name].run and not args.no_interleave:
                t0 = time.time()
                for engine, r in zip(rot, run_interleaved(rot, name, prof, verify=rnd == 0)):
                    r.update(scenario=name, engine=engine, round=rnd, interleaved=True)
                    runs.append(r)
                    status = ("FAILED: " + r["error"].strip().splitlines()[-1] if "error" in r else
                              f"median {statistics.median(r['times']) * 1e3:.1f} ms x{len(r['times'])}")
                    log(f"[round {rnd + 1}/{all_rounds}] {name:18} {engine:14} {status}  (lockstep)")
                log(f"[round {rnd + 1}/{all_rounds}] {name:18} lockstep round took {time.time() - t0:.1f}s")
                continue
            for engine in rot:
                t0 = time.time()
                if SCENARIOS[name].run is None:
                    r = run_http(engine, prof["http_seconds"], verify=rnd == 0)
                    what = f"{r['rps']:.0f} rps, p99 {r['p99_ms']:.1f} ms" if "rps" in r else ""
                else:
                    r = run_scenario(engine, name, prof, verify=rnd == 0)
                    what = (f"median {statistics.median(r['times']) * 1e3:.1f} ms x{len(r['times'])}"
                            if "times" in r else "")
                r.update(scenario=name, engine=engine, round=rnd)
                runs.append(r)
                status = "FAILED: " + r["error"].strip().splitlines()[-1] if "error" in r else what
                log(f"[round {rnd + 1}/{all_rounds}] {name:18} {engine:14} {status}  ({time.time() - t0:.1f}s)")

    anchors = {}
    if not args.no_anchors:
        for name in ANCHORS:
            if name == "psycopg2" and not venv_python(PSYCOPG2_VENV).exists():
                continue
            anchors[name] = a = run_anchor(name, prof["anchor_reps"])
            log(f"[anchor] {name:16} " + (("FAILED: " + a["error"].strip().splitlines()[-1]) if "error" in a else
                f"fetch {statistics.median(a['fetch_times']) * 1e3:.0f} ms, pk {statistics.median(a['pk_times']) * 1e3:.0f} ms"))

    wall = time.time() - t_start
    return write_report(machine_info(load_start), profile, argv, wall, engines, order, anchors, rust, runs)


def write_report(info, profile, argv, wall, engines, order, anchors, rust, runs):
    """Summarizes the runs and writes latest.{md,json,png}; returns the exit status."""
    summary = summarize(runs, engines)
    md = render_markdown(info, summary, anchors, rust, order, engines, wall, profile, argv)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = {"info": info, "profile_name": profile, "profile": PROFILES[profile], "argv": argv,
               "wall_seconds": wall, "engines": engines, "order": order, "summary": summary,
               "anchors": anchors, "rust": rust, "runs": runs}
    (RESULTS / f"{LATEST}.md").write_text(md)
    (RESULTS / f"{LATEST}.json").write_text(json.dumps(payload, indent=1, default=str))
    (RESULTS / "raw").mkdir(exist_ok=True)
    (RESULTS / "raw" / f"{stamp}.json").write_text(json.dumps(payload, default=str))
    title = (f"django_rustpg vs stock Django backends — {info['date']}, {info['nproc']} CPUs, "
             f"PostgreSQL {str(info.get('pg', '?')).split()[0]}, {profile} run")
    chart = render_chart(summary, order, RESULTS / f"{LATEST}.png", title) if "rustpg" in engines else False
    print(md)
    log(f"wrote {RESULTS.relative_to(ROOT)}/{LATEST}.md, {LATEST}.json" + (f", {LATEST}.png" if chart else "")
        + f" ({wall / 60:.1f} min)")
    failed = (any(s["problems"] or s["mismatches"] for s in summary.values())
              or any("error" in a for a in anchors.values()))
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
