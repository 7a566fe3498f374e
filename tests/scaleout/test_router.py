"""django_rustpg.routers against a real primary and a streaming standby that replays each
commit 300 ms late: reads right after a write see the write, reads go to the standby
otherwise. Each scenario runs in a Django process of its own (router_probe.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("router_probe.py")
DELAY_MS = 300
WRITES = int(os.environ.get("RUSTPG_RYW_WRITES", "1000"))  # make test: 200


@pytest.fixture(scope="module")
def delayed_pair():
    from .conftest import _start_pair

    pair = _start_pair(delay_ms=DELAY_MS)
    try:
        yield pair
    finally:
        pair.stop()


def probe(pair, scenario, engine="django_rustpg", max_pin=15.0, ports=None, writes=WRITES):
    ports = ports or (pair.primary.port, pair.standby.port)
    r = subprocess.run([sys.executable, str(PROBE), str(ports[0]), str(ports[1]), scenario,
                        engine, str(max_pin)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONUNBUFFERED": "1", "RUSTPG_RYW_WRITES": str(writes)})
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("engine", ["django_rustpg", "django.db.backends.postgresql"])
def test_a_read_right_after_a_write_sees_it_1000_times(delayed_pair, engine):
    out = probe(delayed_pair, "ryw", engine)
    print(f"read-your-writes ({engine}): {out}")
    assert out["found"] == WRITES and out["missed"] == 0
    assert out["read_on"] == {"default": WRITES}
    # The same reads made on the standby directly miss the write: the delay is real, so the
    # router is what makes the reads above see it.
    assert out["control_missed"] >= WRITES * 0.9


def test_reads_go_to_the_replica_when_the_scope_wrote_nothing(delayed_pair):
    out = probe(delayed_pair, "no_write")
    assert out == {"db": "replica1", "standby": True}


def test_reads_go_back_to_the_replica_once_it_replayed_the_write(delayed_pair):
    out = probe(delayed_pair, "caught_up")
    assert out == {"right_after": "default", "after_replay": "replica1", "found": True}


def test_atomic_reads_use_the_primary(delayed_pair):
    out = probe(delayed_pair, "atomic")
    assert out == {"inside": "default", "outside": "replica1", "count_inside_ok": True}


def test_an_object_read_from_the_replica_is_saved_on_the_primary(delayed_pair):
    out = probe(delayed_pair, "save_from_replica")
    assert out == {"read_from": "replica1", "saved_to": "default", "on_primary": 1}


def test_a_replica_that_cannot_be_reached_gets_no_pinned_reads(delayed_pair):
    out = probe(delayed_pair, "replica_down")
    assert out == {"right_after": ["default", True], "after_replay": ["replica1", True]}


def test_raw_sql_writes_pin_after_mark_written(delayed_pair):
    out = probe(delayed_pair, "raw_sql")
    # Routers never see connection.cursor(): unmarked, the read goes to the lagging standby.
    assert out == {"marked=False": ["replica1", False], "marked=True": ["default", True]}


def test_bad_settings_name_the_key(delayed_pair):
    out = probe(delayed_pair, "config_errors")
    assert "RUSTPG_REPLICAS must map" in out[0]
    assert "'nope' is not in DATABASES" in out[1]
    assert "primary 'nope' is not in DATABASES" in out[2]
    assert "RUSTPG_REPLICAS['default'] must be a list" in out[3]
    assert "unknown key(s) ['MAX_PINN']" in out[4]
    assert "RUSTPG_READ_YOUR_WRITES['MAX_PIN']" in out[5]


def test_async_scopes_are_per_task(delayed_pair):
    out = probe(delayed_pair, "async")
    assert out["writers"] == [{"db": "default", "found": True}] * 2
    assert out["reader"] == {"db": "replica1"}  # the writers' pins are theirs alone
    assert out["task"] == "default"


def test_middleware_carries_the_pin_to_the_same_clients_next_request(delayed_pair):
    out = probe(delayed_pair, "middleware")
    assert out["cookie"] is True
    assert out["same_client"] == {"default:1": 20}
    # Another client has no pin: it reads the standby, which has not replayed the writes yet.
    assert sum(v for k, v in out["other_client"].items() if k.startswith("replica1:")) == 20, out
    assert out["other_client"].get("replica1:0", 0) >= 1, out  # and it was behind


def test_async_middleware_carries_the_pin_too(delayed_pair):
    out = probe(delayed_pair, "async_middleware")
    assert out["cookie"] is True
    assert out["same_client"] == {"default:1": 20}
    assert sum(v for k, v in out["other_client"].items() if k.startswith("replica1:")) == 20, out
    assert out["other_client"].get("replica1:0", 0) >= 1, out  # and it was behind


def test_the_time_cap_ends_the_pin(delayed_pair):
    out = probe(delayed_pair, "cap", max_pin=0.05)
    assert out == {"first": "default", "after_cap": "replica1"}


@pytest.mark.parametrize("engine", ["django_rustpg", "django.db.backends.postgresql"])
def test_read_your_writes_through_pgbouncer(delayed_pair, engine):
    """Each server behind a transaction-mode PgBouncer of its own: the WAL positions are the
    cluster's, whichever server session answers, so the router works unchanged."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from pgbouncer import Bouncer

    try:
        bouncers = [Bouncer("127.0.0.1", node.port) for node in (delayed_pair.primary, delayed_pair.standby)]
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip("pgbouncer is not installed (Debian package: pgbouncer)")
    try:
        out = probe(delayed_pair, "ryw", engine, ports=[b.port for b in bouncers], writes=300)
    finally:
        for b in bouncers:
            b.stop()
    print(f"read-your-writes through PgBouncer ({engine}): {out}")
    assert out["found"] == 300 and out["missed"] == 0
    assert out["control_missed"] >= 270
