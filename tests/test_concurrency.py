"""Threads and fork: the GIL is released while waiting on the server, sessions are not
shared by accident, and a forked child never touches the parent's sockets."""
import gc
import os
import threading

import pytest

from django_rustpg import dbapi


def scalar(conn, query, params=None):
    cur = conn.cursor()
    try:
        cur.execute(query, params)
        return cur.fetchone()[0]
    finally:
        cur.close()


def test_gil_is_released_while_waiting_on_the_server(dsn_params):
    c = dbapi.connect(**dsn_params, autocommit=True)
    inside = threading.Event()
    done = threading.Event()
    errors = []

    def worker():
        try:
            inside.set()
            scalar(c, "SELECT pg_sleep(1)")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=worker)
    try:
        t.start()
        inside.wait(5)
        # A pure-Python loop in this thread while the other one waits in pg_sleep(1).
        # Were the GIL held during the wait, this loop could not run until it ended.
        counter = 0
        while not done.is_set():
            counter += 1
        t.join()
        assert not errors, errors
        assert counter > 10_000, f"only {counter} iterations ran during pg_sleep(1): the GIL was held"
    finally:
        c.close()


def test_eight_threads_query_at_once(dsn_params):
    n = 8
    barrier = threading.Barrier(n, timeout=20)
    results, errors = {}, []

    def worker(i):
        try:
            c = dbapi.connect(**dsn_params, autocommit=True)
            try:
                barrier.wait()  # everyone holds a connection now
                pid = c.info.backend_pid
                got = []
                for j in range(20):
                    cur = c.cursor()
                    cur.execute("SELECT %s::int * 1000 + %s, pg_backend_pid(), pg_sleep(0.005)::text", [i, j])
                    value, server_pid, _ = cur.fetchone()
                    assert server_pid == pid
                    got.append(value)
                    cur.close()
                results[i] = (pid, got)
            finally:
                c.close()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(results) == list(range(n))
    for i, (_, got) in results.items():
        assert got == [i * 1000 + j for j in range(20)]
    # Connections held at the same time are different server sessions.
    assert len({pid for pid, _ in results.values()}) == n


def test_threads_sharing_one_connection(dsn_params):
    # threadsafety = 2: threads may share a connection (each with its own cursor).
    c = dbapi.connect(**dsn_params, autocommit=True)
    errors = []

    def worker(i):
        try:
            for j in range(25):
                assert scalar(c, "SELECT %s::text || ':' || %s::text", [i, j]) == f"{i}:{j}"
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
    finally:
        c.close()


def test_cancel_and_query_from_other_threads_while_one_waits(dsn_params):
    sleeper = dbapi.connect(**dsn_params, autocommit=True)
    other = dbapi.connect(**dsn_params, autocommit=True)
    outcome = []

    def sleep():
        try:
            scalar(sleeper, "SELECT pg_sleep(5)")
            outcome.append("finished")
        except dbapi.errors.QueryCanceled:
            outcome.append("canceled")

    t = threading.Thread(target=sleep)
    try:
        t.start()
        # Meanwhile another connection keeps working from this thread.
        for i in range(10):
            assert scalar(other, "SELECT %s", [i]) == i
        pid = sleeper.info.backend_pid
        for _ in range(200):
            if scalar(other, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND query LIKE %s", [pid, "%pg_sleep%"]):
                break
            threading.Event().wait(0.01)
        sleeper.cancel()
        t.join(10)
        assert outcome == ["canceled"]
    finally:
        sleeper.close()
        other.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is not available on this platform")
def test_fork_child_uses_its_own_connection(dsn_params):
    # Warm the pool: an idle pooled session exists in the parent when it forks, and the
    # parent also holds a connection in use across the fork.
    warm = dbapi.connect(**dsn_params)
    scalar(warm, "SELECT 1")
    warm.close()
    held = dbapi.connect(**dsn_params, autocommit=True)
    parent_pid = held.info.backend_pid
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(read_end)
            # The inherited connection belongs to the parent: refused, never used.
            try:
                held.cursor().execute("SELECT 1")
                inherited = "used"
            except dbapi.InterfaceError:
                inherited = "refused"
            c = dbapi.connect(**dsn_params, autocommit=True)
            child_backend = scalar(c, "SELECT pg_backend_pid()")
            value = scalar(c, "SELECT %s::int + 1", [41])
            c.close()
            again = dbapi.connect(**dsn_params)
            scalar(again, "SELECT 1")
            again.close()
            # Dropping the inherited objects must not close the parent's sockets either.
            del c, again
            gc.collect()
            os.write(write_end, f"{inherited} {child_backend} {value}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        report = f.read()
    _, wait_status = os.waitpid(child, 0)
    try:
        assert os.WIFEXITED(wait_status) and os.WEXITSTATUS(wait_status) == 0, report
        inherited, child_backend, value = report.split()
        assert inherited == "refused"
        assert int(child_backend) != parent_pid
        assert value == "42"
        # The parent's connections still work: the one held across the fork and the pool.
        assert scalar(held, "SELECT pg_backend_pid()") == parent_pid
        assert scalar(held, "SELECT %s", ["after fork"]) == "after fork"
        fresh = dbapi.connect(**dsn_params)
        assert scalar(fresh, "SELECT 1") == 1
        fresh.close()
    finally:
        held.close()
