"""Django ``TestCase`` support, and keeping test setup out of N+1 scopes.

    from django.test import TestCase
    from django_rustpg.nplusone.testing import NPlusOneMixin

    class BookTests(NPlusOneMixin, TestCase):
        nplusone_threshold = 2          # optional (default: the setting)

        def test_list(self):            # fails when the test body has findings
            ...

        def test_other(self):
            with self.assertNoNPlusOne():   # or check one block only
                ...

Only the test method is checked: ``setUpClass``/``setUpTestData``, fixtures,
``setUp``/``tearDown`` are never recorded (``install_test_hooks`` wraps them in
``nplusone.ignore()``; the pytest plugin calls it too).
"""

import functools
import inspect
import unittest

from . import NPlusOneError, ignore, scope

_hooks_installed = False


def _ignored(func):
    if getattr(func, "_rustpg_nplusone_ignored", False):
        return func

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with ignore():
            return func(*args, **kwargs)

    wrapper._rustpg_nplusone_ignored = True
    return wrapper


def install_test_hooks():
    """Runs test setup/teardown (unittest's setUp/tearDown, Django's fixture loading and
    ``setUpClass``, hence ``setUpTestData``) under ``nplusone.ignore()``. Idempotent."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    for name in ("_callSetUp", "_callTearDown"):
        if hasattr(unittest.TestCase, name):
            setattr(unittest.TestCase, name, _ignored(getattr(unittest.TestCase, name)))
    try:
        from django.test import TestCase, TransactionTestCase
    except Exception:  # pragma: no cover
        return
    for name in ("_fixture_setup", "_fixture_teardown"):
        if hasattr(TransactionTestCase, name):
            setattr(TransactionTestCase, name, _ignored(getattr(TransactionTestCase, name)))
    original = TestCase.__dict__.get("setUpClass")
    if isinstance(original, classmethod) and not getattr(original.__func__, "_rustpg_nplusone_ignored", False):
        TestCase.setUpClass = classmethod(_ignored(original.__func__))


class _AssertNoNPlusOne:
    def __init__(self, testcase, threshold=None, duplicates=None):
        self.testcase = testcase
        self.scope = scope(testcase.id(), mode="collect", threshold=threshold, duplicates=duplicates)
        self.scope._enforced = True

    def __enter__(self):
        self.report = self.scope.__enter__()
        return self.report

    def __exit__(self, exc_type, exc, tb):
        self.scope.__exit__(exc_type, exc, tb)
        if exc_type is None and self.report.findings:
            self.testcase.fail(str(NPlusOneError(self.report.findings, self.testcase.id())))
        return False


class NPlusOneMixin:
    """Fails a test whose body has N+1 or duplicate query findings (see module docs)."""

    nplusone_check = True
    nplusone_threshold = None
    nplusone_duplicates = None
    nplusone_report = None

    @classmethod
    def setUpClass(cls):
        install_test_hooks()
        super().setUpClass()

    def _callTestMethod(self, method):
        if not self.nplusone_check:
            return super()._callTestMethod(method)
        checked = scope(self.id(), mode="collect", threshold=self.nplusone_threshold,
                        duplicates=self.nplusone_duplicates)
        checked._test_file = inspect.getfile(type(self))
        checked._enforced = True
        with checked as report:
            super()._callTestMethod(method)
        self.nplusone_report = report
        if report.findings:
            self.fail(str(NPlusOneError(report.findings, self.id())))

    def assertNoNPlusOne(self, threshold=None, duplicates=None):
        return _AssertNoNPlusOne(self, threshold, duplicates)
