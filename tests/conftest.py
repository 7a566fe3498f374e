"""Shared fixtures.  The database comes from DATABASE_URL, which `make test`
sets via scripts/find_pg.py (run `python3 scripts/find_pg.py --run -- pytest`
by hand for the same effect)."""
import os
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

# tests/nplusone/test_pytest_plugin.py runs pytest in-process (pytest only honours
# `pytest_plugins` in the top-level conftest).
pytest_plugins = ["pytester"]


def _params_from_env():
    url = os.environ.get("DATABASE_URL")
    if url:
        u = urlsplit(url)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        host = q.get("host") or (unquote(u.hostname) if u.hostname else None)
        return {
            "dbname": unquote(u.path.lstrip("/")) or q.get("dbname") or "postgres",
            "user": unquote(u.username) if u.username else q.get("user"),
            "password": unquote(u.password) if u.password else q.get("password"),
            "host": host or "localhost",  # a leading "/" means a unix-socket directory
            "port": int(q.get("port") or u.port or 5432),
        }
    if os.environ.get("PGHOST"):
        e = os.environ
        return {"dbname": e.get("PGDATABASE", "postgres"), "user": e.get("PGUSER"),
                "password": e.get("PGPASSWORD"), "host": e["PGHOST"], "port": int(e.get("PGPORT", 5432))}
    return None


@pytest.fixture(scope="session")
def dsn_params():
    """Keyword arguments for django_rustpg.dbapi.connect(): dbname, user, password, host, port."""
    params = _params_from_env()
    if params is None:
        msg = "no database configured: set DATABASE_URL or run via `make test` / scripts/find_pg.py --run"
        if os.environ.get("CI"):
            pytest.exit(msg, returncode=3)  # CI must never pass by skipping everything
        pytest.skip(msg)
    return params


def psycopg_conninfo(params=None):
    """libpq conninfo string for the same database, for comparisons against psycopg."""
    from psycopg.conninfo import make_conninfo

    params = params or _params_from_env()
    if params is None:
        raise RuntimeError("no database configured (DATABASE_URL unset)")
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


@pytest.fixture
def conn(dsn_params):
    from django_rustpg import dbapi

    c = dbapi.connect(**dsn_params)
    c.autocommit = True
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def pg(dsn_params):
    import psycopg

    with psycopg.connect(psycopg_conninfo(dsn_params), autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def pg_conninfo(dsn_params):
    """psycopg_conninfo() as a fixture, so test modules need not import conftest (another
    conftest.py in a subdirectory would shadow `import conftest`)."""
    return psycopg_conninfo(dsn_params)


@pytest.fixture(scope="session")
def extension_database(dsn_params, pg_conninfo):
    """A context manager factory: a fresh database with the given extensions (name -> Debian
    package) created, yielding its connect params; dropped afterwards. A missing package is a
    skip naming it, and a failure under CI."""
    import contextlib

    import psycopg

    @contextlib.contextmanager
    def create(name, extensions):
        with psycopg.connect(pg_conninfo, autocommit=True) as c:
            available = {r[0] for r in c.execute("SELECT name FROM pg_available_extensions")}
            missing = sorted({pkg for ext, pkg in extensions.items() if ext not in available})
            if missing:
                msg = f"extensions missing: install {', '.join(missing)}"
                if os.environ.get("CI"):
                    pytest.fail(msg)
                pytest.skip(msg)
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {name}")
        params = {**dsn_params, "dbname": name}
        try:
            with psycopg.connect(psycopg_conninfo(params), autocommit=True) as c:
                for ext in extensions:
                    c.execute(f"CREATE EXTENSION {ext}")
            yield params
        finally:
            with psycopg.connect(pg_conninfo, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return create


@pytest.fixture
def run_child(dsn_params):
    """``run_child(code)``: runs ``code`` in a fresh interpreter with the connection
    parameters as ``sys.argv[1]``, failing the test on a non-zero exit and on a hang
    (``timeout``); returns its stdout words."""
    import subprocess
    import sys

    def run(code, timeout=120):
        done = subprocess.run([sys.executable, "-c", code, repr(dict(dsn_params))],
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    return run
