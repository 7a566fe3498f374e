"""Unused eager loading: select_related/prefetch_related paths nothing read. Positives
name the path and the call site; a path read for some rows only (a conditional template
read, a serializer reading fields by name) never fires."""
import pytest
from django.db.models import Prefetch
from django.template.loader import render_to_string
from django.test import override_settings

from django_rustpg import nplusone
from shop.models import Author, Book


def unused(fn, **kw):
    with nplusone.scope(mode="collect", **kw) as report:
        fn()
    return [f for f in report.findings if f.kind == "unused_eager_load"]


def test_select_related_never_read_is_reported_with_its_call_site(data):
    def loop():
        return [b.title for b in Book.objects.select_related("author")]

    (f,) = unused(loop)
    assert (f.relation, f.fix, f.count) == ("shop.Book.author", 'remove "author" from select_related()', 1)
    assert f.callsite == f"test_unused_eager.py:{loop.__code__.co_firstlineno + 1}"
    assert "unused eager load: shop.Book.author" in f.describe()


def test_prefetch_never_read_is_reported(data):
    (f,) = unused(lambda: [a.name for a in Author.objects.prefetch_related("books")])
    assert (f.relation, f.fix) == ("shop.Author.books", 'remove "books" from prefetch_related()')


def test_a_path_read_halfway_is_shortened(data):
    (f,) = unused(lambda: [b.author.name for b in Book.objects.select_related("author__publisher")])
    assert (f.relation, f.fix) == ("shop.Author.publisher", 'shorten "author__publisher" to "author" in select_related()')


def test_read_for_some_rows_only_is_used(data):
    def loop():
        return [b.author.name if b.price > 20 else b.title for b in Book.objects.select_related("author")]

    assert unused(loop) == []


def test_template_reading_a_relation_conditionally_is_used(data):
    def render():
        return render_to_string("shop/books_conditional.html",
                                {"books": Book.objects.select_related("author").order_by("pk")})

    html = render()
    assert "by author4" in html and "book0 by" not in html  # only some rows read the author
    assert unused(render) == []


class Serializer:
    """A serializer in the style of a REST framework's: fields read by name, a nested one
    only when present."""

    fields = ("title", "author.name", "editor.name")

    def to_representation(self, obj):
        out = {}
        for spec in self.fields:
            value = obj
            for part in spec.split("."):
                value = getattr(value, part, None) if value is not None else None
            out[spec] = value
        return out


def test_serializer_reading_relations_by_name_is_used(data):
    def serialize():
        return [Serializer().to_representation(b) for b in Book.objects.select_related("author", "editor")]

    assert len(serialize()) == 10
    assert unused(serialize) == []


def test_prefetch_read_through_prefetch_objects_and_nested_paths_is_used(data):
    def loop():
        qs = Author.objects.prefetch_related(Prefetch("books", queryset=Book.objects.select_related("editor")),
                                             "books__labels")
        return [(b.editor.name, [x.name for x in b.labels.all()]) for a in qs for b in a.books.all()]

    assert unused(loop) == []


def test_to_attr_prefetches_are_never_reported(data):
    def loop():
        return [a.name for a in Author.objects.prefetch_related(Prefetch("books", to_attr="book_list"))]

    assert unused(loop) == []


def test_off_where_findings_fail_until_a_threshold_is_set(data):
    def loop():
        return [b.title for b in Book.objects.select_related("author")]

    cm = nplusone.scope(mode="collect")
    cm._enforced = True  # as the pytest plugin and NPlusOneMixin do
    with cm as report:
        loop()
    assert report.findings == []
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"MODE": "raise", "UNUSED_EAGER_LOAD": 20}):
        with nplusone.scope() as report:  # 10 rows: below the threshold, not reported
            loop()
        assert report.findings == []
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"MODE": "raise", "UNUSED_EAGER_LOAD": 5}):
        with pytest.raises(nplusone.NPlusOneError, match="unused eager load"):
            with nplusone.scope():
                loop()


def test_outside_any_scope_nothing_is_tracked(data):
    from django_rustpg.nplusone import _eager

    [b.title for b in Book.objects.select_related("author")]
    assert _eager._active == 0
