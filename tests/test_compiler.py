"""django_rustpg.compiler: bulk_create() sends, stores, returns, raises and warns exactly as
the stock backend, case by case (tests/compiler_probe.py runs them in a process of its own,
since it configures Django)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

DB = "django_rustpg_compiler_probe"
ALL_ITEM_COLUMNS = ["small", "num", "big", "pos", "flag", "name", "email", "text", "ratio", "price", "day", "at",
                    "ref", "data", "code"]


@pytest.fixture(scope="module")
def probe_db(dsn_params, pg_conninfo):
    admin = pg_conninfo
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
    yield {**dsn_params, "dbname": DB}
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


@pytest.fixture(scope="module")
def report(probe_db):
    p = probe_db
    env = {**os.environ, "PGPASSWORD": p.get("password") or ""}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("compiler_probe.py")), p["dbname"], p["host"], str(p["port"]),
         p["user"] or ""], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bulk_create_is_stock(report):
    diffs = report["differences"]
    assert report["cases"] >= 25
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(json.dumps(d)[:2000] for d in diffs)


def test_fast_path_is_taken_where_it_is_exact(report):
    fast = report["fast_columns"]
    # Every stock column of exact type: all prepared ahead (the comparison above covers them).
    assert fast["plain"] == ALL_ITEM_COLUMNS
    assert fast["fk"] == ALL_ITEM_COLUMNS
    # The auto_now_add and custom (Upper) columns always take Django's own chain.
    assert "created" not in fast["plain"] and "shout" not in fast["plain"]
    # One value of another type hands its whole column to Django's chain.
    assert "num" not in fast["int_from_str"] and "num" not in fast["int_subclass_bool"]
    assert "price" not in fast["decimal_nan"] and "price" not in fast["decimal_from_float"]
    assert "at" not in fast["naive_datetime"] and "ref" not in fast["uuid_from_str"]
    assert "data" not in fast["json_scalars"]
    # A pre_save that writes another attribute: nothing is read ahead of Django's loop.
    assert fast["custom_pre_save"] == []
    assert fast["one_object"] == []


def test_errors_and_warnings_are_django_s(report):
    out = report["outcomes"]
    assert out["decimal_nan"]["error"].startswith("django.core.exceptions.ValidationError")
    assert out["bad_int"]["error"] == "builtins.ValueError: Field 'num' expected a number but got 'x'."
    assert "F() expressions can only be used to update" in out["f_expression"]["error"]
    assert "unsaved related object" in out["unsaved_related"]["error"]
    assert out["naive_datetime"]["warnings"] == 5
    assert out["batch_size"]["statements"] == 3 and out["mixed_pk"]["statements"] == 2
    # Past 65,535 values, one statement (bound arrays; or literals, as stock renders them).
    assert out["whole_6k"]["statements"] == 1 and out["whole_6k"]["rows"] == 6000
    assert out["values_over_65535"]["statements"] == 1 and out["values_over_65535"]["rows"] == 17000


def test_whole_columns_replace_django_s_loop_where_every_column_is_prepared(report):
    out = report["outcomes"]
    for case in ("whole", "whole_batches", "whole_explicit_pk", "whole_ignore_conflicts", "whole_update_conflicts"):
        assert out[case]["whole_columns"], case
    assert out["whole_batches"]["statements"] == 3
    # A column left to Django's chain (auto_now_add, a custom field, a value of another type),
    # or two objects at most: Django's own loop.
    assert not any(out[case]["whole_columns"] for case in ("plain", "int_from_str", "one_object", "whole_two"))
