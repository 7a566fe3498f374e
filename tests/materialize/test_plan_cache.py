"""Plans of models whose select list is only their own columns (no annotations, no
select_related), converters included, are built once per (model, loaded fields, column
offset, column count, table alias, connection, fetch mode) and reused (materialize_cache.py, `plain_plans`): each reuse must give exactly Django's objects, and
anything that changes the plan must build another."""
import pytest
from django.db.models import Value
from django.db.models.functions import Upper

from mat_app import models as m
from mat_helpers import compare


@pytest.fixture
def plan_cache(plan_spy, monkeypatch):
    if plan_spy is None:
        pytest.skip("needs the plan spy (runs alone)")
    from django_rustpg import materialize_cache

    monkeypatch.setattr(materialize_cache, "plain_plans", {})
    return materialize_cache.plain_plans


def test_a_plain_get_reuses_its_plan(plan_spy, plan_cache):
    first = m.Publisher.objects.order_by("id").first()
    assert first is not None, "the seed has publishers"
    plan_cache.clear()
    compare(plan_spy, lambda db: m.Publisher.objects.using(db).get(pk=first.pk), {"models"})
    # Second and later runs: no new plan, same objects as Django's (compare checks both).
    for _ in range(2):
        plan_spy.executed.clear()
        compare(plan_spy, lambda db: m.Publisher.objects.using(db).get(pk=first.pk), set())
        assert "default" in plan_spy.executed, "the native path did not run"
    assert len(plan_cache) == 1


@pytest.mark.parametrize(
    "other",
    [
        lambda db: m.Publisher.objects.using(db).only("id", "name"),  # other loaded fields
        lambda db: m.Publisher.objects.using(db).annotate(n=Value(1)),  # an annotation
        lambda db: m.Publisher.objects.using(db).annotate(u=Upper("name")).defer("founded"),
        lambda db: m.Publisher.objects.using(db).select_related("country"),  # related: never cached
    ],
)
def test_what_changes_the_plan_builds_another(plan_spy, plan_cache, other):
    compare(plan_spy, lambda db: m.Publisher.objects.using(db).all(), {"models"})
    compare(plan_spy, other, {"models"})
    compare(plan_spy, other, None)  # and the shape's own reuse is still Django's objects


def test_a_reused_plan_keeps_each_querysets_fetch_mode(plan_spy, plan_cache):
    fetch_modes = pytest.importorskip("django.db.models.fetch_modes", reason="Django < 6.1 has no fetch modes")
    for mode in [fetch_modes.FETCH_ONE, fetch_modes.FETCH_RAISE, fetch_modes.FETCH_ONE, fetch_modes.FETCH_RAISE]:
        native, _ = compare(plan_spy, lambda db: list(m.Publisher.objects.using(db).fetch_mode(mode)), None)
        assert native and all(p._state.fetch_mode is mode for p in native)
    assert len(plan_cache) == 2  # one plan per mode, each reused


@pytest.mark.parametrize(
    "build",
    [
        # JSONField (the native parse and a custom decoder), MoneyField.from_db_value,
        # arrays and ranges: every converter Django would run, from a reused plan.
        lambda db: m.AllTypes.objects.using(db).filter(label__in=["full", "nulls", "nan"]),
        lambda db: m.Book.objects.using(db).filter(metadata__isnull=False).order_by("id")[:5],
        lambda db: m.Book.objects.using(db).only("id", "metadata").filter(pk__gt=0),
    ],
)
def test_plans_with_converters_are_reused_and_still_convert(plan_spy, plan_cache, build):
    compare(plan_spy, build, {"models"})
    for _ in range(2):
        compare(plan_spy, build, set())  # no new plan; objects still equal Django's
    assert len(plan_cache) == 1


def test_a_receiver_connected_after_caching_sends_the_model_to_django(plan_spy, plan_cache):
    from django.db.models.signals import post_init

    compare(plan_spy, lambda db: m.Publisher.objects.using(db).all(), {"models"})
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    post_init.connect(receiver, sender=m.Publisher)
    try:
        native, django = compare(plan_spy, lambda db: m.Publisher.objects.using(db).all(), set())
        assert len(seen) == 2 * len(native)  # once per instance, on each path
    finally:
        post_init.disconnect(receiver, sender=m.Publisher)


@pytest.fixture
def no_init_receivers(monkeypatch):
    """No pre_init/post_init receiver in the process (the suite's own models connect some),
    so the native path's check takes its shortcut: empty receiver lists."""
    from django.db.models.signals import post_init, pre_init

    for signal in (pre_init, post_init):
        monkeypatch.setattr(signal, "receivers", [])
        signal.sender_receivers_cache.clear()
    yield
    for signal in (pre_init, post_init):
        signal.sender_receivers_cache.clear()


@pytest.mark.parametrize("signal_name", ["pre_init", "post_init"])
@pytest.mark.parametrize("for_the_model", [True, False], ids=["sender", "any-sender"])
def test_the_first_init_receiver_in_the_process_sends_the_model_to_django(
    plan_spy, plan_cache, no_init_receivers, signal_name, for_the_model
):
    from django.db.models import signals

    signal = getattr(signals, signal_name)
    compare(plan_spy, lambda db: m.Publisher.objects.using(db).all(), {"models"})
    seen = []

    def receiver(sender, **kwargs):
        seen.append(sender)

    sender = m.Publisher if for_the_model else None
    signal.connect(receiver, sender=sender)
    try:
        native, django = compare(plan_spy, lambda db: m.Publisher.objects.using(db).all(), set())
        assert native and seen == [m.Publisher] * (2 * len(native))  # once per instance, on each path
    finally:
        signal.disconnect(receiver, sender=sender)
    compare(plan_spy, lambda db: m.Publisher.objects.using(db).all(), set())  # native again, reused plan
