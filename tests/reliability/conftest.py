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


class Bouncer:
    """PgBouncer in transaction mode in front of the private server, on its own port."""

    def __init__(self, server, find_pg):
        import shutil
        import socket
        import tempfile
        import time

        exe = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(exe):
            raise FileNotFoundError("pgbouncer")
        user = find_pg.server_user()
        self.tmp = tempfile.mkdtemp(prefix="rustpg-bouncer-")
        if user:
            import pwd

            pw = pwd.getpwnam(user)
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        ini = os.path.join(self.tmp, "pgbouncer.ini")
        with open(os.path.join(self.tmp, "users.txt"), "w") as f:
            f.write('"postgres" ""\n')
        with open(ini, "w") as f:
            f.write(
                "[databases]\n"
                f"postgres = host=127.0.0.1 port={server.port} dbname=postgres\n"
                "[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
                f"auth_type = trust\nauth_file = {self.tmp}/users.txt\n"
                "pool_mode = transaction\ndefault_pool_size = 3\nmax_client_conn = 500\n"
                f"logfile = {self.tmp}/log\npidfile = {self.tmp}/pid\n"
                "ignore_startup_parameters = extra_float_digits,options\n"
            )
        for name in os.listdir(self.tmp):
            if user:
                os.chown(os.path.join(self.tmp, name), pw.pw_uid, pw.pw_gid)
        self.proc = subprocess.Popen(find_pg.as_user(user, [exe, ini]), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("pgbouncer did not start")
        self.params = {**server.params, "port": self.port}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="session")
def bouncer(private_server):
    try:
        b = Bouncer(private_server, _find_pg())
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip("pgbouncer is not installed (Debian package: pgbouncer)")
    try:
        yield b
    finally:
        b.stop()
