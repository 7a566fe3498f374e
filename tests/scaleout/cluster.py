"""A private primary and a streaming standby (pg_basebackup -R) on ports of their own.

Used by tests/scaleout (failover, multi-host selection, read replicas). Each `Pair` owns a
temporary directory holding both data directories and logs; `Pair.stop()` removes it.

    pair = Pair.start(delay_ms=0)      # primary + standby, standby streaming
    pair.primary.port, pair.standby.port
    pair.wait_replayed()               # standby has replayed everything the primary wrote
    pair.primary.stop(); pair.standby.promote()
    pair.stop()
"""

import importlib.util
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def find_pg():
    spec = importlib.util.spec_from_file_location("find_pg", ROOT / "scripts" / "find_pg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FIND_PG = find_pg()
Skip = _FIND_PG.Skip


def _connect(port, **kw):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True,
                           connect_timeout=5, **kw)


class Node:
    """One server of the pair: its data directory, port and log."""

    def __init__(self, pair, name, port):
        self.pair = pair
        self.name = name
        self.port = port
        self.pgdata = os.path.join(pair.tmpdir, name)
        self.logfile = os.path.join(pair.tmpdir, f"{name}.log")

    @property
    def params(self):
        """Keyword arguments for django_rustpg.dbapi.connect() / psycopg.connect()."""
        return {"host": "127.0.0.1", "port": self.port, "user": "postgres", "dbname": "postgres"}

    def _pg_ctl(self, *args, check=True):
        opts = (f"-p {self.port} -k {shlex.quote(self.pair.tmpdir)} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c full_page_writes=off")
        cmd = [os.path.join(self.pair.bindir, "pg_ctl"), "-D", self.pgdata, "-l", self.logfile,
               "-w", "-t", "60", "-o", opts, *args]
        r = subprocess.run(_FIND_PG.as_user(self.pair.run_as, cmd), cwd=self.pair.tmpdir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} on {self.name} failed: {r.stderr}\n{self.log()[-3000:]}")
        return r.returncode == 0

    def start(self):
        self._pg_ctl("start")

    def stop(self, mode="fast"):
        """Stops the server (fast: sessions are terminated, WAL is flushed to the standby)."""
        self._pg_ctl("-m", mode, "stop")

    def restart(self, mode="fast"):
        self._pg_ctl("-m", mode, "restart")

    def running(self):
        return os.path.exists(os.path.join(self.pgdata, "postmaster.pid"))

    def promote(self, wait=True):
        """Promotes a standby; with wait, returns once it accepts writes."""
        self._pg_ctl("promote", "-W" if not wait else "-w")
        if wait:
            deadline = time.monotonic() + 30
            while self.query("SELECT pg_is_in_recovery()")[0][0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not leave recovery")
                time.sleep(0.05)

    def reload(self):
        self._pg_ctl("reload")

    def set(self, setting, value):
        """ALTER SYSTEM SET ... and reload (e.g. default_transaction_read_only)."""
        self.query(f"ALTER SYSTEM SET {setting} = '{value}'")
        self.query("SELECT pg_reload_conf()")

    def query(self, sql, params=None):
        with _connect(self.port) as c:
            cur = c.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def log(self):
        try:
            return Path(self.logfile).read_text(errors="replace")
        except OSError:
            return ""

    def log_count(self, needle):
        """Occurrences of `needle` in this server's log (e.g. a SQLSTATE message)."""
        return self.log().count(needle)


class Pair:
    """A primary and a streaming standby of it."""

    def __init__(self, tmpdir, bindir, run_as):
        self.tmpdir = str(tmpdir)
        self.bindir = bindir
        self.run_as = run_as
        self.primary = Node(self, "primary", _FIND_PG.free_port())
        self.standby = Node(self, "standby", _FIND_PG.free_port())

    @classmethod
    def start(cls, delay_ms=0, primary_conf=""):
        """initdb a primary, pg_basebackup -R a standby of it, start both.

        `delay_ms`: the standby's recovery_min_apply_delay (replays each commit this late).
        """
        bindir, user = _FIND_PG.pg_bindir(), _FIND_PG.server_user()
        tmp = _FIND_PG.new_tmpdir("scaleout", user)
        pair = cls(tmp, bindir, user)
        try:
            pair._init_primary(primary_conf)
            pair._clone_standby(delay_ms)
            pair.wait_streaming()
        except BaseException:
            pair.stop()
            raise
        return pair

    def _run(self, *cmd):
        r = subprocess.run(_FIND_PG.as_user(self.run_as, list(cmd)), cwd=self.tmpdir, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed:\n{r.stdout}{r.stderr}")

    def _init_primary(self, extra_conf):
        p = self.primary
        self._run(os.path.join(self.bindir, "initdb"), "-D", p.pgdata, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--locale=C.UTF-8")
        with open(os.path.join(p.pgdata, "postgresql.conf"), "a") as f:
            f.write("wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nwal_keep_size = '256MB'\n"
                    "max_connections = 200\nlog_min_error_statement = error\n" + extra_conf)
        with open(os.path.join(p.pgdata, "pg_hba.conf"), "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
        p.start()

    def _clone_standby(self, delay_ms):
        s = self.standby
        self._run(os.path.join(self.bindir, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
                  "-U", "postgres", "-D", s.pgdata, "-R", "-X", "stream", "-c", "fast", "--no-sync")
        with open(os.path.join(s.pgdata, "postgresql.auto.conf"), "a") as f:
            f.write(f"recovery_min_apply_delay = '{int(delay_ms)}ms'\n")
        s.start()

    def wait_streaming(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.primary.query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            if rows[0][0] >= 1:
                return
            time.sleep(0.05)
        raise RuntimeError("the standby did not start streaming\n" + self.standby.log()[-3000:])

    def wait_replayed(self, timeout=30):
        """Waits until the standby has replayed everything the primary has written so far."""
        target = self.primary.query("SELECT pg_current_wal_lsn()")[0][0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.standby.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))[0][0]
            if done:
                return
            time.sleep(0.02)
        raise RuntimeError(f"the standby did not replay up to {target}")

    def set_apply_delay(self, delay_ms):
        self.standby.set("recovery_min_apply_delay", f"{int(delay_ms)}ms")

    def stop(self):
        for node in (self.standby, self.primary):
            if node.running():
                node._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
