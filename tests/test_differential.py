"""The differential probe (scripts/diff_probe.py): raw-cursor operations through a
django_rustpg connection and a stock Django connection (psycopg 3) on the same database,
compared step by step. Fails on any difference the probe does not declare (each declared
one has its reason there and in README "Compatibility")."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parent.parent / "scripts" / "diff_probe.py"


# Without USE_TZ: the cases where the time zone matters.
NO_TZ = ["--no-tz", "-k", "TIME ZONE|timezone|TimeZone|RESET|DISCARD|DateStyle = 'SQL|/ params|named: table read"]


@pytest.mark.parametrize("args", [[], NO_TZ], ids=["USE_TZ", "no USE_TZ, time zone cases"])
def test_raw_cursor_behaves_as_stock(dsn_params, args):
    if not os.environ.get("DATABASE_URL"):
        pytest.skip("the probe reads DATABASE_URL")
    done = subprocess.run([sys.executable, str(PROBE), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
