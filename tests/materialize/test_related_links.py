"""select_related links the native builder stores itself (django_rustpg/materialize_links.py):
Django's ``set_cached_value`` and the compiler's no-op back link, recognised per query, give
the same ``_state.fields_cache`` (keys, order, objects) as Django's setters; a link that is
anything else (a FilteredRelation's partial) is Django's setter, called for every sibling."""
import pytest
from django.db.models import FilteredRelation, Q

from mat_app import models as m
from mat_helpers import compare


@pytest.fixture
def links_seen(plan_spy, monkeypatch):
    if plan_spy is None:
        pytest.skip("needs the plan spy (runs alone)")
    from django_rustpg import materialize_links

    seen = []
    real = materialize_links.links

    def spy(siblings):
        out = real(siblings)
        if out:  # a leaf model's empty list of related
            seen.append(out)
        return out

    monkeypatch.setattr(materialize_links, "links", spy)
    return seen


def run_twice(plan_spy, links_seen, build):
    """The second run: cache names are computed by then (the first may call Django's setters)."""
    compare(plan_spy, build, {"models"})
    links_seen.clear()
    compare(plan_spy, build, {"models"})
    assert links_seen, "no select_related plan was built"
    return links_seen


def test_a_foreign_key_is_stored_natively_and_its_back_link_skipped(plan_spy, links_seen):
    seen = run_twice(plan_spy, links_seen, lambda db: m.Book.objects.using(db).select_related("author", "editor"))
    assert seen == [[("author", None, True), ("editor", None, True)]]


def test_a_chain_of_foreign_keys(plan_spy, links_seen):
    seen = run_twice(
        plan_spy, links_seen, lambda db: m.Book.objects.using(db).select_related("author__publisher__country")
    )
    # Innermost first: each level's plan is built before its parent's.
    assert seen == [[("country", None, True)], [("publisher", None, True)], [("author", None, True)]]


def test_one_to_one_both_ways_stores_the_back_link(plan_spy, links_seen):
    seen = run_twice(plan_spy, links_seen, lambda db: m.AuthorProfile.objects.using(db).select_related("author"))
    assert seen == [[("author", "profile", False)]]
    seen = run_twice(plan_spy, links_seen, lambda db: m.Author.objects.using(db).select_related("profile"))
    assert seen == [[("profile", "author", False)]]


def test_a_null_foreign_key_is_cached_as_none(plan_spy, links_seen):
    build = lambda db: m.Book.objects.using(db).filter(editor__isnull=True).select_related("editor")  # noqa: E731
    seen = run_twice(plan_spy, links_seen, build)
    assert seen == [[("editor", None, True)]]
    native, _ = compare(plan_spy, build, {"models"})
    assert native and all(vars(b._state)["fields_cache"] == {"editor": None} for b in native)


def test_a_filtered_relation_keeps_djangos_setters_for_every_sibling(plan_spy, links_seen):
    def build(db):
        gallimard = FilteredRelation("author__publisher", condition=Q(author__publisher__name="Gallimard"))
        return m.Book.objects.using(db).annotate(gallimard=gallimard).select_related("gallimard", "editor")

    seen = run_twice(plan_spy, links_seen, build)
    assert [None, None] == [local for local, _, _ in seen[-1]], seen
