"""Test runner that records every test outcome to a JSON-lines file.

run.py copies this file next to the generated settings module (as
``django_suite_recorder.py``) and sets ``TEST_RUNNER`` to
``django_suite_recorder.RecordingDiscoverRunner``.  It is a plain
``DiscoverRunner`` whose result class additionally appends one JSON object per
outcome to the file named by ``$DJANGO_SUITE_RECORD``.  With ``--parallel``
Django replays the workers' events on the main process' result object, so
this sees every test exactly like the ``-v 2`` console output does, without
any text parsing.  The console output is unchanged (run.py still parses it as
a cross-check and as a fallback).
"""

import json
import os
import re
import unittest

from django.test.runner import DiscoverRunner

_ENV = "DJANGO_SUITE_RECORD"


_SENTINEL_RE = re.compile(r"\[<object object at 0x[0-9a-fA-F]+>\]")


def _append(path, row):
    # Open/close per row: crash-safe, and no unclosed file at interpreter
    # exit (runtests.py turns ResourceWarning into an error).
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def _short_err(err):
    try:
        exc_type, exc_value = err[0], err[1]
        name = getattr(exc_type, "__name__", str(exc_type))
        text = str(exc_value).strip().splitlines()
        first = text[0] if text else ""
        msg = f"{name}: {first}" if first else name
    except Exception as e:  # pragma: no cover - defensive
        msg = f"<unprintable error: {e!r}>"
    return msg[:500]


def _make_result_class(base):
    class RecordingResult(base):
        def _record(self, test, outcome, detail=None, subtest=None):
            path = os.environ.get(_ENV)
            if not path:
                return
            try:
                test_id = test.id()
            except Exception:
                test_id = str(test)
            row = {"id": test_id, "outcome": outcome}
            if detail:
                row["detail"] = detail
            if subtest is not None:
                try:
                    desc = subtest._subDescription()
                except Exception:
                    desc = str(subtest)
                # The parallel runner pickles subtests, so the "no message"
                # sentinel shows up as "[<object object at 0x...>]".
                row["subtest"] = _SENTINEL_RE.sub("", desc).strip()
            _append(path, row)

        def addSuccess(self, test):
            super().addSuccess(test)
            self._record(test, "ok")

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._record(test, "FAIL", _short_err(err))

        def addError(self, test, err):
            super().addError(test, err)
            self._record(test, "ERROR", _short_err(err))

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._record(test, "skipped", str(reason)[:500])

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            self._record(test, "expected failure")

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._record(test, "unexpected success")

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                failure = issubclass(err[0], test.failureException)
                self._record(
                    test, "FAIL" if failure else "ERROR", _short_err(err), subtest
                )

        def stopTestRun(self):
            super().stopTestRun()
            path = os.environ.get(_ENV)
            if path:
                _append(path, {"event": "stopTestRun", "testsRun": self.testsRun})

    RecordingResult.__name__ = "Recording" + base.__name__
    RecordingResult.__qualname__ = RecordingResult.__name__
    return RecordingResult


class RecordingDiscoverRunner(DiscoverRunner):
    def get_resultclass(self):
        base = super().get_resultclass() or unittest.TextTestResult
        return _make_result_class(base)
