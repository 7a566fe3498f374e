"""``manage.py nplusone`` (URLs, test labels, JSON report, baseline diff), the
middleware's startup warning, and the pytest plugin's entry point."""
import json
import logging
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test.runner import DiscoverRunner

from django_rustpg.nplusone import middleware
from django_rustpg.nplusone.management.commands import nplusone as command


def test_urls_json_report_and_baseline_diff(data, tmp_path, capsys):
    report_path, baseline = tmp_path / "r.json", tmp_path / "b.json"
    call_command("nplusone", "/books/", "/clean/", json=str(report_path), baseline=str(baseline), update_baseline=True)
    report = json.loads(report_path.read_text())
    (f,) = report["findings"]
    assert (f["run"], f["relation"], f["fix"]) == ("GET /books/", "shop.Book.author", 'select_related("author")')
    assert report["new"] == [f["key"]] and report["runs"]["GET /clean/"]["findings"] == 0
    assert [e["key"] for e in json.loads(baseline.read_text())["entries"]] == [f["key"]]
    capsys.readouterr()

    # Against the baseline: known, nothing new; the fixed URL leaves a stale entry.
    call_command("nplusone", "/books/", json=str(report_path), baseline=str(baseline))
    assert json.loads(report_path.read_text())["new"] == []
    assert "known n_plus_one" in capsys.readouterr().out
    call_command("nplusone", "/books/?fix=select_related(%22author%22)", json=str(report_path), baseline=str(baseline))
    report = json.loads(report_path.read_text())
    assert report["findings"] == [] and [e["key"] for e in report["stale_baseline"]] == [f["key"]]


def test_fail_exits_1_on_new_findings(data):
    with pytest.raises(SystemExit) as exc:
        call_command("nplusone", "/books/", fail=True)
    assert exc.value.code == 1
    call_command("nplusone", "/clean/", fail=True)  # nothing new: returns


class NoDatabaseSetup(DiscoverRunner):
    """The pytest session has set the test database and environment up already."""

    def setup_test_environment(self, **kwargs):
        pass

    def teardown_test_environment(self, **kwargs):
        pass

    def setup_databases(self, **kwargs):
        return None

    def teardown_databases(self, old_config, **kwargs):
        pass

    def run_checks(self, databases):
        pass


def test_test_labels_each_test_is_a_scope(db):
    runs = dict(command.run_tests(["shop.np_command_cases"], runner_class=NoDatabaseSetup))
    loop = runs["shop.np_command_cases.Loops.test_loop"]
    clean = runs["shop.np_command_cases.Loops.test_clean"]
    assert [f.relation for f in loop.findings] == ["shop.Book.author"]
    assert clean.findings == []  # setUpTestData's creates are not findings


def test_no_arguments_is_an_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="give URLs"):
        call_command("nplusone")


def test_middleware_warns_once_without_a_rustpg_database(caplog, monkeypatch):
    from django.test import override_settings

    monkeypatch.setattr(middleware, "_warned", False)
    stock = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"}}
    assert middleware.rustpg_aliases(stock) == []
    with override_settings(DATABASES=stock), caplog.at_level(logging.WARNING, "django_rustpg.nplusone"):
        middleware.NPlusOneMiddleware(lambda r: None)
        middleware.NPlusOneMiddleware(lambda r: None)
    warnings = [r for r in caplog.records if "no database in DATABASES uses ENGINE 'django_rustpg'" in r.getMessage()]
    assert len(warnings) == 1


def test_middleware_is_quiet_with_a_rustpg_database(caplog, monkeypatch):
    monkeypatch.setattr(middleware, "_warned", False)
    with caplog.at_level(logging.WARNING, "django_rustpg.nplusone"):
        middleware.NPlusOneMiddleware(lambda r: None)
    assert not [r for r in caplog.records if "no database" in r.getMessage()]
    assert middleware.rustpg_aliases({"a": {"ENGINE": "django_rustpg"}, "b": {"ENGINE": "x"}}) == ["a"]


def test_pytest_plugin_is_registered_by_its_entry_point():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("django_rustpg.nplusone.pytest_plugin") == "django_rustpg.nplusone.pytest_plugin"


def test_nplusone_mark_is_known_without_dash_p(tmp_path):
    """A fresh pytest run, no -p and no conftest: the mark is registered (strict markers
    would fail an unknown one)."""
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n@pytest.mark.nplusone\ndef test_ok():\n    pass\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "--strict-markers", "-p", "no:cacheprovider",
                          str(tmp_path / "test_x.py")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout
