"""Django TestCase support: NPlusOneMixin and assertNoNPlusOne (run with unittest)."""
import unittest

import pytest

from django.test import TestCase

from django_rustpg.nplusone.testing import NPlusOneMixin
from shop import scenarios
from shop.models import Book, Label


class Cases(NPlusOneMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.names = [b.author.name for b in Book.objects.all()]  # setup: never checked

    def setUp(self):
        self.counts = [len(b.reviews.all()) for b in Book.objects.all()]  # setup: never checked

    def test_bad(self):
        [b.author.name for b in Book.objects.all()]

    def test_good(self):
        [b.author.name for b in Book.objects.select_related("author")]

    def test_setup_was_not_checked(self):
        self.assertEqual(len(self.names), 10)
        self.assertEqual(len(self.counts), 10)

    def test_arranging_data(self):
        for i in range(5):  # the test's own writes: arranging, not a finding
            Label.objects.create(name=f"arranged{i}")

    def test_writes_in_application_code(self):
        scenarios.reprice_each(list(Book.objects.all()), 4)

    async def test_async_bad(self):
        async for book in Book.objects.all():
            [r async for r in book.reviews.all()]


class BlockCases(TestCase):
    def test_block(self):
        with NPlusOneMixin.assertNoNPlusOne(self):
            [b.author.name for b in Book.objects.all()]

    def test_block_clean(self):
        with NPlusOneMixin.assertNoNPlusOne(self) as report:
            list(Book.objects.all())
        self.assertEqual(report.findings, [])


Cases.__test__ = BlockCases.__test__ = False  # run below, not collected by pytest


def run(case, name):
    # Note: TestCase.tearDownClass closes the connection: one run per pytest test.
    case.__test__ = True
    try:
        result = unittest.TestResult()
        unittest.TestSuite([case(name)]).run(result)
    finally:
        case.__test__ = False
    return result


def test_mixin_fails_tests_with_findings(data):
    result = run(Cases, "test_bad")
    (failure,) = result.failures
    assert "shop.Book.author" in failure[1] and 'select_related("author")' in failure[1]


@pytest.mark.parametrize("name", ["test_good", "test_setup_was_not_checked", "test_arranging_data"])
def test_mixin_passes_clean_tests_and_excludes_setup(data, name):
    result = run(Cases, name)
    assert result.wasSuccessful(), result.failures + result.errors


def test_mixin_fails_application_writes_per_row(data):
    (failure,) = run(Cases, "test_writes_in_application_code").failures
    assert "N+1 writes, save() per row" in failure[1] and 'bulk_update([...], ["price"])' in failure[1]


def test_mixin_checks_async_tests(data):
    result = run(Cases, "test_async_bad")
    (failure,) = result.failures
    assert "shop.Book.reviews" in failure[1]


def test_assert_no_nplusone_block(data):
    (failure,) = run(BlockCases, "test_block").failures
    assert "N+1 query (confirmed)" in failure[1]


def test_assert_no_nplusone_clean_block(data):
    result = run(BlockCases, "test_block_clean")
    assert result.wasSuccessful(), result.failures + result.errors
