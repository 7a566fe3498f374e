"""The version gate (materialize.VERIFIED): the native path runs only on Django code it was
verified against; anywhere else every queryset takes Django's own iterable, with one
warning per process."""
import warnings

import django
import pytest

from django_rustpg import materialize
from mat_app import models as m
from mat_helpers import compare


def test_running_django_is_verified():
    """Fails when the installed Django's iterable code differs from the verified one: verify
    it (this suite and Django's with --compare), then add its digest to VERIFIED."""
    gate, reason = materialize._decide_gate()
    assert reason is None, reason
    assert gate is materialize.VERIFIED[django.VERSION[:2]]
    assert materialize._gate is gate


def test_features_are_read_from_django():
    from django.db.models import QuerySet

    fetch_modes, skips_deferred = materialize.detect_iterables()
    assert fetch_modes == hasattr(QuerySet, "fetch_mode")
    assert fetch_modes == skips_deferred  # both arrived in Django 6.1


@pytest.mark.parametrize(
    "how",
    ["unknown_version", "features_differ", "code_differs", "source_unreadable"],
)
def test_gate_closes(monkeypatch, how):
    if how == "unknown_version":
        monkeypatch.setattr(django, "VERSION", (9, 9, 0, "final", 0))
    elif how == "features_differ":
        real = materialize.detect_iterables()
        monkeypatch.setattr(materialize, "detect_iterables", lambda: (not real[0], real[1]))
    elif how == "code_differs":
        monkeypatch.setattr(materialize, "source_digest", lambda: "0000000000000000")
    else:
        monkeypatch.setattr(materialize.inspect, "getsource", lambda obj: (_ for _ in ()).throw(OSError("no source")))
    gate, reason = materialize._decide_gate()
    assert gate is None and reason


def test_closed_gate_uses_djangos_iterables_and_warns_once(plan_spy, monkeypatch):
    monkeypatch.setattr(materialize, "_gate", None)
    monkeypatch.setattr(materialize, "_gate_reason", "Django 9.9 is not a verified version")
    monkeypatch.setattr(materialize, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for build in (
            lambda a: m.Book.objects.using(a).select_related("author"),
            lambda a: m.Book.objects.using(a).values("title", "price"),
            lambda a: m.Book.objects.using(a).values_list("id", flat=True),
        ):
            compare(plan_spy, build, set())
    mine = [w for w in caught if issubclass(w.category, materialize.MaterializeFallbackWarning)]
    assert len(mine) == 1, [str(w.message) for w in mine]
    assert "Django 9.9" in str(mine[0].message)
