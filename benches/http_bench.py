#!/usr/bin/env python3
"""Real endpoints: three HTTP scenarios under gunicorn (gthread), loaded by wrk.

    make bench-http                                   3 rounds x 10 s per scenario and engine
    .venv/bin/python benches/http_bench.py --rounds 1 --seconds 5 --engines rustpg,psycopg3_pool

- http_list:   GET /api/books/?page=N      DRF ListAPIView, page of 50, select_related(author),
               prefetch_related(labels, reviews), nested serializers (count + 4 queries)
- http_detail: GET /books/<pk>/            a detail page of 12 small ORM queries
- http_admin:  GET /admin/shop/book/?...   the admin changelist of the 20,000 books, with a
               list_filter and a search, as a logged-in superuser (session in the database)

Each (round, scenario) starts a fresh gunicorn (2 workers x 4 threads) per engine, all up
at once, then runs them in lockstep: cycles of one 2 s wrk burst at 8 connections per
engine, one engine at a time, the order rotating each cycle, so that the machine's swings
hit every engine alike (--no-lockstep: one gunicorn and one wrk run at a time).
Round 1 first fetches every URL of the scenario and compares the bodies across engines
(the admin's per-request CSRF token masked). A profile pass (one worker, one thread,
sequential requests) splits a request's time into gunicorn/HTTP, Django, driver and
PostgreSQL (see djbench/wsgi_http.py). Writes benches/results/http.{md,json}.
"""
import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))
import run as bench  # noqa: E402  (helpers: venvs, seeding, wrk parsing)

RESULTS = BENCHES / "results"
WORKERS, THREADS, CONNECTIONS = 2, 4, 8
BURST_SECONDS = 2  # --lockstep: one wrk run per engine per cycle
ENGINES = ["rustpg", "psycopg3", "psycopg3_pool", "psycopg2"]


def _detail_pks():
    import random

    return random.Random(16).sample(range(1, 20_001), 64)


SCENARIOS = {
    "http_list": dict(
        target=2.0, paths=[f"/api/books/?page={p}" for p in (1, 7, 13, 19, 25, 31, 37, 3, 9, 15, 21, 27, 33, 39)],
        doc="DRF ListAPIView: page of 50 books, select_related(author), prefetch_related(labels, reviews), "
            "nested serializers"),
    "http_detail": dict(
        target=1.1, paths=[f"/books/{pk}/" for pk in _detail_pks()],
        doc="detail page of 12 small ORM queries (get x2, first x3, count x2, exists x2, short related lists)"),
    "http_admin": dict(
        target=1.3, admin=True,
        paths=["/admin/shop/book/?in_stock__exact=1&q=water", "/admin/shop/book/?q=people",
               "/admin/shop/book/?author__is_active__exact=0&q=time", "/admin/shop/book/?in_stock__exact=1&p=3"],
        doc="admin changelist of 20,000 books (list_filter in_stock and author__is_active, search on title, "
            "list_select_related author), logged-in superuser"),
}
CSRF = re.compile(rb'(name="csrfmiddlewaretoken" value=")[^"]+')


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_deps(engines):
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("gunicorn", "rest_framework", "psycopg_pool")):
        bench.pip_install(sys.executable, "-r", str(BENCHES / "requirements.txt"))
    if "psycopg2" in engines:
        py = bench.ensure_psycopg2_venv()
        if subprocess.run([str(py), "-c", "import rest_framework"], capture_output=True).returncode:
            bench.pip_install(py, "djangorestframework")


