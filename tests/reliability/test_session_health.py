"""Pooled sessions the server ended while idle, closed-connection semantics, pool limits,
idle sessions, connection errors and cancel: each against a real private server."""

import os
import socket
import threading
import time
import uuid

import psycopg
import pytest

from django_rustpg import dbapi

CANCEL_TRIES = int(os.environ.get("RUSTPG_CANCEL_TRIES", "150"))


def _app(tag):
    return f"rel-{tag}-{uuid.uuid4().hex[:8]}"


def _connect(server, **extra):
    c = dbapi.connect(**server.params, **extra)
    c.autocommit = True
    return c


def _one(conn, sql="SELECT 1"):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchone()[0]


def _warm_pool(server, app, n):
    conns = [_connect(server, application_name=app) for _ in range(n)]
    pids = {_one(c, "SELECT pg_backend_pid()") for c in conns}
    for c in conns:
        c.close()
    return pids


def _requests(server, app, n):
    """n 'requests': connect, one query, close. Returns the failures."""
    failures = []
    for _ in range(n):
        try:
            c = _connect(server, application_name=app)
            try:
                assert _one(c) == 1
            finally:
                c.close()
        except Exception as e:  # noqa: BLE001 - counted, asserted below
            failures.append(repr(e))
    return failures


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_no_failed_request_after_a_server_restart(private_server, mode):
    app = _app(f"restart-{mode}")
    assert len(_warm_pool(private_server, app, 4)) == 4
    private_server.restart(mode)
    assert _requests(private_server, app, 8) == []
    status = _connect(private_server, application_name=app)
    try:
        assert status.pool_status()["discarded_dead"] >= 1
    finally:
        status.close()


def test_no_failed_request_after_idle_sessions_are_terminated(private_server):
    app = _app("terminate")
    pids = _warm_pool(private_server, app, 3)
    killed = private_server.psql(
        f"SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE application_name = '{app}') t"
    )[0][0]
    assert killed == len(pids)
    assert _requests(private_server, app, 6) == []


def test_checkout_discards_a_session_terminated_while_idle(private_server):
    """Seen at checkout (the pool polls the idle socket), before any statement runs."""
    app = _app("checkout")
    (pid,) = _warm_pool(private_server, app, 1)
    private_server.psql(f"SELECT pg_terminate_backend({pid})")
    deadline = time.monotonic() + 10
    while private_server.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}")[0][0]:
        assert time.monotonic() < deadline, "the terminated backend did not exit"
        time.sleep(0.05)
    c = _connect(private_server, application_name=app)
    try:
        assert c.pool_status()["discarded_dead"] == 1  # no statement has run on c yet
        assert _one(c, "SELECT pg_backend_pid()") != pid
    finally:
        c.close()


