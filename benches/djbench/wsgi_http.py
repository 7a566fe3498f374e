"""WSGI entry of the HTTP endpoint scenarios.

With BENCH_PROFILE=1 every response carries where its time went (microseconds), for
benches/http_bench.py's profile pass: X-App-Us (the whole Django application), X-Db-Us (inside
the database cursor: execute and fetches, i.e. driver + network + PostgreSQL; for
django_rustpg this includes building model instances natively) and X-Pg-Us (PostgreSQL's
own planning + execution of the same statements, from EXPLAIN ANALYZE re-run after the
response was built, outside the timed part).
"""
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings_http")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

if os.environ.get("BENCH_PROFILE") == "1":
    import functools
    import json
    import threading

    from django.db import connection
    from django.db.backends import utils

    state = threading.local()

    def timed(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if getattr(state, "busy", True):
                return fn(*args, **kwargs)
            state.busy = True
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                state.db += time.perf_counter() - t0
                state.busy = False
        return wrapper

    _execute = utils.CursorWrapper._execute

    _timed_execute = timed(_execute)

    def _recording_execute(self, sql, params, *ignored):
        if not getattr(state, "busy", True):
            state.statements.append((sql, params))
        return _timed_execute(self, sql, params, *ignored)

    utils.CursorWrapper._execute = _recording_execute
    _getattr = utils.CursorWrapper.__getattr__

    def _timed_getattr(self, attr):
        value = _getattr(self, attr)
        return timed(value) if attr.startswith("fetch") else value

    utils.CursorWrapper.__getattr__ = _timed_getattr
    try:  # django_rustpg builds model rows in the driver, through this cursor stand-in
        from django_rustpg import materialize_rows
        materialize_rows._PlanCursor.fetchmany = timed(materialize_rows._PlanCursor.fetchmany)
    except ImportError:
        pass

    def _server_time(statements):
        total = 0.0
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                total += plan[0]["Planning Time"] + plan[0]["Execution Time"]
        return total * 1e3  # ms -> us

    inner = application

    def application(environ, start_response):  # noqa: F811
        captured = []
        state.db, state.statements, state.busy = 0.0, [], False
        t0 = time.perf_counter()
        body = inner(environ, lambda status, headers, *exc: captured.append((status, headers, exc)))
        app = time.perf_counter() - t0
        state.busy = True
        pg = _server_time(state.statements) if environ.get("HTTP_X_PROFILE_PG") == "1" else 0.0
        status, headers, exc = captured[-1]
        headers = list(headers) + [("X-App-Us", f"{app * 1e6:.0f}"), ("X-Db-Us", f"{state.db * 1e6:.0f}"),
                                   ("X-Pg-Us", f"{pg:.0f}"), ("X-Queries", str(len(state.statements)))]
        start_response(status, headers, *exc)
        return body