def http_seed():
    r = subprocess.run([sys.executable, "-m", "djbench.http_seed"], cwd=BENCHES, capture_output=True, text=True,
                       env=bench.child_env(BENCH_ENGINE="psycopg3", DJANGO_SETTINGS_MODULE="djbench.settings_http"))
    if r.returncode:
        sys.exit(f"http_seed failed:\n{r.stdout}{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])["cookie"]


class Server:
    """gunicorn serving djbench.wsgi_http for one engine.

    --worker-connections = threads: a gthread worker otherwise accepts every connection it
    wins the race for, and wrk's 8 keep-alive connections often all went to one worker
    (one core busy, the other idle: measured, ~half the req/s in such a burst, for any engine)."""

    def __init__(self, engine, workers=WORKERS, threads=THREADS, profile=False):
        self.engine, self.port = engine, bench.free_port()
        gunicorn = bench.engine_python(engine).parent / "gunicorn"
        cmd = [gunicorn, "djbench.wsgi_http:application", "--worker-class", "gthread", "--workers", workers,
               "--threads", threads, "--worker-connections", threads, "--bind", f"127.0.0.1:{self.port}", "--chdir", BENCHES,
               "--pythonpath", BENCHES, "--log-level", "warning"]
        self.errlog = RESULTS / "raw" / f"gunicorn-http-{engine}.log"
        self.errlog.parent.mkdir(parents=True, exist_ok=True)
        env = bench.child_env(BENCH_ENGINE=engine, DJANGO_SETTINGS_MODULE="djbench.settings_http",
                              BENCH_PROFILE="1" if profile else "0")
        with open(self.errlog, "w") as err:
            self.proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=subprocess.DEVNULL, stderr=err)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, headers=None):
        req = urllib.request.Request(self.url(path), headers=headers or {})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()

    def wait_ready(self, path, headers):
        deadline = time.time() + 60
        while True:
            try:
                return self.get(path, headers)
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"gunicorn ({self.engine}) did not serve {path}:\n"
                                       f"{self.errlog.read_text()[-3000:]}")
                time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def lua_script(paths, cookie):
    lines = ["local paths = {" + ", ".join(json.dumps(p) for p in paths) + "}", "local i = 0"]
    if cookie:
        lines.append(f'wrk.headers["Cookie"] = {json.dumps(cookie)}')
    lines += ["request = function()", "  i = i + 1", "  return wrk.format(nil, paths[(i % #paths) + 1])", "end"]
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    f.write("\n".join(lines) + "\n")
    f.close()
    return f.name


def wrk(server, script, seconds):
    # --timeout: at the default 2 s a loaded machine turns slow requests into uncounted errors.
    p = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "30s", "--latency", "-s", script,
                        server.url("/")], capture_output=True, text=True, timeout=seconds + 60)
    out = p.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    if p.returncode or not rps or not p99:
        raise RuntimeError(f"wrk failed (exit {p.returncode}):\n{out}{p.stderr}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"wrk: {bad.group(1)} non-2xx responses\n{out}")
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        raise RuntimeError(f"wrk: socket errors ({errors.group(1)})\n{out}")
    return {"rps": float(rps.group(1)), "p99_ms": bench.parse_duration_ms(p99.group(1)),
            "p50_ms": bench.parse_duration_ms(p50.group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1))}


def verify_bodies(server, sc, headers):
    """sha256 over every path's normalized body; checks each is a real 200 page."""
    h = hashlib.sha256()
    for path in sc["paths"]:
        status, _, body = server.get(path, headers)
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}")
        if sc.get("admin") and b'id="result_list"' not in body:
            raise RuntimeError(f"{path}: not a changelist (login page?): {body[:300]!r}")
        # DRF's next/previous links name this server's port; the admin's CSRF token is per request.
        body = CSRF.sub(rb"\1", body.replace(f"127.0.0.1:{server.port}".encode(), b"HOST"))
        h.update(path.encode() + b"\0" + body + b"\0")
    return h.hexdigest()


def run_lockstep(engines, name, seconds, cookie, verify, burst=BURST_SECONDS):
    """One round of a scenario with every engine's gunicorn up at once: cycles of one
    `burst`-second wrk run per engine, in an order rotating by cycle, until each engine had
    `seconds` of load. Bursts of all engines land seconds apart, so the shared machine's
    swings (a CPU-bound loop here varies by ±40% from one second to the next) hit every
    engine alike, and each burst reopens wrk's connections, re-dealing them between the two
    gunicorn workers. Returns one result per engine: medians over its bursts, and the bursts."""
    sc = SCENARIOS[name]
    headers = {"Cookie": cookie} if sc.get("admin") else {}
    script = lua_script(sc["paths"], cookie if sc.get("admin") else None)
    servers, out = {}, {e: {"scenario": name, "engine": e, "bursts": []} for e in engines}
    try:
        for engine in engines:  # one at a time: start-up and verification never overlap a measurement
            try:
                servers[engine] = server = Server(engine)
                server.wait_ready(sc["paths"][0], headers)
                if verify:
                    out[engine]["digest"] = verify_bodies(server, sc, headers)
                wrk(server, script, 1)  # warm-up: both workers connected, caches filled
            except Exception as e:
                out[engine]["error"] = f"{type(e).__name__}: {e}"
        live = [e for e in engines if "error" not in out[e]]
        for cycle in range(max(1, round(seconds / burst))):
            k = cycle % len(live) if live else 0
            for engine in live[k:] + live[:k]:
                if "error" in out[engine]:
                    continue
                try:
                    out[engine]["bursts"].append(wrk(servers[engine], script, burst))
                except Exception as e:
                    out[engine]["error"] = f"{type(e).__name__}: {e}"
    finally:
        for server in servers.values():
            server.stop()
        os.unlink(script)
    for r in out.values():
        if r["bursts"] and "error" not in r:
            b = r["bursts"]
            r.update(rps=statistics.median(x["rps"] for x in b), p99_ms=statistics.median(x["p99_ms"] for x in b),
                     p50_ms=statistics.median(x["p50_ms"] for x in b), requests=sum(x["requests"] for x in b))
    return [out[e] for e in engines]


