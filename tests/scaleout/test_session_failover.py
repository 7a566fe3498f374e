"""Pooled sessions whose server stops having target_session_attrs=read-write (turned
read-only, or gone) are discarded; outside a transaction the statement runs on a fresh
session through the host list, inside one the caller gets OperationalError."""

import collections
import re
import uuid

import pytest

from django_rustpg import dbapi

REFUSAL = "cannot execute INSERT in a read-only transaction"


def _connect(pair, autocommit=True, **extra):
    c = dbapi.connect(host="127.0.0.1,127.0.0.1", port=f"{pair.primary.port},{pair.standby.port}",
                      user="postgres", dbname="postgres", target_session_attrs="read-write", **extra)
    c.autocommit = autocommit
    return c


def _refusals(node):
    """Writes `node` refused as read-only, per server process (its log prefix has the pid)."""
    counts = collections.Counter()
    for line in node.log().splitlines():
        if REFUSAL in line:
            counts[int(re.search(r"\[(\d+)\]", line).group(1))] += 1
    return counts


def _one(c, sql, params=None):
    cur = c.cursor()
    cur.execute(sql, params)
    return cur.fetchone() if cur.description else None


@pytest.fixture
def pair(fresh_pair):
    fresh_pair.primary.query("CREATE TABLE t (x text)")
    fresh_pair.wait_replayed()
    return fresh_pair


def test_fenced_then_promoted(pair):
    app = f"fence-{uuid.uuid4().hex[:6]}"
    pool = {"max_size": 4}
    # A session that will sit in the pool; one held by the "request"; one mid-transaction.
    pooled = _connect(pair, application_name=app, pool=pool)
    assert _one(pooled, "SELECT inet_server_port()") == (pair.primary.port,)
    held = _connect(pair, application_name=app, pool=pool)
    in_tx = _connect(pair, autocommit=False, application_name=app, pool=pool)
    _one(held, "SELECT 1")
    _one(in_tx, "SELECT 1")  # its transaction stays open
    pooled_pid = pooled.info.backend_pid
    held_pid, in_tx_pid = held.info.backend_pid, in_tx.info.backend_pid
    pooled.close()

    pair.primary.set("default_transaction_read_only", "on")
    pair.standby.promote()

    # The held session learns the server turned read-only (ParameterStatus, after a read).
    assert _one(held, "SELECT inet_server_port()") == (pair.primary.port,)
    # Known read-only: the write never reaches it; it runs on a fresh session instead.
    assert _one(held, "INSERT INTO t VALUES ('held') RETURNING inet_server_port()") == (pair.standby.port,)
    assert _one(held, "SELECT inet_server_port()") == (pair.standby.port,)
    assert _refusals(pair.primary)[held_pid] == 0

    # Inside a transaction opened before: the server would still take its writes (and
    # lose them to the promoted standby); the caller gets OperationalError, nothing is
    # retried, and the session is discarded.
    with pytest.raises(dbapi.OperationalError, match="target_session_attrs=read-write"):
        _one(in_tx, "INSERT INTO t VALUES ('in_tx')")
    assert in_tx.closed
    in_tx.close()
    assert _refusals(pair.primary)[in_tx_pid] == 0

    # The pooled session heard of it while idle (ParameterStatus) and is discarded at
    # checkout; had it not, its first write would be refused (the one write a read-only
    # server ever gets from it) before the statement moves. Either way the statement runs
    # through the host list on the new primary.
    reused = _connect(pair, application_name=app, pool=pool)
    assert _one(reused, "INSERT INTO t VALUES ('reused') RETURNING inet_server_port()") == (pair.standby.port,)
    assert reused.pool_status()["discarded_read_only"] >= 2
    refusals = _refusals(pair.primary)
    assert set(refusals) <= {pooled_pid} and refusals[pooled_pid] <= 1, refusals
    reused.close()
    held.close()

    rows = sorted(r[0] for r in pair.standby.query("SELECT x FROM t"))
    assert rows == ["held", "reused"]
    assert pair.primary.query("SELECT count(*) FROM t") == [(0,)]


def test_read_only_refusal_is_not_retried_for_a_session_that_made_itself_read_only(pair):
    c = _connect(pair, pool=False)
    _one(c, "SET default_transaction_read_only = on")
    pid = c.info.backend_pid
    with pytest.raises(dbapi.InternalError, match="read-only transaction"):
        _one(c, "INSERT INTO t VALUES ('x')")
    c.close()
    assert pair.primary.query("SELECT count(*) FROM t") == [(0,)]
    # The log records refusals per session (the other tests' "0 refusals" rely on it), and
    # this one was refused once, not retried.
    refusals = _refusals(pair.primary)
    assert refusals[pid] == 1, refusals


def test_primary_stopped_pooled_sessions_reconnect_through_the_host_list(pair):
    app = f"stop-{uuid.uuid4().hex[:6]}"
    pool = {"max_size": 4}
    for _ in range(3):
        c = _connect(pair, application_name=app, pool=pool)
        assert _one(c, "SELECT inet_server_port()") == (pair.primary.port,)
        c.close()
    pair.primary.stop("fast")
    # The standby is read-only: no server has the attributes.
    with pytest.raises(dbapi.OperationalError, match="session is read-only|Connection refused"):
        _connect(pair, pool=pool, application_name=app)
    pair.standby.promote()
    c = _connect(pair, application_name=app, pool=pool)
    assert _one(c, "INSERT INTO t VALUES ('after') RETURNING inet_server_port()") == (pair.standby.port,)
    c.close()
    assert pair.standby.log_count(REFUSAL) == 0
