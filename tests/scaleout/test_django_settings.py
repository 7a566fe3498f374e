"""HOST/PORT lists and libpq OPTIONS reach the driver as with the stock backend (psycopg 3)."""

import json
import os
import subprocess
import sys

import pytest

PROBE = os.path.join(os.path.dirname(__file__), "django_probe.py")
STOCK = "django.db.backends.postgresql"


def _probe(engine, host, port, options):
    out = subprocess.run([sys.executable, PROBE, engine, host, str(port), json.dumps(options)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("attrs,expected", [
    ("read-write", "primary"), ("primary", "primary"), ("read-only", "standby"), ("standby", "standby"),
    ("prefer-standby", "standby"), ("any", "standby"),
])
def test_host_and_port_lists_with_target_session_attrs(pg_pair, attrs, expected):
    ports = f"{pg_pair.standby.port},{pg_pair.primary.port}"
    want = {"primary": pg_pair.primary.port, "standby": pg_pair.standby.port}[expected]
    options = {"target_session_attrs": attrs, "load_balance_hosts": "disable", "connect_timeout": 3}
    assert _probe("django_rustpg", "127.0.0.1,127.0.0.1", ports, options) == {"port": want}
    assert _probe(STOCK, "127.0.0.1,127.0.0.1", ports, options) == {"port": want}


def test_hostaddr_and_service_in_options(pg_pair, tmp_path, monkeypatch):
    f = tmp_path / "pg_service.conf"
    f.write_text(f"[rw]\nhost=127.0.0.1,127.0.0.1\nport={pg_pair.standby.port},{pg_pair.primary.port}\n"
                 "target_session_attrs=read-write\n")
    monkeypatch.setenv("PGSERVICEFILE", str(f))
    for engine in ("django_rustpg", STOCK):
        assert _probe(engine, "", "", {"service": "rw"}) == {"port": pg_pair.primary.port}
        got = _probe(engine, "db.invalid", pg_pair.standby.port, {"hostaddr": "127.0.0.1", "sslmode": "disable"})
        assert got == {"port": pg_pair.standby.port}


@pytest.mark.parametrize("key,value", [("target_session_attrs", "bogus"), ("load_balance_hosts", "sometimes")])
def test_bogus_option_values_name_the_key(pg_pair, key, value):
    ours = _probe("django_rustpg", "127.0.0.1", pg_pair.primary.port, {key: value})
    assert ours["error"] == "ImproperlyConfigured" and key in ours["message"] and value in ours["message"]
    # Stock passes the value to libpq, which refuses it when connecting.
    stock = _probe(STOCK, "127.0.0.1", pg_pair.primary.port, {key: value})
    assert stock["error"] == "OperationalError" and key in stock["message"]
