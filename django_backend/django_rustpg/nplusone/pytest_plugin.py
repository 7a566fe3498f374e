"""pytest plugin: fail tests with N+1 / duplicate query findings.

Enable it with ``-p django_rustpg.nplusone.pytest_plugin`` (or
``pytest_plugins = ["django_rustpg.nplusone.pytest_plugin"]`` in a root conftest.py).

- ``@pytest.mark.nplusone`` (optionally ``threshold=3``, ``duplicates=False``): this test
  fails when its body has findings. ``--nplusone`` (or ini ``nplusone = true``, or
  ``DJANGO_RUSTPG_NPLUSONE["PYTEST"]``) does that for every test;
  ``@pytest.mark.no_nplusone`` opts a test out.
- Only the test call is checked: fixtures and unittest/Django setup are excluded.
  Requests made with the test client are checked too (the middleware's scope nests in
  the test's).
- ``--nplusone-report=PATH`` (or ``REPORT_PATH``): a JSON report of every finding.
- ``--nplusone-baseline=PATH`` (or ``BASELINE_PATH``): findings listed there do not fail;
  the summary lists new findings and stale baseline entries (listed, never failing).
  ``--nplusone-update-baseline`` writes the session's findings to that file.
- The ``nplusone_report`` fixture gives the running test's ``Report``.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from . import NPlusOneError, scope

_STATE_KEY = "_rustpg_nplusone"


def pytest_addoption(parser):
    group = parser.getgroup("nplusone", "N+1 query detection (django_rustpg)")
    group.addoption("--nplusone", action="store_true", default=None,
                    help="fail every test whose body runs N+1 or duplicate queries")
    group.addoption("--nplusone-threshold", type=int, default=None, metavar="N",
                    help="repeats that make a finding (default: the setting, 2)")
    group.addoption("--nplusone-report", default=None, metavar="PATH", help="write a JSON report of all findings")
    group.addoption("--nplusone-baseline", default=None, metavar="PATH",
                    help="JSON file of known findings: only new findings fail")
    group.addoption("--nplusone-update-baseline", action="store_true", default=False,
                    help="write this session's findings to the baseline file")
    parser.addini("nplusone", type="bool", default=False, help="check every test for N+1 queries")


class _State:
    def __init__(self, config):
        self.config = config
        self.results: dict[str, list] = {}
        self.findings: list[dict] = []
        self.framework_findings: list[dict] = []  # listed in the report, never failing
        self._settings = None
        self._baseline = None
        self.new_keys: list[str] = []

    def settings(self):
        if self._settings is None:
            from . import settings as np_settings

            self._settings = np_settings.load()  # defaults when Django is not configured
        return self._settings

    @property
    def global_switch(self) -> bool:
        opt = self.config.getoption("--nplusone")
        if opt:
            return True
        if self.config.getini("nplusone"):
            return True
        return bool(self.settings().pytest)

    @property
    def report_path(self):
        return self.config.getoption("--nplusone-report") or self.settings().report_path

    @property
    def baseline_path(self):
        return self.config.getoption("--nplusone-baseline") or self.settings().baseline_path

    @property
    def baseline(self) -> dict:
        if self._baseline is None:
            self._baseline = {}
            path = self.baseline_path
            if path and os.path.exists(path) and not self.config.getoption("--nplusone-update-baseline"):
                with open(path, encoding="utf-8") as fh:
                    data = json.load(fh)
                for entry in data.get("entries", []):
                    self._baseline[entry["key"]] = entry
        return self._baseline

    def mode_for(self, item):
        """None: not scoped; "collect": recorded only; "fail": recorded and enforced."""
        if item.get_closest_marker("no_nplusone"):
            return None
        updating = self.config.getoption("--nplusone-update-baseline")
        if item.get_closest_marker("nplusone") or self.global_switch:
            return "collect" if updating else "fail"
        if self.report_path or self.config.getoption("--nplusone-update-baseline"):
            return "collect"
        return None

    def record(self, item, report):
        items = []
        for f in report.findings:
            d = f.to_dict()
            d["test"] = item.nodeid
            d["baselined"] = f.key in self.baseline
            items.append(d)
        if items:
            self.results[item.nodeid] = items
            self.findings.extend(items)
        for f in report.framework_findings:
            d = f.to_dict()
            d["test"] = item.nodeid
            self.framework_findings.append(d)


def _state(config) -> _State:
    return getattr(config, _STATE_KEY)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "nplusone(threshold=None, duplicates=None): fail this test if its body runs N+1 or duplicate queries",
    )
    config.addinivalue_line("markers", "no_nplusone: do not check this test for N+1 queries")
    setattr(config, _STATE_KEY, _State(config))
    from .testing import install_test_hooks

    install_test_hooks()


def pytest_collection_finish(session):
    """Settings are validated once collected tests could use them (conftest files have
    configured Django by then): a bad IGNORE entry stops the run."""
    from django.core.exceptions import ImproperlyConfigured

    state = _state(session.config)
    try:
        state.settings()
    except ImproperlyConfigured as e:
        from .settings import Config

        state._settings = Config()  # the session still ends (reports) cleanly
        raise pytest.UsageError(str(e)) from e


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    state = _state(item.config)
    mode = state.mode_for(item)
    if mode is None:
        return (yield)
    marker = item.get_closest_marker("nplusone")
    kwargs = dict(marker.kwargs) if marker else {}
    threshold = kwargs.get("threshold") or item.config.getoption("--nplusone-threshold")
    cm = scope(item.nodeid, mode="collect", threshold=threshold, duplicates=kwargs.get("duplicates"))
    cm._report = getattr(item, "_rustpg_nplusone_report", None)  # made by the fixture, if used
    cm._test_file = str(getattr(item, "path", None) or item.fspath)
    cm._enforced = mode == "fail"
    report = cm.__enter__()
    try:
        result = yield
    except BaseException:
        cm.__exit__(*sys.exc_info())
        state.record(item, report)
        raise
    cm.__exit__(None, None, None)
    state.record(item, report)
    if mode == "fail":
        new = [f for f in report.findings if f.key not in state.baseline]
        if new:
            state.new_keys.extend(f.key for f in new)
            pytest.fail(str(NPlusOneError(new, item.nodeid)), pytrace=False)
    return result


@pytest.fixture
def nplusone_report(request):
    """The ``Report`` of the running test's scope: filled when the test body ends (use
    it in teardown, or ``nplusone.scope()`` for a block). None if the test is not checked."""
    state = _state(request.config)
    if state.mode_for(request.node) is None:
        return None
    from . import Report

    report = Report(request.node.nodeid)
    request.node._rustpg_nplusone_report = report
    return report


def _stale(state) -> list:
    seen = {f["key"] for f in state.findings}
    return [e for k, e in state.baseline.items() if k not in seen]


def pytest_sessionfinish(session, exitstatus):
    state = _state(session.config)
    path = state.report_path
    if path:
        report = {
            "findings": state.findings,
            "tests": {k: len(v) for k, v in state.results.items()},
            "new": sorted({f["key"] for f in state.findings if not f["baselined"]}),
            "stale_baseline": _stale(state),
            "framework_findings": state.framework_findings,
        }
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, default=str)
    if session.config.getoption("--nplusone-update-baseline"):
        bpath = state.baseline_path
        if not bpath:
            raise pytest.UsageError("--nplusone-update-baseline needs --nplusone-baseline=PATH or BASELINE_PATH")
        entries = {}
        for f in state.findings:
            entries.setdefault(f["key"], {
                "key": f["key"], "kind": f["kind"], "callsite": f["callsite"], "relation": f["relation"],
                "fix": f["fix"], "test": f["test"],
            })
        with open(bpath, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "entries": sorted(entries.values(), key=lambda e: e["key"])}, fh, indent=2)
            fh.write("\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = _state(config)
    if not state.findings and not state.baseline:
        return
    tr = terminalreporter
    tr.section("N+1 queries (django_rustpg)")
    new = [f for f in state.findings if not f["baselined"]]
    known = [f for f in state.findings if f["baselined"]]
    tr.write_line(f"{len(state.findings)} finding(s): {len(new)} new, {len(known)} in the baseline")
    for f in new:
        tr.write_line(f"  NEW {f['kind']} x{f['count']} at {f['callsite']} ({f['test']})"
                      + (f" fix: {f['fix']}" if f.get("fix") else ""))
    stale = _stale(state)
    if stale:
        tr.write_line(f"{len(stale)} stale baseline entr{'y' if len(stale) == 1 else 'ies'} (no longer found):")
        for e in stale:
            tr.write_line(f"  STALE {e['key']} ({e.get('callsite')})")
    if state.report_path:
        tr.write_line(f"JSON report: {state.report_path}")
