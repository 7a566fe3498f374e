"""Load, restarts under load, fork and bad input, against a private server.

Sizes are short by default (`make test`); `make test-reliability` sets
RUSTPG_RELIABILITY=full for the issue's sizes. Figures go to the terminal summary.
"""

import os
import statistics
import threading
import time
import uuid

import psycopg
import pytest

from django_rustpg import dbapi

FULL = os.environ.get("RUSTPG_RELIABILITY") == "full"
FIGURES = {}


def _connect(server, **extra):
    c = dbapi.connect(**server.params, **extra)
    c.autocommit = True
    return c


def _p99(samples):
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 100 else max(samples)


def test_load_threads_on_a_bounded_pool(private_server):
    threads, per_thread = (64, 2000) if FULL else (16, 150)
    app = f"rel-load-{uuid.uuid4().hex[:6]}"
    pool = {"max_size": 16, "timeout": 60}
    errors, wrong, latencies = [], [], []
    lock = threading.Lock()

    def worker(n):
        mine = []
        for i in range(per_thread):
            t0 = time.perf_counter()
            try:
                c = _connect(private_server, application_name=app, pool=pool)
                try:
                    cur = c.cursor()
                    cur.execute("SELECT %s::int8 * 7", [n * 100_000 + i])
                    if cur.fetchone()[0] != (n * 100_000 + i) * 7:
                        wrong.append((n, i))
                finally:
                    c.close()
            except Exception as e:  # noqa: BLE001 - counted
                errors.append(repr(e))
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    sessions = 0
    while any(t.is_alive() for t in ts):
        count = private_server.psql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'")[0][0]
        sessions = max(sessions, count)
        time.sleep(0.2)
    for t in ts:
        t.join()
    FIGURES["load"] = {
        "threads x queries": f"{threads} x {per_thread}",
        "errors": len(errors),
        "wrong": len(wrong),
        "p99_ms": round(_p99(latencies) * 1000, 2),
        "max_server_sessions": sessions,
        "seconds": round(time.perf_counter() - started, 1),
    }
    assert errors == [] and wrong == []
    assert sessions <= 16


def _restart_under_load(server, mode, make_request):
    stop = threading.Event()
    restarted = threading.Event()
    after, during = [], []

    def worker():
        while not stop.is_set():
            phase_after = restarted.is_set()
            try:
                make_request()
            except Exception as e:  # noqa: BLE001 - counted per phase
                (after if phase_after else during).append(repr(e))
            time.sleep(0.002)

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    server.restart(mode)
    restart_s = time.perf_counter() - t0
    restarted.set()
    time.sleep(1.0)
    stop.set()
    for t in ts:
        t.join()
    return during, after, restart_s


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_mid_load(private_server, mode):
    app = f"rel-rl-{mode}-{uuid.uuid4().hex[:6]}"

    def ours():
        c = _connect(private_server, application_name=app)
        try:
            cur = c.cursor()
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        finally:
            c.close()

    def stock():  # Django's default: a fresh libpq connection per request
        with psycopg.connect(**{**private_server.params, "application_name": app + "-stock"}, autocommit=True) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)

    during, after, restart_s = _restart_under_load(private_server, mode, ours)
    t0 = time.perf_counter()
    private_server.restart(mode)
    ours()  # the first request after the restart returned
    recovery_ms = (time.perf_counter() - t0) * 1000
    s_during, s_after, _ = _restart_under_load(private_server, mode, stock)
    FIGURES[f"restart {mode}"] = {
        "restart_s": round(restart_s, 2),
        "restart + first request ms": round(recovery_ms, 1),
        "ours failed while down": len(during),
        "ours failed after restart": len(after),
        "stock failed while down": len(s_during),
        "stock failed after restart": len(s_after),
    }
    # Once the server is back, no request fails: stale pooled sessions are never served.
    assert after == []


def test_fork_children_use_their_own_sessions(private_server):
    children = 20
    parent = _connect(private_server)
    cur = parent.cursor()
    cur.execute("SELECT pg_backend_pid()")
    parent_pid = cur.fetchone()[0]
    pids = []
    for _ in range(children):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                c = _connect(private_server)
                k = c.cursor()
                k.execute("SELECT pg_backend_pid()")
                os.write(w, str(k.fetchone()[0]).encode())
                c.close()
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        got = os.read(r, 32)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        pids.append(int(got))
    cur.execute("SELECT 1")  # the parent's session is untouched
    assert cur.fetchone() == (1,)
    parent.close()
    FIGURES["fork"] = {"children": children, "distinct child sessions": len(set(pids))}
    assert parent_pid not in pids


BAD_INPUT = [
    ("NUL in text", "SELECT %s::text", ["a\x00b"], psycopg.DataError),
    ("lone surrogate (as psycopg)", "SELECT %s::text", ["\ud800"], UnicodeEncodeError),
    ("too few params", "SELECT %s, %s", [1], psycopg.ProgrammingError),
    ("too many params", "SELECT %s", [1, 2], psycopg.ProgrammingError),
    ("stray percent", "SELECT 'a' % %s", [1], psycopg.ProgrammingError),
    ("malformed SQL", "SELEC 1", None, psycopg.errors.SyntaxError),
    ("unknown param type", "SELECT %s", [object()], psycopg.ProgrammingError),
    ("statement_timeout", "SET statement_timeout = 50; SELECT pg_sleep(1)", None, psycopg.errors.QueryCanceled),
]


@pytest.mark.parametrize("name, sql, params, exc", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_raises_the_right_exception_and_leaves_the_session_usable(private_server, name, sql, params, exc):
    c = _connect(private_server)
    try:
        cur = c.cursor()
        with pytest.raises(exc):
            cur.execute(sql, params)
        cur.execute("SELECT 41 + 1")
        assert cur.fetchone() == (42,)
    finally:
        c.close()


def test_big_values_round_trip(private_server):
    c = _connect(private_server)
    try:
        cur = c.cursor()
        blob = os.urandom((50 if FULL else 8) * 1024 * 1024)
        cur.execute("SELECT %s::bytea", [blob])
        assert cur.fetchone()[0] == blob
        ids = list(range(100_000))
        cur.execute("SELECT count(*), sum(x) FROM unnest(%s::int8[]) x", [ids])
        assert cur.fetchone() == (100_000, sum(ids))
        deep = "(" * 500 + "1" + ")" * 500
        cur.execute(f"SELECT {deep}")
        assert cur.fetchone() == (1,)
        # More parameters than the protocol's 65,535: rendered client-side, as stock does.
        big = list(range(70_000))
        rows = ", ".join(["(%s)"] * len(big))
        cur.execute(f"SELECT count(*), sum(column1) FROM (VALUES {rows}) v", big)
        assert cur.fetchone() == (70_000, sum(big))
        cur.execute("SELECT count(*) FROM generate_series(0, 99999) g WHERE g = ANY(%s)", [big])
        assert cur.fetchone() == (70_000,)
        many = ";".join(["SELECT 1"] * 10_000)
        cur.execute(many)
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    finally:
        c.close()


def pytest_terminal_summary_figures():
    return FIGURES
