"""N+1 query detection in the driver.

Every statement django_rustpg runs passes through its Rust driver, so the driver records
them (fingerprint, application call site, parameters, timing, key values of result
sets) for the innermost open *scope* of the current context, and the scope turns them
into findings when it ends::

    from django_rustpg import nplusone

    with nplusone.scope() as report:      # also a decorator
        ...
    for f in report.findings:
        f.kind            # "n_plus_one" | "duplicate" | "unused_eager_load"
        f.count, f.total_ms
        f.sql, f.fingerprint
        f.callsite        # "path/file.py:LINE" (first frame outside Django/site-packages)
        f.relation        # "shop.Book.author" or None
        f.fix             # 'select_related("author")' or None (validated; else f.no_fix_reason)
        f.confirmed       # parameter values came from an earlier result set in the scope
        f.source_callsite # where that result set was loaded
    report.framework_findings  # what Django itself repeats (never failing)
    report.to_json()

    with nplusone.ignore():               # statements here are not recorded
        ...

Scopes are also opened by ``NPlusOneMiddleware`` (one per request, WSGI and ASGI), the
pytest plugin (``-p django_rustpg.nplusone.pytest_plugin``), ``testing.NPlusOneMixin``
for Django test cases, and Celery task signals (``nplusone.celery``). Settings:
``DJANGO_RUSTPG_NPLUSONE`` (see ``nplusone.settings`` and docs/nplusone.md).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
import time

from .. import _native
from . import _markers
from ._findings import Finding
from . import settings as _settings

__all__ = ["scope", "ignore", "Report", "Finding", "NPlusOneError", "fingerprint", "analyze"]

logger = logging.getLogger("django_rustpg.nplusone")


class NPlusOneError(AssertionError):
    """Raised at the end of a scope in "raise" mode; ``findings`` lists what was found."""

    def __init__(self, findings, name=None):
        self.findings = list(findings)
        where = f" in {name}" if name else ""
        lines = "\n".join(f"  - {f.describe()}" for f in self.findings)
        super().__init__(f"{len(self.findings)} N+1/duplicate query finding(s){where}:\n{lines}")


class Report:
    """What a scope found. ``findings`` is filled when the scope ends."""

    def __init__(self, name=None):
        self.name = name
        self.findings: list[Finding] = []
        # Repeated statements Django itself runs (admin counts, session/auth lookups,
        # contenttypes warm-up): shown apart, never failing.
        self.framework_findings: list[Finding] = []
        self.statements = 0
        self.total_ms = 0.0
        self.started = time.time()
        self.duration_ms = 0.0
        self.closed = False
        self._adopted: list[Finding] = []

    def __repr__(self):
        return f"<nplusone.Report {self.name or ''} findings={len(self.findings)} statements={self.statements}>"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "statements": self.statements,
            "db_ms": round(self.total_ms, 3),
            "duration_ms": round(self.duration_ms, 3),
            "started": self.started,
            "findings": [f.to_dict() for f in self.findings],
            "framework_findings": [f.to_dict() for f in self.framework_findings],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


class scope:
    """Opens an N+1 scope: a context manager yielding a ``Report``, or a decorator.

    ``mode``: "warn" (log one line per finding), "raise" (also raise ``NPlusOneError``),
    "collect" (neither), or None for ``DJANGO_RUSTPG_NPLUSONE["MODE"]`` ("off" there
    means "collect" for explicit scopes). ``threshold``: repeats that make a finding
    (default: the setting, 2).
    """

    def __init__(self, name=None, *, mode=None, threshold=None, duplicates=None):
        if mode not in (None, "warn", "raise", "collect", "off"):
            raise ValueError(f"mode must be 'warn', 'raise' or 'collect', not {mode!r}")
        self.name = name
        self.mode = mode
        self.threshold = threshold
        self.duplicates = duplicates
        self._stack = []
        self._eager = []
        self._report = None  # a Report to fill instead of a new one (pytest fixture)
        # A test's own module (pytest plugin, NPlusOneMixin): writes from there are the test
        # arranging its data (create() in a loop), not findings.
        self._test_file = None
        # Findings fail something here (pytest, NPlusOneMixin): like "raise" for the
        # unused-eager-load check, which is off there until UNUSED_EAGER_LOAD is set.
        self._enforced = False

    # -- decorator
    def __call__(self, func):
        make = functools.partial(scope, self.name or getattr(func, "__qualname__", None), mode=self.mode,
                                 threshold=self.threshold, duplicates=self.duplicates)
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                with make():
                    return await func(*args, **kwargs)
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with make():
                return func(*args, **kwargs)
        return wrapper

    # -- context manager
    def __enter__(self) -> Report:
        _settings.load()  # a bad DJANGO_RUSTPG_NPLUSONE raises ImproperlyConfigured here
        _markers.install()
        native = _native.NPlusOneScope()
        report, self._report = (self._report or Report(self.name)), None
        parent = _markers.pyscope_var.get()
        tokens = (_markers.scope_var.set(native), _markers.pyscope_var.set(report), _markers.origin_var.set(None))
        self._stack.append((native, report, parent, tokens, time.perf_counter()))
        # The stack walk stops at the frame that opened the scope: the frames beyond it
        # are the same for every statement of the scope.
        native.set_anchor(sys._getframe(1))
        cfg = _settings.load()
        mode = self.mode or cfg.mode
        eager = None
        if cfg.unused_eager_load is not None or (mode in ("warn", "collect", "off") and not self._enforced):
            from . import _eager

            eager = _eager.start()
        self._eager.append(eager)
        native.activate()
        return report

    def __exit__(self, exc_type, exc, tb):
        native, report, parent, tokens, t0 = self._stack.pop()
        eager = self._eager.pop()
        native.deactivate()
        if eager is not None:
            from . import _eager

            _eager.stop(eager[1])
        native.set_anchor(None)
        for var, token in zip((_markers.scope_var, _markers.pyscope_var, _markers.origin_var), tokens):
            try:
                var.reset(token)
            except ValueError:  # exited in another context (e.g. a Celery signal): best effort
                var.set(None)
        cfg = _settings.load()
        mode = self.mode or cfg.mode
        if mode == "off":
            mode = "collect"
        threshold = self.threshold or cfg.threshold
        duplicates = cfg.duplicates if self.duplicates is None else self.duplicates
        try:
            from .records import from_native

            export = from_native(native.export(threshold))
            found = _findings_build(export, duplicates, cfg, self.name, self._test_file)
            report.findings = [f for f in found if not f.framework]
            # (after those of nested scopes, adopted while this one ran)
            report.framework_findings = [f for f in found if f.framework] + report.framework_findings
            if eager is not None:
                from . import _eager
                from ._findings import drop_ignored

                unused = drop_ignored(
                    _eager.findings(eager[0], min_rows=cfg.unused_eager_load or 0, scope_name=self.name), cfg.ignore)
                report.findings += [f for f in unused if not f.framework]
                report.framework_findings += [f for f in unused if f.framework]
            report.statements = export.statements
            report.total_ms = export.total_ms
        except Exception:  # never break the user's code because reporting failed
            logger.exception("django_rustpg.nplusone: could not build the report")
        report.duration_ms = (time.perf_counter() - t0) * 1000
        report.closed = True
        own = list(report.findings)
        # Findings of nested scopes (e.g. requests made by a test) count for this one too.
        report.findings.extend(report._adopted)
        if parent is not None and not parent.closed:
            parent._adopted.extend(report.findings)
            parent.framework_findings.extend(report.framework_findings)
        if mode in ("warn", "raise"):
            for f in own:
                logger.warning(f.describe())
            for f in report.framework_findings:
                logger.info("framework: %s", f.describe())
        if mode == "raise" and own and exc_type is None:
            raise NPlusOneError(own, self.name)
        return False


def _findings_build(export, duplicates, cfg, name, test_file=None):
    from ._findings import build

    return build(export, duplicates=duplicates, rules=cfg.ignore, scope_name=name,
                 test_file=test_file)


class ignore:
    """Statements run inside are not recorded by any scope (context manager or decorator)."""

    def __init__(self):
        self._tokens = []

    def __enter__(self):
        self._tokens.append((_markers.scope_var.set(None), _markers.pyscope_var.set(None), _markers.origin_var.set(None)))
        return self

    def __exit__(self, *exc):
        tokens = self._tokens.pop()
        for var, token in zip((_markers.scope_var, _markers.pyscope_var, _markers.origin_var), tokens):
            try:
                var.reset(token)
            except ValueError:
                var.set(None)
        return False

    def __call__(self, func):
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                with ignore():
                    return await func(*args, **kwargs)
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with ignore():
                return func(*args, **kwargs)
        return wrapper


def fingerprint(sql: str) -> str:
    """The fingerprint (16 hex digits) of a statement, in Django's or the driver's form."""
    return _native.fingerprint_sql(sql)[0]


def normalize(sql: str) -> str:
    """The normalized text the fingerprint hashes."""
    return _native.fingerprint_sql(sql)[1]


def analyze(sql: str) -> _native.AnalyzedSql:
    """What the parser saw: kind, tables, filters, count_only, method, fingerprint."""
    return _native.analyze_sql(sql)


def current_report():
    """The report of the innermost open scope of this context, or None."""
    return _markers.pyscope_var.get()
