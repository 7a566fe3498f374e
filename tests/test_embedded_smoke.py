"""Smoke test run against every server flavour find_pg.py can provide
(`make test` runs it again with DJANGO_RUSTPG_FORCE_PG=embedded)."""
import os


def test_server_reachable_with_psycopg(pg, dsn_params):
    # Separates "no usable server" from "driver broken".
    assert pg.execute("SELECT 1").fetchone() == (1,)
    if os.environ.get("DJANGO_RUSTPG_FORCE_PG") == "embedded":
        assert dsn_params["host"].startswith("/"), "embedded server should be reached over its unix socket"


def test_driver_select_1(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    cur.close()
