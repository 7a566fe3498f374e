#!/usr/bin/env python3
"""Find (or start) a PostgreSQL server for the test suite.  Pure stdlib.

    find_pg.py               print `export VAR=...` lines:  eval "$(scripts/find_pg.py)"
    find_pg.py --json        print the same variables as a JSON object
    find_pg.py --run CMD...  run CMD with the variables set; stop a cluster this call started
    find_pg.py --stop        stop every throwaway cluster recorded under .pg/

Discovery order:
  env          DATABASE_URL, or PGHOST/PGPORT/PGDATABASE (+ PGUSER/PGPASSWORD)
  local        a server on 127.0.0.1:5432 that lets `postgres` (or the current user) in
  tempcluster  a throwaway cluster made with this machine's initdb/pg_ctl
  embedded     a throwaway cluster from the `pgserver` wheel (its own PostgreSQL build)
DJANGO_RUSTPG_FORCE_PG=<one of those> skips the others (CI uses it to exercise each path).
Throwaway clusters are recorded in .pg/*.json and reused while alive;
DJANGO_RUSTPG_KEEP_PG=1 stops `--run` from shutting down the cluster it started.
"""
import getpass
import glob
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".pg"
MODES = ("env", "local", "tempcluster", "embedded")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def log(msg):
    print(f"find_pg: {msg}", file=sys.stderr)


class Skip(Exception):
    """This discovery step does not apply here; the message says why."""


# ---------------------------------------------------------------- coordinates

def make_env(host, port, user, dbname, password=None):
    port = int(port or 5432)
    cred = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    if host.startswith("/"):
        # libpq URI form for a socket directory; the port names the socket file.
        extra = "" if port == 5432 else f"&port={port}"
        url = f"postgresql://{cred}@/{quote(dbname, safe='')}?host={quote(host, safe='/')}{extra}"
    else:
        url = f"postgresql://{cred}@{host}:{port}/{quote(dbname, safe='')}"
    env = {"DATABASE_URL": url, "PGHOST": host, "PGPORT": str(port),
           "PGUSER": user, "PGDATABASE": dbname}
    if password:
        env["PGPASSWORD"] = password
    return env


def parse_url(url):
    u = urlsplit(url)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    host = q.get("host") or (unquote(u.hostname) if u.hostname else "") or "localhost"
    # percent-encoded socket dirs in the netloc come back lower-cased from .hostname
    if "%2f" in u.netloc.lower():
        host = unquote(u.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0])
    return make_env(host, q.get("port") or u.port or 5432,
                    unquote(u.username or "") or q.get("user") or getpass.getuser(),
                    unquote(u.path.lstrip("/")) or q.get("dbname") or "postgres",
                    unquote(u.password) if u.password else q.get("password"))


