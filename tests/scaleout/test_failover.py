"""Failover under 8 writer threads, django_rustpg next to stock Django on psycopg 3.

HOST lists both nodes (primary first), target_session_attrs=read-write. Figures (lost
writes, seconds to the first write after promotion, errors by class, writes the read-only
node refused) go to the terminal summary; FIGURES keeps them per scenario and engine.
"""

import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import pytest

WRITER = os.path.join(os.path.dirname(__file__), "failover_writer.py")
ENGINES = {"django_rustpg": "django_rustpg", "psycopg3": "django.db.backends.postgresql"}
FIGURES = {}
READ_ONLY_REFUSAL = "cannot execute INSERT in a read-only transaction"


def _start_writers(pair, engine, threads=8):
    pair.primary.query("CREATE TABLE failover_writes (thread int, n int, PRIMARY KEY (thread, n))")
    pair.wait_replayed()
    control = tempfile.mkdtemp(prefix="rustpg-failover-")
    ports = f"{pair.primary.port},{pair.standby.port}"
    proc = subprocess.Popen([sys.executable, WRITER, ENGINES[engine], "127.0.0.1,127.0.0.1", ports, control,
                             str(threads)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while pair.primary.query("SELECT count(*) FROM failover_writes")[0][0] < 100:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the writers did not start writing:\n{proc.communicate()[0]}")
        time.sleep(0.05)
    return proc, control


def _stop_writers(proc, control):
    open(os.path.join(control, "stop"), "w").close()
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    with open(os.path.join(control, "result.json")) as f:
        return json.load(f)


def _wait_for_writes_after(pair_node, seconds=15):
    """Lets the writers run until a write lands on `pair_node` (or `seconds`), then 1 s more."""
    deadline = time.monotonic() + seconds
    before = pair_node.query("SELECT count(*) FROM failover_writes")[0][0]
    while time.monotonic() < deadline:
        if pair_node.query("SELECT count(*) FROM failover_writes")[0][0] > before:
            break
        time.sleep(0.05)
    time.sleep(1.0)


def _figures(result, new_primary, t_promote, refused_node):
    """`t_promote`: when `pg_ctl promote` was run."""
    present = {tuple(r) for r in new_primary.query("SELECT thread, n FROM failover_writes")}
    acked = result["acked"]
    lost = [a for a in acked if (a[0], a[1]) not in present]
    after = [t for _, _, t, port in acked if port == new_primary.port]
    before = [t for _, _, t, port in acked if port != new_primary.port]
    errors = collections.Counter(cls for _, cls, _ in result["errors"])
    return {
        "acked writes": len(acked),
        "lost": len(lost),
        "s from promote to first write": round(min(after) - t_promote, 3) if after else None,
        "s without a write (last on old primary to first on new)": round(min(after) - max(before), 3)
        if after and before else None,
        "errors": dict(errors),
        "commonest error messages": collections.Counter(
            re.sub(r"\d+", "N", msg)[:90] for _, _, msg in result["errors"]).most_common(3),
        "writes refused by the read-only node": refused_node.log_count(READ_ONLY_REFUSAL),
    }


@pytest.mark.parametrize("engine", ["django_rustpg", "psycopg3"])
def test_stop_primary_promote_standby(make_pair, engine):
    pair = make_pair()
    proc, control = _start_writers(pair, engine)
    pair.primary.stop("fast")
    time.sleep(1.0)
    t_promote = time.time()
    pair.standby.promote()
    _wait_for_writes_after(pair.standby)
    result = _stop_writers(proc, control)
    figures = _figures(result, pair.standby, t_promote, pair.standby)
    FIGURES[f"stop primary + promote, {engine}"] = figures
    assert figures["acked writes"] > 0
    assert figures["s from promote to first write"] is not None, figures
    if engine == "django_rustpg":
        assert figures["lost"] == 0, figures
        # target_session_attrs=read-write: the standby never receives a write while read-only.
        assert figures["writes refused by the read-only node"] == 0, figures
        assert figures["s from promote to first write"] < 5, figures


def _refusals_per_backend(node):
    """How many writes each backend process of `node` refused as read-only (from its log)."""
    counts = collections.Counter()
    for line in node.log().splitlines():
        if READ_ONLY_REFUSAL in line:
            m = re.search(r"\[(\d+)\]", line)
            counts[m.group(1) if m else "?"] += 1
    return counts


@pytest.mark.parametrize("engine", ["django_rustpg", "psycopg3"])
def test_fenced_primary_then_promotion(make_pair, engine):
    """The primary turns read-only under load (default_transaction_read_only=on, as a
    fencing HA manager does), then the standby is promoted. A session learns the server is
    read-only from its first refused write (or the ParameterStatus before it); it must never
    receive another write."""
    pair = make_pair()
    proc, control = _start_writers(pair, engine)
    pair.primary.set("default_transaction_read_only", "on")
    time.sleep(1.0)
    pair.wait_replayed()
    t_promote = time.time()
    pair.standby.promote()
    _wait_for_writes_after(pair.standby)
    result = _stop_writers(proc, control)
    figures = _figures(result, pair.standby, t_promote, pair.primary)
    per_backend = _refusals_per_backend(pair.primary)
    figures["max refused writes per server session"] = max(per_backend.values(), default=0)
    FIGURES[f"fence primary + promote, {engine}"] = figures
    assert figures["acked writes"] > 0
    assert figures["s from promote to first write"] is not None, figures
    if engine == "django_rustpg":
        assert figures["lost"] == 0, figures
        assert figures["max refused writes per server session"] <= 1, per_backend
        assert figures["s from promote to first write"] < 5, figures
