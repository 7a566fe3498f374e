"""``NPlusOneMiddleware``: one N+1 scope per request (WSGI and ASGI), plus the report page.

Put it first in ``MIDDLEWARE`` so the statements of every other middleware count too.
Each request's findings are logged (``MODE`` "warn"), raised (``"raise"``: the request
fails with ``NPlusOneError``), and remembered for the HTML page served at
``REPORT_URL`` (default ``/__nplusone__/``, only when ``DEBUG`` is on).
"""

import sys

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed

from . import scope
from . import settings as np_settings
from .report import history, page_response


class NPlusOneMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.config = np_settings.load()  # validates IGNORE now: bad settings fail at startup
        if self.config.mode == "off":
            raise MiddlewareNotUsed("DJANGO_RUSTPG_NPLUSONE['MODE'] is 'off'")
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
