"""prepare_threshold behind a transaction-mode PgBouncer (1.18: no max_prepared_statements):
never a result of another statement, never a failed statement outside a transaction."""

import multiprocessing
import os
import warnings

import psycopg
import pytest

from django_rustpg import dbapi

QUERIES = 400 if os.environ.get("RUSTPG_RELIABILITY") != "full" else 4000

SHAPES = [
    ("SELECT %s::int8 + 1000", lambda v: v + 1000),
    ("SELECT %s::int8 * 3", lambda v: v * 3),
    ("SELECT %s::int8 - 7", lambda v: v - 7),
    ("SELECT %s::int8 + 1", lambda v: v + 1),
]


def _worker(params, offset, out):
    wrong = errors = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in range(QUERIES):
            # This process walks the shapes in its own order, so a name one process
            # prepared means another statement in the other process.
            sql, expect = SHAPES[(i + offset) % len(SHAPES)]
            try:
                c = dbapi.connect(**params, prepare_threshold=0, autocommit=True)
                try:
                    cur = c.cursor()
                    cur.execute(sql, [i])
                    if cur.fetchone()[0] != expect(i):
                        wrong += 1
                finally:
                    c.close()
            except Exception:  # noqa: BLE001 - counted
                errors += 1
    out.put((wrong, errors))


def test_two_processes_with_prepared_statements_never_get_wrong_results(bouncer):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(bouncer.params, k, out)) for k in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(30)
    assert results == [(0, 0), (0, 0)]


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