def run_one(engine, name, seconds, cookie, verify):
    sc = SCENARIOS[name]
    headers = {"Cookie": cookie} if sc.get("admin") else {}
    out = {"scenario": name, "engine": engine}
    server = Server(engine)
    script = lua_script(sc["paths"], cookie if sc.get("admin") else None)
    try:
        server.wait_ready(sc["paths"][0], headers)
        if verify:
            out["digest"] = verify_bodies(server, sc, headers)
        wrk(server, script, 1)  # warm-up: both workers connected, caches filled
        out.update(wrk(server, script, seconds))
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        server.stop()
        os.unlink(script)
    return out


def profile(engine, names, cookie, requests):
    """One worker, one thread, sequential requests: mean µs per request in each layer."""
    import http.client

    server = Server(engine, workers=1, threads=1, profile=True)
    out = {}
    try:
        first = SCENARIOS[names[0]]
        server.wait_ready(first["paths"][0], {"Cookie": cookie} if first.get("admin") else {})
        for name in names:
            sc = SCENARIOS[name]
            headers = {"Cookie": cookie} if sc.get("admin") else {}
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            rows = []
            for i in range(requests + len(sc["paths"])):
                path = sc["paths"][i % len(sc["paths"])]
                pg = i < len(sc["paths"])  # one EXPLAIN ANALYZE pass over every path first (also warms up)
                t0 = time.perf_counter()
                conn.request("GET", path, headers={**headers, "X-Profile-Pg": "1" if pg else "0"})
                r = conn.getresponse()
                r.read()
                client = time.perf_counter() - t0
                if r.status != 200:
                    raise RuntimeError(f"{path}: HTTP {r.status}")
                rows.append((pg, client * 1e6, *(float(r.headers[k]) for k in ("X-App-Us", "X-Db-Us", "X-Pg-Us")),
                             int(r.headers["X-Queries"])))
            conn.close()
            timed = [r for r in rows if not r[0]]
            pg_rows = [r for r in rows if r[0]]
            mean = lambda rs, k: statistics.fmean(r[k] for r in rs)
            client, app, db = mean(timed, 1), mean(timed, 2), mean(timed, 3)
            pg = min(mean(pg_rows, 4), db)
            out[name] = {"client_us": client, "app_us": app, "db_us": db, "pg_us": pg,
                         "queries": sorted({r[5] for r in rows}),
                         "split_us": {"gunicorn + HTTP": client - app, "Django": app - db, "driver": db - pg,
                                      "PostgreSQL": pg}}
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        server.stop()
    return out


def paired_bursts(runs, name, best):
    """(median over lockstep cycles of django_rustpg's req/s / the best stock engine's, "won/n"):
    burst i of every engine of a round ran in the same cycle. None without lockstep runs."""
    by_round = {}
    for r in runs:
        if r["scenario"] == name and r.get("bursts") and "error" not in r:
            by_round.setdefault(r["round"], {})[r["engine"]] = [b["rps"] for b in r["bursts"]]
    ratios = [ours / stock for engines in by_round.values() if "rustpg" in engines and best in engines
              for ours, stock in zip(engines["rustpg"], engines[best])]
    if len(ratios) < 2:
        return None
    return statistics.median(ratios), f"{sum(x > 1 for x in ratios)}/{len(ratios)}"