def test_terminated_session_makes_connection_closed_like_psycopg(private_server):
    app = _app("closed")
    c = _connect(private_server, application_name=app)
    pid = _one(c, "SELECT pg_backend_pid()")
    private_server.psql(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(psycopg.OperationalError):
        _one(c)  # the statement this session was running on is lost: never retried
    assert c.closed
    with pytest.raises(psycopg.OperationalError, match="the connection is closed"):
        c.cursor()
    c.close()
    c.close()  # idempotent


def test_termination_inside_a_transaction_is_not_retried(private_server):
    app = _app("atomic")
    private_server.psql("CREATE TABLE IF NOT EXISTS rel_writes (v int)")
    private_server.psql("TRUNCATE rel_writes")
    _warm_pool(private_server, app, 1)
    c = dbapi.connect(**private_server.params, application_name=app)  # autocommit off
    cur = c.cursor()
    cur.execute("INSERT INTO rel_writes VALUES (1)")
    pid = _one(c, "SELECT pg_backend_pid()")
    private_server.psql(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(psycopg.OperationalError):
        cur.execute("INSERT INTO rel_writes VALUES (2)")
    c.close()
    assert private_server.psql("SELECT count(*) FROM rel_writes")[0][0] == 0


def test_health_check_option_proves_reused_sessions(private_server):
    app = _app("health")
    _warm_pool(private_server, app, 2)
    c = _connect(private_server, application_name=app, health_check=True)
    try:
        assert _one(c) == 1
    finally:
        c.close()


def test_implicit_pool_never_makes_a_thread_wait(private_server):
    """Without OPTIONS["pool"], threads beyond max_size get overflow sessions at once."""
    app = _app("overflow")
    held = [_connect(private_server, application_name=app) for _ in range(22)]  # default max_size 20
    try:
        assert all(_one(c) == 1 for c in held)
        status = held[0].pool_status()
        assert status["overflow_in_use"] == 2 and status["timeouts"] == 0
    finally:
        for c in held:
            c.close()
    count = private_server.psql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'")[0][0]
    assert count <= 20  # overflow sessions were closed, not pooled


def test_explicit_pool_keeps_its_bound(private_server):
    app = _app("bounded")
    pool = {"max_size": 2, "timeout": 0.3}
    a = _connect(private_server, application_name=app, pool=pool)
    b = _connect(private_server, application_name=app, pool=pool)
    try:
        with pytest.raises(dbapi.PoolTimeout, match="max_size=2"):
            _connect(private_server, application_name=app, pool=pool)
        assert a.pool_status()["timeouts"] == 1
    finally:
        a.close()
        b.close()


def test_idle_sessions_are_closed_after_max_idle(private_server):
    app = _app("idle")
    pool = {"max_size": 4, "max_idle": 1}
    held = [_connect(private_server, application_name=app, pool=pool) for _ in range(3)]
    for c in held:
        c.close()
    sql = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'"
    assert private_server.psql(sql)[0][0] == 3
    deadline = time.monotonic() + 15  # max_idle 1 s + the reaper's 5 s period
    while time.monotonic() < deadline and private_server.psql(sql)[0][0]:
        time.sleep(0.5)
    assert private_server.psql(sql)[0][0] == 0


def test_pool_status_reports_checkouts_and_waits(private_server):
    app = _app("status")
    c = _connect(private_server, application_name=app)
    try:
        s = c.pool_status()
        for key in ("size", "idle", "in_use", "waiting", "checkouts", "timeouts", "wait_ms_p50",
                    "wait_ms_p99", "discarded_dead", "max_size"):
            assert key in s
        assert s["checkouts"] >= 1 and s["in_use"] >= 1
    finally:
        c.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_names_host_and_port_like_libpq():
    port = _free_port()
    with pytest.raises(psycopg.OperationalError) as e:
        dbapi.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    msg = str(e.value)
    assert f'connection to server at "127.0.0.1", port {port} failed: Connection refused' in msg
    assert "Is the server running on that host and accepting TCP/IP connections?" in msg


def test_unresolvable_host_is_named():
    with pytest.raises(psycopg.OperationalError, match='could not translate host name "no-such-host.invalid"'):
        dbapi.connect(host="no-such-host.invalid", port=5432, user="postgres", dbname="postgres")


def test_missing_socket_names_the_socket():
    with pytest.raises(psycopg.OperationalError, match=r'on socket "/nonexistent/.s.PGSQL.5432" failed'):
        dbapi.connect(host="/nonexistent", port=5432, user="postgres", dbname="postgres")


def test_cancel_never_hits_a_later_statement(private_server):
    """cancel() returns only once the server handled it: the next statement is never cancelled."""
    app = _app("cancel")
    c = _connect(private_server, application_name=app)
    cur = c.cursor()
    wrong = 0
    for i in range(CANCEL_TRIES):
        t = threading.Thread(target=lambda: (time.sleep(0.002 * (i % 5)), c.cancel()))
        t.start()
        try:
            cur.execute("SELECT pg_sleep(0.01)")
        except psycopg.errors.QueryCanceled:
            pass
        t.join()
        try:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        except psycopg.errors.QueryCanceled:
            wrong += 1
    c.close()
    assert wrong == 0


def test_an_inlined_statement_on_a_session_terminated_while_idle_runs_on_a_fresh_one(private_server):
    """The simple-protocol path (a described `SELECT ... LIMIT n` with a parameter) meets a
    pooled session the server ended while idle: it hands over to a fresh session, as bound
    statements do, and the fresh session ran it inlined."""
    app = _app("inlined")
    sql = "SELECT %s::int4 + 1, pg_backend_pid() LIMIT 1"
    c = _connect(private_server, application_name=app)
    cur = c.cursor()
    cur.execute(sql, [1])  # described: later runs are inlined
    (_, pid) = cur.fetchone()
    c.close()
    private_server.psql(f"SELECT pg_terminate_backend({pid})")
    c = _connect(private_server, application_name=app)
    try:
        cur = c.cursor()
        cur.execute(sql, [41])
        value, new_pid = cur.fetchone()
        assert (value, new_pid != pid) == (42, True)
        seen = private_server.psql(f"SELECT query FROM pg_stat_activity WHERE pid = {new_pid}")[0][0]
        assert "$1" not in seen and "41" in seen, seen
    finally:
        c.close()
