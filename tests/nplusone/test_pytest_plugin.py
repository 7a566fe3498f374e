"""The pytest plugin, run in-process by pytester (same Django setup and transaction)."""
import json

import pytest

BAD = '''
import pytest
from shop.models import Book

@pytest.mark.nplusone
def test_marked_bad():
    assert [b.author.name for b in Book.objects.all()]

@pytest.mark.nplusone
def test_marked_good():
    assert [b.author.name for b in Book.objects.select_related("author")]

def test_unmarked_bad():
    assert [len(b.reviews.all()) for b in Book.objects.all()]

@pytest.mark.no_nplusone
def test_opted_out_bad():
    assert [len(b.labels.all()) for b in Book.objects.all()]

@pytest.mark.nplusone(threshold=20)
def test_marked_with_threshold():
    assert [b.author.name for b in Book.objects.all()]

@pytest.fixture
def loaded():
    # Fixtures are setup: never checked.
    return [b.author.name for b in Book.objects.all()]

@pytest.mark.nplusone
def test_fixture_setup_is_excluded(loaded):
    assert loaded
'''


def run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "django_rustpg.nplusone.pytest_plugin", "-p", "no:cacheprovider", *args)


def test_marker(pytester, data):
    pytester.makepyfile(test_inner=BAD)
    result = run(pytester)
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["*test_marked_bad*", "*N+1 query (confirmed)*select_related(\"author\")*"])


def test_global_switch(pytester, data):
    pytester.makepyfile(test_inner=BAD)
    result = run(pytester, "--nplusone")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(["*FAILED*test_unmarked_bad*"])


def test_ini_switch(pytester, data):
    pytester.makepyfile(test_inner=BAD)
    pytester.makeini("[pytest]\nnplusone = true\n")
    run(pytester).assert_outcomes(passed=4, failed=2)


def test_json_report(pytester, data, tmp_path):
    pytester.makepyfile(test_inner=BAD)
    path = tmp_path / "nplusone.json"
    run(pytester, f"--nplusone-report={path}").assert_outcomes(passed=5, failed=1)
    report = json.loads(path.read_text())
    by_test = {f["test"].split("::")[-1]: f for f in report["findings"]}
    # Unmarked tests are recorded in the report (not failed).
    assert set(by_test) == {"test_marked_bad", "test_unmarked_bad", "test_opted_out_bad"} - {"test_opted_out_bad"}
    assert by_test["test_marked_bad"]["relation"] == "shop.Book.author"
    assert by_test["test_unmarked_bad"]["fix"] == 'prefetch_related("reviews")'
    assert report["stale_baseline"] == []


def test_baseline(pytester, data, tmp_path):
    baseline = tmp_path / "baseline.json"
    pytester.makepyfile(test_inner=BAD)
    # 1. Record the known findings: nothing fails while updating.
    run(pytester, "--nplusone", f"--nplusone-baseline={baseline}", "--nplusone-update-baseline").assert_outcomes(passed=6)
    entries = json.loads(baseline.read_text())["entries"]
    assert len(entries) == 2
    # 2. With the baseline, known findings pass.
    run(pytester, "--nplusone", f"--nplusone-baseline={baseline}").assert_outcomes(passed=6)
    # 3. A new finding fails; a fixed one is listed as stale.
    pytester.makepyfile(test_inner=BAD.replace(
        "assert [len(b.reviews.all()) for b in Book.objects.all()]",
        "assert [len(b.reviews.all()) for b in Book.objects.prefetch_related('reviews')]",
    ) + '''
def test_new_bad():
    assert [a.profile.bio for a in __import__("shop.models").models.Author.objects.all()]
''')
    report = tmp_path / "r.json"
    result = run(pytester, "--nplusone", f"--nplusone-baseline={baseline}", f"--nplusone-report={report}")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*1 stale baseline entry*", "*STALE n_plus_one|*"])
    result.stdout.fnmatch_lines(["*FAILED*test_new_bad*"])
    doc = json.loads(report.read_text())
    assert len(doc["stale_baseline"]) == 1 and "test_unmarked_bad" in doc["stale_baseline"][0]["key"]
    assert len(doc["new"]) == 1


def test_unittest_setup_is_excluded(pytester, data):
    pytester.makepyfile(test_inner='''
import unittest
import pytest
from shop.models import Book

class T(unittest.TestCase):
    def setUp(self):
        self.names = [b.author.name for b in Book.objects.all()]

    @pytest.mark.nplusone
    def test_clean_body(self):
        assert self.names
''')
    run(pytester).assert_outcomes(passed=1)


def test_fixture_reports(pytester, data):
    pytester.makepyfile(test_inner='''
import pytest
from shop.models import Book

@pytest.mark.nplusone(threshold=50)
def test_report(nplusone_report):
    [b.author.name for b in Book.objects.all()]
    assert nplusone_report is not None and nplusone_report.findings == []
''')
    run(pytester).assert_outcomes(passed=1)


WRITES = '''
import pytest
from shop import scenarios
from shop.models import Book, Label

@pytest.mark.nplusone
def test_arranging_data_in_the_test_is_not_a_finding():
    for i in range(5):
        Label.objects.create(name=f"arranged{i}")
    assert Label.objects.filter(name__startswith="arranged").count() == 5

@pytest.mark.nplusone
def test_application_code_writing_per_row_is():
    scenarios.reprice_each(list(Book.objects.all()), 4)
'''


def test_writes_from_the_test_module_are_arranging_data(pytester, data):
    pytester.makepyfile(test_writes=WRITES)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_application_code_writing_per_row_is*"])
    result.stdout.fnmatch_lines(["*N+1 writes, save() per row*bulk_update([[]...[]], [[]\"price\"[]])*"])


def test_bad_settings_stop_the_run(pytester, data):
    from django.test import override_settings

    pytester.makepyfile(test_inner="def test_x():\n    pass\n")
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"IGNORE": ["shop.NoSuchModel"]}):
        result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown model 'shop.NoSuchModel'*"])