def summarize(runs, engines):
    summary = {}
    for name in SCENARIOS:
        per = {}
        for e in engines:
            rs = [r for r in runs if r["scenario"] == name and r["engine"] == e and "rps" in r]
            if rs:
                per[e] = {"rps": statistics.median(r["rps"] for r in rs), "rps_all": [r["rps"] for r in rs],
                          "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                          "p50_ms": statistics.median(r["p50_ms"] for r in rs)}
        if not per:
            continue
        digests = {r["engine"]: r["digest"] for r in runs if r["scenario"] == name and "digest" in r}
        errors = [f"{r['engine']} round {r['round'] + 1}: {r['error']}" for r in runs
                  if r["scenario"] == name and "error" in r]
        stock = {e: d["rps"] for e, d in per.items() if e != "rustpg"}
        x = {}
        if "rustpg" in per:
            x = {e: per["rustpg"]["rps"] / v for e, v in stock.items()}
            if stock:
                x["best"] = per["rustpg"]["rps"] / max(stock.values())
                paired = paired_bursts(runs, name, max(stock, key=stock.get))
                if paired:
                    x["by_cycle"], x["cycles_won"] = paired
        summary[name] = {"engines": per, "x": x, "identical": len(set(digests.values())) <= 1,
                         "digests": digests, "errors": errors}
    return summary


def render(summary, profiles, engines, info):
    lab = bench.LABELS
    lockstep = (", engines interleaved" if info.get("no_lockstep") else
                f", in lockstep: every engine's gunicorn up at once, {BURST_SECONDS} s wrk bursts, one engine at a "
                "time, the order rotating each cycle (\"by cycle\": the median over cycles of django_rustpg's req/s "
                "over the best stock engine's in the same cycle, and the cycles won)")
    lines = ["# HTTP endpoints: django_rustpg vs stock Django backends", "",
             f"{info['date']}, {info['nproc']} CPUs (shared with other jobs: load average "
             f"{info['load'][0]:.1f} at start, {info['load_end'][0]:.1f} at end, so wall-clock ratios are noisy), "
             f"Python {info['python']}, Django {info['django']}; {info['rounds']} rounds x {info['seconds']} s of wrk "
             f"per scenario and engine{lockstep}; medians. gunicorn gthread {WORKERS} workers x {THREADS} "
             f"threads (worker_connections {THREADS}), wrk 1 thread x {CONNECTIONS} connections, CONN_MAX_AGE=0 (each engine's default).",
             "", f"`{' '.join(info['argv']) or '(defaults)'}`", "",
             "| scenario | " + " | ".join(lab[e] for e in engines) + " | × best stock | target | same responses |",
             "|---|" + "---|" * (len(engines) + 3)]
    for name, s in summary.items():
        cells = [f"`{name}`"]
        for e in engines:
            d = s["engines"].get(e)
            cells.append(f"{d['rps']:.0f} req/s, p99 {d['p99_ms']:.0f} ms" if d else "–")
        best = s["x"].get("best")
        target = SCENARIOS[name]["target"]
        cell = "–" if best is None else f"{best:.2f}×"
        if s["x"].get("by_cycle") is not None:
            cell += f"; by cycle {s['x']['by_cycle']:.2f}× (won {s['x']['cycles_won']})"
        cells.append(cell)
        cells.append(f"≥{target}× " + ("" if best is None else "met" if best >= target else "**not met**"))
        cells.append("yes" if s["identical"] and len(s["digests"]) > 1 else "**NO**" if not s["identical"] else "–")
        lines.append("| " + " | ".join(cells) + " |")
    if profiles:
        lines += ["", "## Where a request's time goes (profile pass: one worker, one thread, sequential requests)", "",
                  "µs per request, mean. gunicorn + HTTP = client latency − time in the Django application; "
                  "Django = application − time inside the database cursor; driver = cursor time − PostgreSQL; "
                  "PostgreSQL = planning + execution of the same statements (EXPLAIN ANALYZE, re-run untimed). "
                  "For django_rustpg the driver builds model instances itself, which stock does in Django.", "",
                  "| scenario | engine | queries | total | gunicorn + HTTP | Django | driver | PostgreSQL |",
                  "|---|---|---|---|---|---|---|---|"]
        for name in summary:
            for e in engines:
                p = profiles.get(e, {}).get(name)
                if not p:
                    continue
                sp = p["split_us"]
                pct = lambda v: f"{v:.0f} ({100 * v / p['client_us']:.0f}%)"
                lines.append(f"| `{name}` | {lab[e]} | {'/'.join(map(str, p['queries']))} | {p['client_us']:.0f} | "
                             + " | ".join(pct(sp[k]) for k in ("gunicorn + HTTP", "Django", "driver", "PostgreSQL"))
                             + " |")
    problems = [f"`{n}`: {err}" for n, s in summary.items() for err in s["errors"]]
    problems += [f"`{n}`: responses differ across engines: {s['digests']}" for n, s in summary.items()
                 if not s["identical"]]
    problems += [f"profile {e}: {p['error']}" for e, p in profiles.items() if "error" in p]
    lines += ["", "## Errors and mismatches", ""] + ([f"- {p}" for p in problems] or ["None."])
    lines += ["", "Scenarios:", ""] + [f"- `{n}`: {sc['doc']}; URLs: `{sc['paths'][0]}` and "
                                       f"{len(sc['paths']) - 1} more, in rotation" for n, sc in SCENARIOS.items()]
    return "\n".join(lines) + "\n", bool(problems)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--scenarios", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    ap.add_argument("--engines", help=f"comma-separated subset of: {', '.join(ENGINES)}")
    ap.add_argument("--no-seed", action="store_true", help="reuse the existing bench database")
    ap.add_argument("--no-lockstep", action="store_true",
                    help="one engine's gunicorn at a time, one wrk run of --seconds each (no bursts)")
    ap.add_argument("--profile-requests", type=int, default=200, help="0: skip the profile pass")
    args = ap.parse_args(argv)
    names = [s for s in (args.scenarios.split(",") if args.scenarios else SCENARIOS) if s]
    engines = [e for e in ENGINES if not args.engines or e in args.engines.split(",")]
    if set(names) - set(SCENARIOS):
        ap.error(f"unknown scenarios: {set(names) - set(SCENARIOS)}")
    if not bench.shutil.which("wrk"):
        sys.exit("http_bench.py: wrk is not installed (apt-get install -y wrk)")
    os.environ.setdefault("DATABASE_URL", bench.DEFAULT_URL)
    load = os.getloadavg()
    ensure_deps(engines)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.no_seed:
        bench.seed()
    cookie = http_seed()

    runs = []
    for rnd in range(args.rounds):
        rot = engines[rnd % len(engines):] + engines[:rnd % len(engines)]
        for name in names:
            if not args.no_lockstep:
                t0 = time.time()
                for r in run_lockstep(rot, name, args.seconds, cookie, verify=rnd == 0):
                    r["round"] = rnd
                    runs.append(r)
                    what = (f"FAILED: {r['error'].splitlines()[0]}" if "error" in r
                            else f"{r['rps']:.0f} req/s, p99 {r['p99_ms']:.1f} ms (bursts: "
                                 + ", ".join(f"{b['rps']:.0f}" for b in r["bursts"]) + ")")
                    log(f"[round {rnd + 1}/{args.rounds}] {name:12} {r['engine']:14} {what}")
                log(f"[round {rnd + 1}/{args.rounds}] {name:12} lockstep round took {time.time() - t0:.0f}s")
                continue
            for engine in rot:
                t0 = time.time()
                r = run_one(engine, name, args.seconds, cookie, verify=rnd == 0)
                r["round"] = rnd
                runs.append(r)
                what = (f"FAILED: {r['error'].splitlines()[0]}" if "error" in r
                        else f"{r['rps']:.0f} req/s, p99 {r['p99_ms']:.1f} ms")
                log(f"[round {rnd + 1}/{args.rounds}] {name:12} {engine:14} {what}  ({time.time() - t0:.0f}s)")
    profiles = {}
    if args.profile_requests:
        for engine in engines:
            profiles[engine] = profile(engine, names, cookie, args.profile_requests)
            log(f"[profile] {engine}: " + json.dumps({n: {k: round(v) for k, v in p["split_us"].items()}
                                                      for n, p in profiles[engine].items() if n != "error"}))
    import django

    info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "load": load, "load_end": os.getloadavg(), "python": sys.version.split()[0],
            "django": django.get_version(), "rounds": args.rounds, "seconds": args.seconds, "argv": argv,
            "no_lockstep": args.no_lockstep}
    summary = summarize(runs, engines)
    md, failed = render(summary, profiles, engines, info)
    suffix = bench.DJ_TAG
    (RESULTS / f"http{suffix}.md").write_text(md)
    (RESULTS / f"http{suffix}.json").write_text(json.dumps(
        {"info": info, "summary": summary, "profiles": profiles, "runs": runs}, indent=1, default=str))
    print(md)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
