#!/usr/bin/env python3
"""Differential probe: the same raw-cursor operations through a django_rustpg connection and
through a stock Django connection (ENGINE django.db.backends.postgresql, psycopg 3's
ClientCursor as Django configures it) on the same database; every difference is printed.

    scripts/find_pg.py --run -- .venv/bin/python scripts/diff_probe.py [--no-tz] [-k SUBSTR[|SUBSTR...]] [-v] [--json FILE]

Each case runs in autocommit and inside transaction.atomic(), on a fresh connection of each
backend. Compared per step: result rows (each value's type and repr), description
(name, type_code), rowcount, rownumber, exception (Django class, psycopg class, SQLSTATE);
after the case: transaction status, atomic/needs_rollback, the session settings, open
server-side cursors; and at the start of each case, what the fresh connection sees (here a
pooled session the previous case used). Exit status 1 on a difference not in DECLARED (tests/test_differential.py
runs it). Values that differ by nature (pids, txids, clocks, advisory locks) are compared
by type only (`Ctx.do(..., noise=True)`, the "noise:" case).
"""
import os
import sys
from urllib.parse import parse_qs, unquote, urlsplit

ARGS = sys.argv[1:]
USE_TZ = "--no-tz" not in ARGS
VERBOSE = "-v" in ARGS
ONLY = ARGS[ARGS.index("-k") + 1] if "-k" in ARGS else None



def _raises(step, cls=None):
    got = step[1][0] if isinstance(step[1], tuple) and len(step[1]) == 5 else step[1]
    return isinstance(got, tuple) and got[:1] == ("raises",) and (cls is None or got[2] == cls)


def _unparseable_text(case, ours, stock):
    """psycopg cannot read the server's text of a timestamptz under a DateStyle other than
    ISO, nor of an interval under an IntervalStyle other than postgres (NotImplementedError
    on fetch); read in binary here, the value is the one stock reads under ISO/postgres."""
    return ("DateStyle" in case or "IntervalStyle" in case) and _raises(stock, "NotImplementedError") and not _raises(ours)


def _floats_rounded(case, ours, stock):
    """extra_float_digits <= 0: the server rounds floats in text, which psycopg reads; a float
    column read in binary here keeps the stored value (declared in README)."""
    def strip(x):
        if isinstance(x, tuple) and len(x) == 2 and x[0] == "float":
            return ("float", "~")
        if isinstance(x, (tuple, list)):
            return tuple(strip(y) for y in x)
        return x
    return ("extra_float_digits = 0" in case or "extra_float_digits = -" in case) and strip(ours) == strip(stock)


def _negative_int_cast(case, ours, stock):
    """psycopg renders a negative int as ` -7`, so `%s::text` becomes `-7::text`, i.e.
    `-(7::text)`, an error (42883) there; bound as a value here, it is '-7'."""
    return case.startswith("value: neg int / cast")


def _executemany_needs_block(case, ours, stock):
    """executemany in autocommit of a statement PostgreSQL allows only in a transaction block
    (SAVEPOINT, LOCK, DECLARE without HOLD): psycopg's pipeline is an implicit block, which
    refuses it (25P01); here the batch runs inside the BEGIN that makes it all-or-nothing."""
    return case.split(": ")[1].startswith(("SAVEPOINT", "LOCK", "DECLARE")) and ours[0] == "executemany" and _raises(stock, "NoActiveSqlTransaction")


def _scroll_back(case, ours, stock):
    """A client-side result's rows are not kept once fetched: scrolling back raises
    NotSupportedError here (psycopg keeps the whole result and moves back)."""
    return case == "plain: scroll" and (ours[0] == "scroll back" and _raises(ours, "NotSupportedError") or ours[0] == "fetchone" and ours != stock)


# Differences judged to stay (reasons in README "Compatibility"): a case differs only where
# one of these accepts each differing step. The steps after an accepted step that follow from
# it (the same case's later state) must still be equal.
DECLARED = [_unparseable_text, _floats_rounded, _negative_int_cast, _executemany_needs_block, _scroll_back]


def _database(engine):
    u = urlsplit(os.environ["DATABASE_URL"])
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    return {
        "ENGINE": engine,
        "NAME": unquote(u.path.lstrip("/")) or "postgres",
        "USER": unquote(u.username) if u.username else q.get("user", "postgres"),
        "PASSWORD": unquote(u.password) if u.password else "",
        "HOST": q.get("host") or (unquote(u.hostname) if u.hostname else "127.0.0.1"),
        "PORT": str(u.port or q.get("port") or 5432),
    }


import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DATABASES={"default": _database("django_rustpg"), "ours": _database("django_rustpg"),
               "stock": _database("django.db.backends.postgresql")},
    USE_TZ=USE_TZ, TIME_ZONE="America/Chicago", SECRET_KEY="probe",
    INSTALLED_APPS=["django.contrib.contenttypes"],
)
django.setup()

from django.db import connections, transaction  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from diff_probe_cases import CASES, SETUP, TEARDOWN  # noqa: E402

SETTINGS = ["TimeZone", "DateStyle", "IntervalStyle", "search_path", "extra_float_digits",
            "bytea_output", "standard_conforming_strings", "statement_timeout", "application_name"]


