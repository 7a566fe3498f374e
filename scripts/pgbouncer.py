#!/usr/bin/env python3
"""A throwaway PgBouncer (transaction mode) in front of a PostgreSQL server.  Pure stdlib.

    pgbouncer.py --run [--max-prepared N] -- CMD...
        start PgBouncer in front of $DATABASE_URL (as scripts/find_pg.py exports it), run
        CMD with DATABASE_URL/PGHOST/PGPORT pointing at PgBouncer, stop PgBouncer after.

Tests import `Bouncer` (tests/reliability, tests/scaleout). Every database name is served
(`* =`), so Django's test runner can create, clone and drop test databases through it:
server sessions idle for a second are closed (`server_idle_timeout = 1`), well within the
5 s PostgreSQL waits for other sessions to leave before CREATE DATABASE ... TEMPLATE and
DROP DATABASE give up.  PGBOUNCER=/path/to/pgbouncer picks another binary (e.g. >= 1.21).
"""
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent


def _find_pg():
    spec = importlib.util.spec_from_file_location("find_pg", ROOT / "scripts" / "find_pg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def executable():
    """The pgbouncer binary, or None (Debian package: pgbouncer)."""
    exe = os.environ.get("PGBOUNCER") or shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    return exe if os.access(exe, os.X_OK) else None


def version(exe):
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class Bouncer:
    """PgBouncer in transaction mode in front of host:port, on a free port of its own."""

    def __init__(self, host, port, user="postgres", pool_size=3, max_prepared=None, exe=None,
                 extra=""):
        exe = exe or executable()
        if exe is None:
            raise FileNotFoundError("pgbouncer")
        self.exe = exe
        self.version = version(exe)
        find_pg = _find_pg()
        run_as = find_pg.server_user()  # pgbouncer refuses to run as root
        self.tmp = tempfile.mkdtemp(prefix="rustpg-bouncer-")
        self.port = find_pg.free_port()
        self.host = "127.0.0.1"
        lines = [
            "[databases]",
            f"* = host={host} port={port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1", f"listen_port = {self.port}", "unix_socket_dir =",
            "auth_type = trust", f"auth_file = {self.tmp}/users.txt",
            "pool_mode = transaction", f"default_pool_size = {pool_size}", "max_client_conn = 500",
            "server_idle_timeout = 1",
            f"logfile = {self.tmp}/log", f"pidfile = {self.tmp}/pid",
            # The drivers send these at startup; PgBouncer would refuse the login otherwise.
            "ignore_startup_parameters = extra_float_digits,options",
        ]
        # 1.24 turns prepared-statement support on by default: off unless asked for, so every
        # version behaves as 1.18 does.
        if max_prepared is not None or version(self.exe) >= (1, 21):
            lines.append(f"max_prepared_statements = {max_prepared or 0}")
        self.ini = os.path.join(self.tmp, "pgbouncer.ini")
        with open(os.path.join(self.tmp, "users.txt"), "w") as f:
            f.write(f'"{user}" ""\n')
        with open(self.ini, "w") as f:
            f.write("\n".join(lines) + "\n" + extra)
        if run_as:
            import pwd

            pw = pwd.getpwnam(run_as)
            for p in (self.tmp, *(os.path.join(self.tmp, n) for n in os.listdir(self.tmp))):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.proc = subprocess.Popen(find_pg.as_user(run_as, [exe, self.ini]), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"pgbouncer did not start (log: {self.tmp}/log)")
        if self.proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {self.proc.returncode} (log: {self.tmp}/log)")
        self.params = {"host": self.host, "port": self.port, "user": user, "dbname": "postgres"}

    def stop(self):
        # runuser does not always pass SIGTERM on: signal pgbouncer itself too.
        try:
            with open(os.path.join(self.tmp, "pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv):
    max_prepared = None
    if argv[:1] == ["--run"]:
        argv = argv[1:]
        if argv[:1] == ["--max-prepared"]:
            max_prepared, argv = int(argv[1]), argv[2:]
        cmd = argv[1:] if argv[:1] == ["--"] else argv
    else:
        sys.exit(__doc__)
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("pgbouncer.py: DATABASE_URL is not set (run under scripts/find_pg.py --run)")
    u = urlsplit(url)
    if executable() is None:
        msg = "pgbouncer is not installed (Debian package: pgbouncer)"
        if os.environ.get("CI"):
            sys.exit(f"error: {msg}")
        print(f"SKIP: {msg}", file=sys.stderr)
        return 0
    user = unquote(u.username or "postgres")
    bouncer = Bouncer(u.hostname or "127.0.0.1", u.port or 5432, user=user, pool_size=10,
                      max_prepared=max_prepared)
    dbname = unquote(u.path.lstrip("/")) or "postgres"
    env = {**os.environ, "DATABASE_URL": f"postgresql://{quote(user, safe='')}@{bouncer.host}:{bouncer.port}/{quote(dbname, safe='')}",
           "PGHOST": bouncer.host, "PGPORT": str(bouncer.port), "RUSTPG_BOUNCER_UPSTREAM": url}
    print(f"pgbouncer {'.'.join(map(str, bouncer.version))} (transaction mode) on {bouncer.host}:{bouncer.port} "
          f"in front of {u.hostname}:{u.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
    finally:
        bouncer.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
