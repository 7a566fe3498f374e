"""tests/django_suite/run.py's parity gate, on Django's real suite: a stock-passing test that fails here only
because of the order Django's suite ran it in passes the gate once it passes alone; one that
fails again alone fails the gate.

The order-dependent failure is real, on stock too: after TestDbCreationTests (which closes
a shallow copy's shared connection), 3 later tests of these labels error with --parallel 1.
The cached stock record is doctored to say they passed, as a stock run that drew another
order would.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent / "django_suite" / "run.py"
REPO = Path(__file__).resolve().parents[1]
LABELS = ["test_utils.tests.TestBadSetUpTestData", "backends.base.test_creation.TestDbCreationTests",
          "backends.base.test_operations.SimpleDatabaseOperationTests", "backends.base.test_operations.SqlFlushTests"]
NO_SUCH_TEST = "backends.base.test_operations.SqlFlushTests.test_that_does_not_exist"


@pytest.fixture(scope="module")
def django_src():
    """The Django sdist `make django-suite` uses (downloaded into the repo's cache if absent)."""
    sys.path.insert(0, str(RUN.parent))
    try:
        import django
        import run

        return run.ensure_django_tests_dir(django.get_version(), REPO / ".cache" / "django-sdist").parent
    finally:
        sys.path.remove(str(RUN.parent))
        sys.modules.pop("run", None)


def _run(cache, src, *args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, str(RUN), "--labels", *LABELS, "--parallel", "1", "--cache-dir", str(cache),
                          "--django-src", str(src), "--no-install-tblib", "--db-name", "django_rustpg_gate_test", *args],
                         capture_output=True, text=True, env=env, timeout=600)
    return out.returncode, out.stdout + out.stderr


@pytest.fixture(scope="module")
def stock_record(tmp_path_factory, dsn_params, django_src):
    cache = tmp_path_factory.mktemp("suite-cache")
    code, output = _run(cache, django_src, "--engine", "stock")
    records = list((cache / "django-suite-logs").glob("stock-*-custom-*.json"))
    assert len(records) == 1, output[-3000:]
    record = json.loads(records[0].read_text())
    order_dependent = sorted(t for t, outcome in record["outcomes"].items() if outcome != "ok")
    # The premise: stock itself fails these in this order.
    assert code == 0 and len(order_dependent) == 3, output[-3000:]
    return cache, django_src, records[0], record, order_dependent


def _doctor(stock_record, extra_passing=()):
    cache, src, path, record, order_dependent = stock_record
    outcomes = {**record["outcomes"], **{t: "ok" for t in (*order_dependent, *extra_passing)}}
    path.write_text(json.dumps({**record, "outcomes": outcomes}))
    return cache, src


def test_order_dependent_failures_pass_the_gate_once_they_pass_alone(stock_record):
    code, output = _run(*_doctor(stock_record), "--compare", "--reuse-stock", "--require-parity")
    assert "PARITY" in output and "31/34" in output, output[-3000:]  # failed in the suite's order
    assert "3 of them passed on their own" in output, output[-3000:]
    assert code == 0, output[-3000:]


def test_a_test_failing_again_alone_fails_the_gate(stock_record):
    code, output = _run(*_doctor(stock_record, [NO_SUCH_TEST]), "--compare", "--reuse-stock", "--require-parity")
    assert f"1 failed again on their own: {NO_SUCH_TEST}" in output, output[-3000:]
    assert code == 1, output[-3000:]
