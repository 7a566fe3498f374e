"""prepare_threshold behind a transaction-mode PgBouncer (1.18: no max_prepared_statements):
never a result of another statement, never a failed statement outside a transaction."""

import multiprocessing
import os
import warnings

import psycopg
import pytest

from django_rustpg import dbapi

from .conftest import ROOT

QUERIES = 400 if os.environ.get("RUSTPG_RELIABILITY") != "full" else 4000
RESET_EVERY = 8  # a fresh pool prepares again (a missing statement turns preparing off per pool)

# Every shape returns the same column types (int4, int8) for one int8 parameter, so a
# statement run under another statement's name answers with plausible, wrong rows instead
# of an error: only the per-row check below can see it.
SHAPES = [
    ("SELECT g, g * 1000 + %s::int8 FROM generate_series(1, 3) g", lambda v, g: g * 1000 + v),
    ("SELECT g, g * 3 - %s::int8 FROM generate_series(1, 3) g", lambda v, g: g * 3 - v),
    ("SELECT g, %s::int8 - g * 7 FROM generate_series(1, 3) g", lambda v, g: v - g * 7),
    ("SELECT g, g + %s::int8 * 11 FROM generate_series(1, 3) g", lambda v, g: g + v * 11),
]


def _worker(params, offset, out):
    wrong = errors = prepared_runs = 0
    params = {**params, "application_name": f"rel-pooler-{offset}"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        for i in range(QUERIES):
            if i % RESET_EVERY == 0:
                dbapi.close_pool(**params, prepare_threshold=0, autocommit=True)
            # Each process walks the shapes in its own order, so the nth name one process
            # prepares holds another statement than the other process's nth name.
            sql, expect = SHAPES[(i + offset) % len(SHAPES)]
            try:
                c = dbapi.connect(**params, prepare_threshold=0, autocommit=True)
                try:
                    cur = c.cursor()
                    for _ in range(2):  # the second run executes the prepared name
                        cur.execute(sql, [i])
                        rows = cur.fetchall()
                        wrong += sum(1 for g, v in rows if v != expect(i, g)) + (len(rows) != 3)
                    prepared_runs += 1
                finally:
                    c.close()
            except Exception:  # noqa: BLE001 - counted
                errors += 1
    # Each warning: a name this process prepared was run on a server session that did not
    # hold it (PgBouncer moved us), the moment where a colliding name would run another
    # statement.
    moved = sum("transaction-mode pooler" in str(w.message) for w in caught)
    out.put((wrong, errors, prepared_runs, moved))


def test_two_processes_with_prepared_statements_never_get_wrong_results(bouncer):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(bouncer.params, k, out)) for k in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(30)
    print(f"two processes behind PgBouncer {bouncer.version}: (wrong rows, errors, runs, moved) = {results}")
    assert [(w, e) for w, e, _, _ in results] == [(0, 0), (0, 0)]
    assert [r for _, _, r, _ in results] == [QUERIES, QUERIES]
    assert sum(m for *_, m in results) > 0, "no prepared name ever met a foreign server session"


def test_missing_statement_outside_a_transaction_runs_unnamed_and_warns_once(bouncer):
    params = {**bouncer.params, "application_name": "rel-pooler-warn"}
    c = dbapi.connect(**params, prepare_threshold=0, autocommit=True)
    cur = c.cursor()
    with pytest.warns(RuntimeWarning, match="transaction-mode pooler") as caught:
        for i in range(6):
            cur.execute("SELECT %s::int8 + 5", [i])  # prepared on the server session it lands on
            assert cur.fetchone() == (i + 5,)
            # Another client holds that server session in a transaction, so the next
            # statement lands on a server session that never saw the prepare.
            with psycopg.connect(**bouncer.params) as blocker:
                blocker.execute("SELECT 1")
                cur.execute("SELECT %s::int8 + 5", [i])
                assert cur.fetchone() == (i + 5,)
    c.close()
    assert len([w for w in caught if "pooler" in str(w.message)]) == 1


def test_missing_statement_inside_a_transaction_is_a_clear_error(bouncer):
    params = {**bouncer.params, "application_name": "rel-pooler-tx"}
    c = dbapi.connect(**params, prepare_threshold=0, autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT %s::int8 + 5", [1])
    c.autocommit = False
    with psycopg.connect(**bouncer.params) as blocker:
        blocker.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="transaction-mode pooler"):
            cur.execute("SELECT %s::int8 + 5", [2])
    c.rollback()
    c.close()


@pytest.fixture(scope="module")
def bouncer_121(private_server):
    """PgBouncer >= 1.21 with max_prepared_statements, when PGBOUNCER_121 names its binary.
    Debian 12 (bookworm, bookworm-backports) ships 1.18 only, and Debian 13's 1.24 package
    needs glibc 2.38; scripts/build_pgbouncer.sh builds 1.24 from Debian's source package."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from pgbouncer import Bouncer, version

    exe = os.environ.get("PGBOUNCER_121")
    if not exe:
        msg = ("PGBOUNCER_121 is not set: no PgBouncer >= 1.21 packaged for Debian 12 "
               "(make test-pgbouncer builds one with scripts/build_pgbouncer.sh)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    if version(exe) < (1, 21):
        pytest.fail(f"PGBOUNCER_121={exe} is PgBouncer {version(exe)}, not >= 1.21")
    b = Bouncer("127.0.0.1", private_server.port, exe=exe, max_prepared=100, extra="admin_users = postgres\n")
    try:
        yield b
    finally:
        b.stop()


def test_prepared_statements_through_pgbouncer_121_stay_prepared(bouncer_121):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(bouncer_121.params, k, out)) for k in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(30)
    print(f"two processes behind PgBouncer {bouncer_121.version} with max_prepared_statements: "
          f"(wrong rows, errors, runs, moved) = {results}")
    # PgBouncer prepares each statement on whichever server session runs it: never missing.
    assert results == [(0, 0, QUERIES, 0), (0, 0, QUERIES, 0)]
    admin = psycopg.connect(**{**bouncer_121.params, "dbname": "pgbouncer"}, autocommit=True)
    try:
        cur = admin.cursor()
        cur.execute("SHOW SERVERS")
        cols = [d.name for d in cur.description]
        prepared = sum(row[cols.index("prepared_statements")] for row in cur.fetchall())
    finally:
        admin.close()
    assert prepared > 0, "the server sessions hold no prepared statements"
