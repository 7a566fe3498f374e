"""The development report page: recent requests and their N+1 findings.

Served by ``NPlusOneMiddleware`` at ``REPORT_URL`` or mounted explicitly with
``path("__nplusone__/", include("django_rustpg.nplusone.urls"))``; only when ``DEBUG``
is on. ``?format=json`` gives the same data as JSON.
"""

import itertools
import json
import os
import threading
import time
from collections import deque

from . import settings as np_settings

TEMPLATE_DIR = os.path.join(os.path.dirname(__file__), "templates")


class History:
    """The last ``HISTORY`` requests of this process (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items = deque()
        self._ids = itertools.count(1)

    def record(self, request, status, report):
        limit = np_settings.load().history
        if limit <= 0:
            return
        entry = {
            "id": next(self._ids),
            "method": request.method,
            "path": request.get_full_path(),
            "status": status,
            "time": time.strftime("%H:%M:%S", time.localtime(report.started)),
            "duration_ms": round(report.duration_ms, 2),
            "statements": report.statements,
            "db_ms": round(report.total_ms, 2),
            "findings": [f.to_dict() for f in report.findings],
            "framework_findings": [f.to_dict() for f in report.framework_findings],
            # The parameters as the driver got them (EXPLAIN binds them the same way);
            # never in the JSON view.
            "_raw_params": {
                "findings": [getattr(f, "_raw_params", None) for f in report.findings],
                "framework": [getattr(f, "_raw_params", None) for f in report.framework_findings],
            },
        }
        with self._lock:
            self._items.appendleft(entry)
            while len(self._items) > limit:
                self._items.pop()

    def items(self):
        with self._lock:
            return list(self._items)

    def clear(self):
        with self._lock:
            self._items.clear()

    def finding(self, request_id, index, group="findings"):
        """(finding dict, its raw parameters) or None."""
        with self._lock:
            for item in self._items:
                if item["id"] == request_id:
                    key = "framework_findings" if group == "framework" else "findings"
                    found = item.get(key) or []
                    raw = (item.get("_raw_params") or {}).get("framework" if group == "framework" else "findings") or []
                    if 0 <= index < len(found):
                        return found[index], (raw[index] if index < len(raw) else None)
        return None


history = History()

_engine = None


def _get_engine():
    global _engine
    if _engine is None:
        from django.template import Engine

        _engine = Engine(dirs=[TEMPLATE_DIR], autoescape=True, debug=False)
    return _engine


def render_page(items):
    from django.template import Context

    total = sum(len(i["findings"]) for i in items)
    with_findings = sum(1 for i in items if i["findings"])
    ctx = Context({"items": items, "total": total, "with_findings": with_findings, "requests": len(items)})
    return _get_engine().get_template("nplusone/report.html").render(ctx)


def explain(finding, raw_params=None) -> dict:
    """``EXPLAIN (ANALYZE false)`` of a recorded finding's statement with its captured
    parameters, in a transaction that is rolled back. Only statements this page
    recorded, only reads: nothing the browser sends is run."""
    from django.db import connections, transaction

    info = (finding or {}).get("explain")
    if not info:
        return {"error": "no statement was captured for this finding"}
    sql = info["sql"].lstrip()
    if not sql[:6].upper().startswith(("SELECT", "WITH")) or finding.get("operation"):
        return {"error": "only reads are explained"}
    alias = info.get("alias") or "default"
    if alias not in connections:
        return {"error": f"unknown database {alias!r}"}
    from . import ignore

    try:
        with ignore(), transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                params = list(raw_params) if raw_params is not None else info["params"]
                cursor.execute("EXPLAIN (ANALYZE false) " + info["sql"], params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True, using=alias)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    return {"plan": plan}


def page_response(request):
    from django.conf import settings
    from django.http import Http404, HttpResponse, JsonResponse

    if not settings.DEBUG:
        raise Http404("the N+1 report is only served when DEBUG is on")
    if request.method == "POST" and request.POST.get("explain"):
        try:
            rid, group, index = request.POST["explain"].split(":")
            found = history.finding(int(rid), int(index), group)
        except ValueError:
            return JsonResponse({"error": "explain=<request id>:<findings|framework>:<index>"}, status=400)
        if found is None:
            return JsonResponse({"error": "no such finding (the history may have moved on)"}, status=404)
        return JsonResponse(explain(*found))
    if request.method == "POST" and request.POST.get("clear"):
        history.clear()
    items = history.items()
    if request.GET.get("format") == "json":
        return JsonResponse({"requests": [{k: v for k, v in i.items() if not k.startswith("_")} for i in items]})
    return HttpResponse(render_page(items))


def report_view(request):
    """The page as a view, for ``urls.py`` (``django_rustpg.nplusone.urls``)."""
    return page_response(request)


report_view.csrf_exempt = True  # type: ignore[attr-defined]