def value(v):
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [value(x) for x in v])
    if isinstance(v, dict):
        return ("dict", sorted((k, value(x)) for k, x in v.items()))
    return (type(v).__name__, repr(v))


def error(e):
    cause = e.__cause__ if e.__cause__ is not None else e
    return ("raises", type(e).__name__, type(cause).__name__, getattr(cause, "sqlstate", None))


class Ctx:
    def __init__(self, alias):
        self.alias = alias
        self.w = connections[alias]
        self.trace = []

    def cursor(self):
        return self.w.cursor()

    def named(self):
        return self.w.chunked_cursor()

    def do(self, label, fn, noise=False, cur=None):
        try:
            out = fn()
            if out is not None and hasattr(out, "fetchone"):
                out = None  # execute() returns the cursor (psycopg) or None
            got = ("type", type(out).__name__) if noise else value(out)
        except Exception as e:  # noqa: BLE001
            got = error(e)
        if cur is not None:
            got = (got, "rowcount", cur.rowcount, "rownumber", getattr(cur.cursor, "rownumber", "?"))
        self.trace.append((label, got))
        return got

    def desc(self, cur, label="description"):
        def d():
            ds = cur.description
            return None if ds is None else [(c.name, c.type_code) for c in ds]
        self.do(label, d)

    def run(self, cur, sql, params=None, fetch="all", desc=True):
        self.do(f"execute {sql[:60]}", lambda: cur.execute(sql, params), cur=cur)
        if desc:
            self.desc(cur)
        if fetch == "all":
            self.do("fetchall", cur.fetchall, cur=cur)
        elif fetch == "one":
            self.do("fetchone", cur.fetchone, cur=cur)


def session_state(ctx):
    w = ctx.w
    out = {}
    if w.connection is None:
        return {"connection": None}
    out["tx"] = str(w.connection.info.transaction_status)
    out["atomic"] = (w.in_atomic_block, w.needs_rollback, w.get_autocommit())
    if out["tx"].endswith("INERROR"):
        return out
    with w.cursor() as c:
        c.execute("SELECT " + ", ".join(f"current_setting('{s}')" for s in SETTINGS))
        out["settings"] = dict(zip(SETTINGS, c.fetchone()))
        c.execute("SELECT count(*) FROM pg_cursors WHERE name <> ''")
        out["cursors"] = c.fetchone()[0]
    return out


def run_case(alias, case, mode):
    ctx = Ctx(alias)
    w = ctx.w
    w.close()
    w.ensure_connection()
    # A fresh connection (here a pooled session the previous case used): nothing it did may
    # show (settings, cursors, transaction).
    ctx.trace.append(("fresh connection", session_state(ctx)))
    try:
        if mode == "atomic":
            try:
                with transaction.atomic(using=alias):
                    case(ctx)
                    ctx.trace.append(("in atomic", session_state(ctx)))
            except Exception as e:  # noqa: BLE001
                ctx.trace.append(("atomic exit", error(e)))
        else:
            case(ctx)
        ctx.trace.append(("after", session_state(ctx)))
    finally:
        if w.connection is not None and not w.get_autocommit():
            try:
                w.rollback()
            except Exception:  # noqa: BLE001
                pass
            w.set_autocommit(True)
        w.close()
    return ctx.trace


# ------------------------------------------------------------------ running

def diff(a, b):
    out = []
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x != y:
            out.append((i, x, y))
    return out


def main():
    stock = connections["stock"]
    stock.ensure_connection()
    with stock.cursor() as c:
        c.execute(SETUP)
    stock.close()
    found = {}
    try:
        for name, fn in CASES.items():
            if ONLY and not any(k in name for k in ONLY.split("|")):
                continue
            for mode in ("autocommit", "atomic"):
                ours = run_case("ours", fn, mode)
                theirs = run_case("stock", fn, mode)
                d = diff(ours, theirs)
                if d:
                    found[(name, mode)] = d
    finally:
        stock.ensure_connection()
        with stock.cursor() as c:
            c.execute(TEARDOWN)
        stock.close()
    if "--json" in ARGS:
        import json
        with open(ARGS[ARGS.index("--json") + 1], "w") as f:
            json.dump([[name, mode, d] for (name, mode), d in found.items()], f, default=repr)
    undeclared = 0
    for (name, mode), d in found.items():
        open_steps = [(i, x, y) for i, x, y in d if not (x and y and any(ok(name, x, y) for ok in DECLARED))]
        if open_steps:
            undeclared += 1
        print(f"{'DIFFERS' if open_steps else 'declared'}: {name} [{mode}]")
        for i, x, y in (d if VERBOSE else open_steps)[:(50 if VERBOSE else 3)]:
            print(f"    step {i}\n      ours : {str(x)[:1500]}\n      stock: {str(y)[:1500]}")
    print(f"{len(CASES)} cases x 2 modes (USE_TZ={USE_TZ}): {len(found)} differ, {undeclared} undeclared")
    return 1 if undeclared else 0


if __name__ == "__main__":
    sys.exit(main())
