"""Collected only when pytest runs more than tests/materialize (e.g. ``pytest tests``, as
``make test-py`` does): this suite configures Django with settings of its own, so it runs
in a pytest subprocess of its own here (see conftest.py)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_materialize_suite_in_its_own_process():
    env = dict(os.environ, MATERIALIZE_IN_PROCESS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", HERE, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    tail = proc.stdout[-12000:] + ("\n" + proc.stderr[-4000:] if proc.stderr.strip() else "")
    assert proc.returncode == 0, f"tests/materialize failed in its own process:\n{tail}"
    print(proc.stdout.strip().splitlines()[-1])
