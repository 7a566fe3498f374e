"""Every type in pg_type (contrib extensions, PostGIS, a user enum, composite and domains):
django_rustpg returns what the stock backend returns, value and Python type, arrays and
NULLs too, and values read back as parameters mean the same (tests/typecov_probe.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

DB = "rustpg_typecov"
EXTENSIONS = {  # extension -> Debian package
    "ltree": "postgresql-contrib", "citext": "postgresql-contrib", "hstore": "postgresql-contrib",
    "cube": "postgresql-contrib", "isn": "postgresql-contrib", "pg_trgm": "postgresql-contrib",
    "postgis": "postgresql-15-postgis-3",
}
USER_TYPES = """
CREATE TYPE tc_mood AS ENUM ('ok', 'sad');
CREATE TYPE tc_pair AS (a int, b text);
CREATE DOMAIN tc_dint AS int CHECK (VALUE > 0);
CREATE DOMAIN tc_dtext AS text;
CREATE DOMAIN tc_dmood AS tc_mood;
CREATE DOMAIN tc_dltree AS ltree;
CREATE DOMAIN tc_dpair AS tc_pair;
"""


@pytest.fixture(scope="module")
def typecov_db(extension_database):
    from psycopg.conninfo import make_conninfo

    with extension_database(DB, EXTENSIONS) as params:
        with psycopg.connect(make_conninfo(**{k: v for k, v in params.items() if v is not None}), autocommit=True) as c:
            c.execute(USER_TYPES)
        yield params


def test_every_type_reads_as_stock(typecov_db):
    p = typecov_db
    probe = Path(__file__).with_name("typecov_probe.py")
    env = {**os.environ, "PGPASSWORD": p.get("password") or ""}
    out = subprocess.run(
        [sys.executable, str(probe), p["dbname"], p["host"], str(p["port"]), p["user"] or ""],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    checked = report["checked"]
    # The probe really covered the catalog (a broken probe must not pass by checking nothing).
    assert checked["types"] > 100 and checked["with_sample"] > 100, checked
    diffs = report["diffs"]
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(json.dumps(d) for d in diffs)
