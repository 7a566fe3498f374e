"""``NPlusOneMiddleware``: one N+1 scope per request (WSGI and ASGI), plus the report page.

Put it first in ``MIDDLEWARE`` so the statements of every other middleware count too.
Each request's findings are logged (``MODE`` "warn"), raised (``"raise"``: the request
fails with ``NPlusOneError``), and remembered for the HTML page served at
``REPORT_URL`` (default ``/__nplusone__/``, only when ``DEBUG`` is on).
"""

import logging
import sys

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed

from . import scope
from . import settings as np_settings
from .report import history, page_response

logger = logging.getLogger("django_rustpg.nplusone")
_warned = False


def rustpg_aliases(databases) -> list:
    """Aliases of ``DATABASES`` whose ENGINE is django_rustpg (or a backend built on it)."""
    out = []
    for alias, cfg in (databases or {}).items():
        engine = (cfg or {}).get("ENGINE") or ""
        if engine == "django_rustpg" or engine.startswith("django_rustpg."):
            out.append(alias)
            continue
        try:  # a project backend subclassing ours
            import importlib

            from django_rustpg.base import DatabaseWrapper as Ours

            mod = importlib.import_module(f"{engine}.base")
            if issubclass(getattr(mod, "DatabaseWrapper", object), Ours):
                out.append(alias)
        except Exception:
            pass
    return out


def warn_if_no_rustpg_database():
    """Once per process: without a django_rustpg database nothing is recorded, and every
    request would look clean ("0 statements")."""
    global _warned
    if _warned:
        return
    from django.conf import settings

    if not rustpg_aliases(getattr(settings, "DATABASES", {})):
        _warned = True
        logger.warning(
            "django_rustpg.nplusone: no database in DATABASES uses ENGINE 'django_rustpg'; the N+1 detector "
            "only sees statements run through django_rustpg, so it will report nothing")


class NPlusOneMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.config = np_settings.load()  # validates IGNORE now: bad settings fail at startup
        if self.config.mode == "off":
            raise MiddlewareNotUsed("DJANGO_RUSTPG_NPLUSONE['MODE'] is 'off'")
        warn_if_no_rustpg_database()
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def _page(self, request):
        url = np_settings.load().report_url
        if url and request.path == url:
            return page_response(request)
        return None

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        page = self._page(request)
        if page is not None:
            return page
        cm, report = self._open(request)
        try:
            response = self.get_response(request)
        except BaseException:
            self._close(cm, request, report, 500, sys.exc_info())
            raise
        self._close(cm, request, report, response.status_code, (None, None, None))
        return response

    @staticmethod
    def _open(request):
        cm = scope(f"{request.method} {request.path}")
        return cm, cm.__enter__()

    @staticmethod
    def _close(cm, request, report, status, exc_info):
        # The request is recorded even when ending the scope raises (MODE "raise").
        try:
            cm.__exit__(*exc_info)
        finally:
            history.record(request, status, report)

    async def __acall__(self, request):
        page = self._page(request)
        if page is not None:
            return page
        cm, report = self._open(request)
        try:
            response = await self.get_response(request)
        except BaseException:
            self._close(cm, request, report, 500, sys.exc_info())
            raise
        self._close(cm, request, report, response.status_code, (None, None, None))
        return response
