"""django_rustpg.bulk_update: bulk_update() returns, stores, sends and raises exactly as the
stock backend, case by case, with the UNNEST form where it is exact and Django's own SQL
elsewhere (tests/bulk_update_probe.py runs them in a process of its own: it configures
Django)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

DB = "bulk_update_probe"


@pytest.fixture(scope="module")
def report(dsn_params, pg_conninfo):
    with psycopg.connect(pg_conninfo, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
    p = dsn_params
    env = {**os.environ, "PGPASSWORD": p.get("password") or ""}
    try:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("bulk_update_probe.py")), DB, p["host"], str(p["port"]),
             p["user"] or ""], capture_output=True, text=True, env=env, timeout=600)
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bulk_update_is_stock(report):
    diffs = report["differences"]
    assert report["cases"] >= 30
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(json.dumps(d)[:2000] for d in diffs)


def test_unnest_is_taken_exactly_where_it_is_exact(report):
    taken = sorted(name for name, o in report["outcomes"].items() if o["unnest"])
    assert not any(o["stock_unnest"] for o in report["outcomes"].values())
    if not report["verified"]:
        # A Django patch release whose stood-in code changed: Django's own statement for
        # every case (test_bulk_update_is_stock compares the results), until it is read.
        assert taken == []
        pytest.skip(f"Django {report['django']} is not verified for the UNNEST form (code digest "
                    f"{report['digest']}, bulk_update.VERIFIED_DJANGO): every case ran Django's own statement")
    assert taken == report["fast"]


def test_outcomes_are_the_interesting_ones(report):
    out = report["outcomes"]
    # The comparison above is only worth something if the cases do what they are named for.
    assert out["every_field"]["rowcount"] == 40 and out["every_field"]["statements"] == 1
    assert out["batches"]["statements"] == 6 and out["batches"]["rowcount"] == 40
    assert out["missing_row"]["rowcount"] == 40
    assert out["duplicate_pks"]["rowcount"] == 40
    assert out["decimal_nan"]["error"].startswith("django.core.exceptions.ValidationError")
    assert out["bad_int"]["error"] == "builtins.ValueError: Field 'num' expected a number but got 'x'."
    assert out["decimal_overflow"]["error"].startswith("django.db.utils.DataError")
    assert out["naive_datetime"]["warnings"] == 40


def test_wrapped_update_keeps_django_s_attributes(report):
    # Templates refuse to call methods with alters_data: the wrapper must keep it.
    assert report["update_alters_data"] is True