def probe(host, port, user, dbname, password=None):
    """True when the server accepts this login (psql if present, else a startup handshake)."""
    if shutil.which("psql"):
        env = dict(os.environ, PGHOST=host, PGPORT=str(port), PGUSER=user,
                   PGDATABASE=dbname, PGCONNECT_TIMEOUT="3")
        env.pop("PGPASSWORD", None)
        if password:
            env["PGPASSWORD"] = password
        r = subprocess.run(["psql", "-X", "-w", "-Atqc", "select 1"], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        return r.returncode == 0 and r.stdout.strip() == "1"
    # Without psql: only trust auth can be confirmed; the server reports a missing
    # role/database only after AuthenticationOk, so read on to ReadyForQuery.
    fam, addr = ((socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/")
                 else (socket.AF_INET, (host, int(port))))
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(addr)
            body = struct.pack("!i", 196608) + b"".join(
                k + b"\0" + v.encode() + b"\0" for k, v in ((b"user", user), (b"database", dbname))) + b"\0"
            s.sendall(struct.pack("!i", len(body) + 4) + body)
            f = s.makefile("rb")
            while True:
                head = f.read(5)
                if len(head) < 5:
                    return False
                kind, size = head[:1], struct.unpack("!i", head[1:])[0]
                payload = f.read(size - 4)
                if kind == b"Z":
                    return True
                if kind == b"E" or (kind == b"R" and payload[:4] != b"\0\0\0\0"):
                    return False
    except OSError:
        return False


# ---------------------------------------------------------------- a. env, b. local

def from_env():
    if os.environ.get("DATABASE_URL"):
        return parse_url(os.environ["DATABASE_URL"]), None
    if any(os.environ.get(v) for v in ("PGHOST", "PGPORT", "PGDATABASE")):
        # PGUSER/PGPASSWORD alone are credentials, not a server choice.
        e = os.environ
        return make_env(e.get("PGHOST") or "localhost", e.get("PGPORT") or 5432,
                        e.get("PGUSER") or getpass.getuser(), e.get("PGDATABASE") or "postgres",
                        e.get("PGPASSWORD")), None
    raise Skip("neither DATABASE_URL nor PGHOST/PGPORT/PGDATABASE is set")


def from_local():
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        raise Skip("nothing listens on 127.0.0.1:5432")
    users = dict.fromkeys(u for u in (os.environ.get("PGUSER"), "postgres", getpass.getuser()) if u)
    for user in users:
        if probe("127.0.0.1", 5432, user, "postgres", os.environ.get("PGPASSWORD")):
            return make_env("127.0.0.1", 5432, user, "postgres", os.environ.get("PGPASSWORD")), None
    raise Skip(f"127.0.0.1:5432 answers but refuses users {list(users)}")


# ---------------------------------------------------------------- throwaway clusters

def as_user(user, cmd):
    """Run cmd as `user` (None = ourselves); initdb/pg_ctl/postgres all refuse root."""
    if user is None:
        return list(cmd)
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    if shutil.which("su"):
        return ["su", "-s", "/bin/sh", user, "-c", shlex.join(cmd)]
    raise Skip("running as root and neither runuser nor su exists to drop privileges")


def pg_bindir():
    cands = []
    if shutil.which("initdb"):
        cands.append(os.path.dirname(os.path.realpath(shutil.which("initdb"))))
    # Debian/Ubuntu keep server binaries off PATH; newest version first.
    vkey = lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.replace("pgsql-", "").split(".")]
    cands += sorted(glob.glob("/usr/lib/postgresql/*/bin") + glob.glob("/usr/pgsql-*/bin"), key=vkey, reverse=True)
    for d in cands:
        if all(os.access(os.path.join(d, x), os.X_OK) for x in ("initdb", "pg_ctl", "postgres")):
            return d
    raise Skip("no initdb/pg_ctl/postgres found (PATH, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin)")


def server_user():
    if not IS_ROOT:
        return None
    # Any existing unprivileged account works for a throwaway cluster; `postgres`
    # is usual where PostgreSQL is installed, `nobody` exists nearly everywhere.
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    raise Skip("running as root and no unprivileged user (postgres, nobody) to own the cluster")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_tmpdir(mode, owner):
    # Short path: unix socket paths are limited to ~107 bytes.
    tmp = Path(tempfile.mkdtemp(prefix=f"rustpg-{mode}-", dir="/tmp" if os.path.isdir("/tmp") else None))
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        tmp.chmod(0o755)  # root (the test client) must reach the socket; dir is throwaway
    return tmp


def start_tempcluster():
    bindir, user = pg_bindir(), server_user()
    tmp = new_tmpdir("tempcluster", user)
    state = {"mode": "tempcluster", "tmpdir": str(tmp), "pgdata": str(tmp / "data"),
             "pg_ctl": os.path.join(bindir, "pg_ctl"), "run_as": user}
    try:
        for loc in (["--locale=C.UTF-8"], ["--no-locale"]):  # C.UTF-8 keeps upper()/lower() Unicode-aware
            shutil.rmtree(tmp / "data", ignore_errors=True)
            r = subprocess.run(as_user(user, [os.path.join(bindir, "initdb"), "-D", str(tmp / "data"), "-U", "postgres",
                                              "-A", "trust", "-E", "UTF8", "--no-sync", *loc]),
                               cwd=tmp, capture_output=True, text=True)
            if r.returncode == 0:
                break
        else:
            raise RuntimeError(f"initdb failed:\n{r.stdout}{r.stderr}")
        port = free_port()
        opts = (f"-p {port} -k {shlex.quote(str(tmp))} -c listen_addresses=127.0.0.1 "
                # durability is pointless for a throwaway cluster and slows tests down
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        r = subprocess.run(as_user(user, [state["pg_ctl"], "-D", str(tmp / "data"), "-l", str(tmp / "log"),
                                          "-w", "-t", "60", "-o", opts, "start"]),
                           cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            logtxt = (tmp / "log").read_text() if (tmp / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr}\n{logtxt}")
        state["env"] = make_env("127.0.0.1", port, "postgres", "postgres")
        return state
    except BaseException:
        stop_cluster(state)
        raise


def venv_python():
    for p in (ROOT / ".venv" / "bin" / "python", ROOT / ".venv" / "Scripts" / "python.exe"):
        if p.exists():
            return str(p)
    return None


def start_embedded():
    py = sys.executable if importlib.util.find_spec("pgserver") else venv_python()
    if not py or subprocess.run([py, "-c", "import pgserver"], capture_output=True).returncode:
        raise Skip("the pgserver wheel is not installed (pip install pgserver; `make venv` tries to)")
    tmp = new_tmpdir("embedded", None)
    state = {"mode": "embedded", "tmpdir": str(tmp), "pgdata": str(tmp / "pgdata"),
             "pg_ctl": None, "run_as": "pgserver" if IS_ROOT else None}
    # pgserver runs in a child so its atexit hooks and logging stay out of this process.
    r = subprocess.run([py, __file__, "--pgserver-start", state["pgdata"]],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        stop_cluster(state)
        raise RuntimeError(f"pgserver failed:\n{r.stdout}{r.stderr}")
    info = json.loads(r.stdout.strip().splitlines()[-1])
    state["pg_ctl"] = info["pg_ctl"]
    state["env"] = make_env(info["socket_dir"], info["port"], "postgres", "postgres")
    return state


def pgserver_start(pgdata):
    """Child side of start_embedded (run with a Python that has pgserver)."""
    import pgserver
    from pgserver._commands import POSTGRES_BIN_PATH
    # cleanup_mode=None: the server must outlive this process; --stop tears it down.
    # As root, pgserver itself useradd's a `pgserver` account to own the cluster and
    # chmods o+rx every parent dir of pgdata and of its own bin dir (inside the venv).
    info = pgserver.get_server(pgdata, cleanup_mode=None).get_postmaster_info()
    print(json.dumps({"socket_dir": str(info.socket_dir), "port": info.port,
                      "pg_ctl": str(POSTGRES_BIN_PATH / "pg_ctl")}))


def stop_cluster(state):
    pgdata = Path(state["pgdata"])
    if state.get("pg_ctl") and (pgdata / "postmaster.pid").exists():
        try:
            subprocess.run(as_user(state.get("run_as"), [state["pg_ctl"], "-D", str(pgdata), "-m", "fast", "-w", "stop"]),
                           cwd="/", stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        except (Skip, OSError, subprocess.TimeoutExpired) as e:
            log(f"pg_ctl stop failed ({e}); killing the postmaster")
        if (pgdata / "postmaster.pid").exists():
            try:
                os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGQUIT)
                time.sleep(1)
            except (OSError, ValueError, IndexError):
                pass
    shutil.rmtree(state["tmpdir"], ignore_errors=True)
    if state.get("state_file"):
        Path(state["state_file"]).unlink(missing_ok=True)
    log(f"stopped {state['mode']} cluster in {state['tmpdir']}")


def throwaway(mode, starter):
    """Reuse a live recorded cluster of this mode, else start one. Returns (env, state-if-started)."""
    for f in sorted(STATE_DIR.glob(f"{mode}-*.json")):
        st = json.loads(f.read_text())
        e = st["env"]
        if probe(e["PGHOST"], int(e["PGPORT"]), e["PGUSER"], e["PGDATABASE"]):
            log(f"reusing {mode} cluster in {st['tmpdir']}")
            return e, None
        stop_cluster(st)  # stale record (machine rebooted, /tmp cleaned, ...)
    st = starter()
    STATE_DIR.mkdir(exist_ok=True)
    st["state_file"] = str(STATE_DIR / f"{mode}-{Path(st['tmpdir']).name}.json")
    Path(st["state_file"]).write_text(json.dumps(st, indent=1))
    log(f"started {mode} cluster in {st['tmpdir']} (stop: python3 scripts/find_pg.py --stop)")
    return st["env"], st


STEPS = {"env": from_env, "local": from_local,
         "tempcluster": lambda: throwaway("tempcluster", start_tempcluster),
         "embedded": lambda: throwaway("embedded", start_embedded)}


def discover():
    forced = os.environ.get("DJANGO_RUSTPG_FORCE_PG", "").strip()
    if forced and forced not in MODES:
        sys.exit(f"find_pg: DJANGO_RUSTPG_FORCE_PG={forced!r}; expected one of {', '.join(MODES)}")
    reasons = []
    for mode in ([forced] if forced else MODES):
        try:
            env, started = STEPS[mode]()
        except (Skip, RuntimeError) as e:  # a broken step falls through to the next one
            reasons.append(f"{mode}: {e}")
            continue
        log(f"using {mode}: {env['DATABASE_URL']}")
        return env, started
    sys.exit("find_pg: no PostgreSQL available:\n  " + "\n  ".join(reasons))


def stop_all():
    for f in sorted(STATE_DIR.glob("*.json")):
        st = json.loads(f.read_text())
        st["state_file"] = str(f)
        stop_cluster(st)


def main(argv):
    if argv[:1] == ["--pgserver-start"]:
        return pgserver_start(argv[1])
    if argv[:1] == ["--stop"]:
        return stop_all()
    if argv[:1] == ["--run"]:
        cmd = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        if not cmd:
            sys.exit("find_pg: --run needs a command")
        env, started = discover()
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still run the cleanup below
        try:
            return subprocess.call(cmd, env={**os.environ, **env})
        except KeyboardInterrupt:
            return 130
        finally:
            if started and os.environ.get("DJANGO_RUSTPG_KEEP_PG") != "1":
                stop_cluster(started)
    env, started = discover()
    if argv[:1] == ["--json"]:
        print(json.dumps(env, indent=1))
    else:
        for k, v in env.items():
            print(f"export {k}={shlex.quote(v)}")
        if started:
            print(f"# throwaway cluster in {started['tmpdir']}; stop it with: python3 scripts/find_pg.py --stop")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
