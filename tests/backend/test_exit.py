"""Interpreter exit: pooled sessions end with a Terminate, as stock psycopg's connections do,
so the server does not count them abandoned (pg_stat_database.sessions_abandoned) nor
log a reset connection. Each case is a child process on a database of its own."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from django.db import connection

from django_rustpg import dbapi

from conftest import _database

DB = "rustpg_exit_test"

CHILD = textwrap.dedent(
    """
    import json, os, sys, threading
    import django
    from django.conf import settings

    database, mode = json.loads(sys.argv[1]), sys.argv[2]
    settings.configure(DATABASES={"default": database, "other": database}, USE_TZ=True)
    django.setup()
    from django.db import connection, connections

    def query(alias="default"):
        with connections[alias].cursor() as c:
            c.execute("SELECT 1")
            assert c.fetchone() == (1,)

    query()
    if mode == "closed":
        connection.close()
    elif mode == "two_aliases":
        query("other")
    elif mode == "thread":
        def work():
            query()
            connections.close_all()
        t = threading.Thread(target=work)
        t.start()
        t.join()
    elif mode == "in_atomic":
        from django.db import transaction
        transaction.atomic().__enter__()
        query()
    elif mode == "server_ended_it":
        with connection.cursor() as c:
            c.execute("SELECT pg_backend_pid()")
            pid = c.fetchone()[0]
        with connections["other"].cursor() as c:
            c.execute("SELECT pg_terminate_backend(%s)", [pid])
            c.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            while c.fetchone()[0]:
                c.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
    elif mode == "os_exit":
        os._exit(0)  # no atexit hooks: the check below must see the session abandoned
    print("done")
    """
)


class _admin:
    """An autocommit connection to the server's postgres database."""

    def __enter__(self):
        params = connection.get_connection_params()
        self.conn = dbapi.connect(**{k: params[k] for k in ("host", "port", "user", "password") if k in params},
                                  dbname="postgres")
        self.conn.autocommit = True
        return self

    def __exit__(self, *exc):
        self.conn.close()

    def execute(self, sql, params=None):
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return cur


@pytest.fixture(scope="module")
def database():
    with _admin() as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
    yield {**_database(os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"), "NAME": DB}
    with _admin() as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def _ended_sessions():
    """(sessions, sessions_abandoned) of the test database once none of its backends is left."""
    with _admin() as c:
        deadline = time.monotonic() + 10
        while c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DB]).fetchone()[0]:
            assert time.monotonic() < deadline, "the child's sessions did not end"
            time.sleep(0.05)
        c.execute("SELECT pg_stat_clear_snapshot()")
        return c.execute(
            "SELECT sessions, sessions_abandoned FROM pg_stat_database WHERE datname = %s", [DB]
        ).fetchone()


def _abandoned_by_child(database, mode):
    sessions, abandoned = _ended_sessions()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(database), mode], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    after_sessions, after_abandoned = _ended_sessions()
    assert after_sessions > sessions, "the child's sessions were not counted at all"
    return after_abandoned - abandoned


@pytest.mark.parametrize("mode", ["open", "closed", "two_aliases", "thread"])
def test_idle_sessions_end_with_a_terminate_at_exit(database, mode):
    assert _abandoned_by_child(database, mode) == 0


def test_a_session_the_server_ended_does_not_hold_up_exit(database):
    # The default alias's session is dead at exit (pg_terminate_backend): exit is quick and
    # clean, and the other alias's idle session still ends with a Terminate.
    started = time.monotonic()
    assert _abandoned_by_child(database, "server_ended_it") == 0
    assert time.monotonic() - started < 20


def test_the_check_sees_a_dropped_socket(database):
    # Without exit hooks the socket just drops: this is what the cases above would count.
    assert _abandoned_by_child(database, "os_exit") == 1


def test_a_session_inside_a_transaction_is_left_to_the_server(database):
    # Closing it would wait on a ROLLBACK at exit; the server rolls it back itself.
    assert _abandoned_by_child(database, "in_atomic") == 1


def test_close_idle_sessions_rejects_a_bad_timeout():
    for bad in (-1.0, float("nan"), 61.0):
        with pytest.raises(dbapi.ProgrammingError, match="timeout must be between 0 and 60"):
            dbapi.close_idle_sessions(bad)
