"""Celery task scopes (signal handlers; a real eager task when Celery is installed)."""
import logging
import os

import pytest

from django_rustpg.nplusone import celery as np_celery
from shop.models import Book


class FakeTask:
    name = "shop.tasks.send_digest"


def test_signal_handlers_open_and_close_a_scope(data, caplog):
    with caplog.at_level(logging.WARNING, logger="django_rustpg.nplusone"):
        np_celery.task_prerun(sender=FakeTask, task_id="t1", task=FakeTask())
        [b.author.name for b in Book.objects.all()]
        report = np_celery.task_postrun(sender=FakeTask, task_id="t1", task=FakeTask())
    assert report.name == "celery:shop.tasks.send_digest"
    assert [f.relation for f in report.findings] == ["shop.Book.author"]
    assert "N+1 query" in caplog.text


def test_postrun_without_prerun_is_harmless():
    assert np_celery.task_postrun(task_id="never-started") is None


def test_install_without_celery_is_quiet():
    try:
        import celery  # noqa: F401
    except ImportError:
        assert np_celery.install(quiet=True) is False
        with pytest.raises(ImportError):
            np_celery.install()
    else:
        assert np_celery.install(quiet=True) is True


def test_real_celery_eager_task(data):
    if os.environ.get("CI"):
        import celery  # the Makefile installs it: under CI this test must run
    else:
        celery = pytest.importorskip("celery")
    app = celery.Celery("np", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    assert np_celery.install() is True

    @app.task(name="shop.digest")
    def digest():
        return [b.author.name for b in Book.objects.all()]

    reports = []
    original = np_celery.task_postrun

    def spy(*args, **kwargs):
        reports.append(original(*args, **kwargs))

    from celery import signals

    signals.task_postrun.disconnect(dispatch_uid="django_rustpg_nplusone_postrun")
    signals.task_postrun.connect(spy, weak=False, dispatch_uid="django_rustpg_nplusone_postrun")
    try:
        assert len(digest.delay().get()) == 10
    finally:
        signals.task_postrun.disconnect(dispatch_uid="django_rustpg_nplusone_postrun")
        signals.task_postrun.connect(original, weak=False, dispatch_uid="django_rustpg_nplusone_postrun")
    (report,) = reports
    assert report.name == "celery:shop.digest"
    assert [f.relation for f in report.findings] == ["shop.Book.author"]
