"""A private PostgreSQL server per test session, on its own port, that tests may restart,
stop or terminate sessions on without disturbing the shared server."""

import importlib.util
import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _find_pg():
    spec = importlib.util.spec_from_file_location("find_pg", ROOT / "scripts" / "find_pg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PrivateServer:
    def __init__(self, find_pg, state):
        self._find_pg = find_pg
        self.state = state
        env = state["env"]
        self.host = env["PGHOST"]
        self.port = int(env["PGPORT"])
        self.params = {"dbname": "postgres", "user": "postgres", "host": self.host, "port": self.port}

    def _pg_ctl(self, *args):
        opts = (f"-p {self.port} -k {shlex.quote(self.state['tmpdir'])} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        cmd = [self.state["pg_ctl"], "-D", self.state["pgdata"], "-l", os.path.join(self.state["tmpdir"], "log"),
               "-w", "-t", "60", "-o", opts, *args]
        subprocess.run(self._find_pg.as_user(self.state["run_as"], cmd), check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def restart(self, mode="fast"):
        self._pg_ctl("-m", mode, "restart")

    def stop(self, mode="fast"):
        self._pg_ctl("-m", mode, "stop")

    def start(self):
        self._pg_ctl("start")

    def psql(self, sql):
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as c:
            cur = c.execute(sql)
            return cur.fetchall() if cur.description else None


@pytest.fixture(scope="session")
def private_server():
    find_pg = _find_pg()
    try:
        state = find_pg.start_tempcluster()
    except find_pg.Skip as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server binaries for a private cluster: {e} (install postgresql-15)")
    server = PrivateServer(find_pg, state)
    try:
        yield server
    finally:
        find_pg.stop_cluster(state)


def pytest_terminal_summary(terminalreporter):
    from . import test_load

    if test_load.FIGURES:
        terminalreporter.write_sep("-", "reliability figures")
        for scenario, figures in test_load.FIGURES.items():
            terminalreporter.write_line(f"{scenario}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


@pytest.fixture(scope="session")
def bouncer(private_server):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from pgbouncer import Bouncer

    try:
        b = Bouncer("127.0.0.1", private_server.port)
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip("pgbouncer is not installed (Debian package: pgbouncer)")
    try:
        yield b
    finally:
        b.stop()
