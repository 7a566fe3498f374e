"""Django 6.1 fetch modes (``QuerySet.fetch_mode``) on the native path.

Each shape runs natively (alias ``default``) and on Django's path (alias ``plain``): the
instances must be identical, ``_state.fetch_mode`` and ``_state.peers`` included
(mat_compare), and lazy loads afterwards must run the same number of queries or raise the
same exception.
"""
import pickle
import warnings

import pytest
from django.db import connections
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext

if not hasattr(QuerySet, "fetch_mode"):
    pytest.skip("fetch modes are Django 6.1+", allow_module_level=True)

from django.core.exceptions import FieldFetchBlocked  # noqa: E402
from django.db.models import FETCH_ONE, FETCH_PEERS, FETCH_RAISE  # noqa: E402

from mat_app import models as m  # noqa: E402
from mat_helpers import compare  # noqa: E402

MODES = {"one": FETCH_ONE, "peers": FETCH_PEERS, "raise": FETCH_RAISE}
# Plans the native run makes: peers are tracked by Django's populators over natively
# decoded rows ("tuples"); the other modes build the instances natively ("models").
KINDS = {"one": {"models"}, "peers": {"tuples"}, "raise": {"models"}}

SHAPES = {
    "plain": lambda qs: qs(m.Book),
    "select_related": lambda qs: qs(m.Book).select_related("author__publisher", "editor"),
    "only": lambda qs: qs(m.Book).only("title", "author"),
    "defer": lambda qs: qs(m.Book).defer("metadata", "price"),
    "mti": lambda qs: qs(m.ItalianRestaurant).select_related("chef"),
    "mti_parent": lambda qs: qs(m.Place).select_related("restaurant__italianrestaurant"),
    "proxy": lambda qs: qs(m.ProxyBook).select_related("author"),
    "annotated": lambda qs: qs(m.Author).select_related("publisher").order_by("id"),
    "iterator": lambda qs: list(qs(m.Book).select_related("author").iterator(chunk_size=3)),
}
# Models with their own from_db: Django's own iterable runs (no Plan), old and new signature.
CUSTOM_FROM_DB = {
    "from_db_old": lambda qs: qs(m.Snapshot),
    "from_db_kw": lambda qs: qs(m.SnapshotKw).select_related("snap"),
}
SHAPES["composite_pk"] = lambda qs: qs(m.OrderLine).select_related("book")


def _qs(alias, mode):
    return lambda model: model.objects.using(alias).fetch_mode(mode)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shape(plan_spy, shape, mode):
    compare(plan_spy, lambda a: SHAPES[shape](_qs(a, MODES[mode])), KINDS[mode], what=f"{shape}/{mode}")


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("shape", sorted(CUSTOM_FROM_DB))
def test_custom_from_db(plan_spy, shape, mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Snapshot.from_db's old signature is deprecated in 6.1
        native, _ = compare(plan_spy, lambda a: CUSTOM_FROM_DB[shape](_qs(a, MODES[mode])), set(), what=f"{shape}/{mode}")
    assert all(hasattr(obj, "_loaded_values") for obj in native)


def test_default_mode_is_stored_on_every_instance(plan_spy):
    books = list(m.Book.objects.using("default").select_related("author"))
    assert books and all(vars(b._state)["fetch_mode"] is FETCH_ONE for b in books)
    assert all(vars(b.author._state)["fetch_mode"] is FETCH_ONE for b in books if b.author)
    assert plan_spy.kinds("default") == {"models"}


def _lazy(alias, build, touch):
    """Queries run (or the exception raised) by touch() on every instance build() gives."""
    objs = build(alias)
    with CaptureQueriesContext(connections[alias]) as ctx:
        try:
            for obj in objs:
                touch(obj)
        except FieldFetchBlocked as e:
            return ("raised", str(e), len(ctx))
    return ("ok", len(ctx))


LAZY = {
    "peers_fk": (lambda a: list(m.Book.objects.using(a).fetch_mode(FETCH_PEERS)), lambda b: b.author),
    "peers_select_related": (
        lambda a: list(m.Book.objects.using(a).fetch_mode(FETCH_PEERS).select_related("author")),
        lambda b: b.author and b.author.publisher,
    ),
    "peers_deferred": (lambda a: list(m.Book.objects.using(a).fetch_mode(FETCH_PEERS).only("title")), lambda b: b.price),
    "peers_iterator": (
        lambda a: list(m.Book.objects.using(a).fetch_mode(FETCH_PEERS).iterator(chunk_size=3)),
        lambda b: b.author,
    ),
    "peers_mti": (
        lambda a: list(m.ItalianRestaurant.objects.using(a).fetch_mode(FETCH_PEERS)),
        lambda r: r.chef,
    ),
    "peers_composite": (lambda a: list(m.OrderLine.objects.using(a).fetch_mode(FETCH_PEERS)), lambda o: o.book),
    "raise_deferred": (lambda a: list(m.Book.objects.using(a).fetch_mode(FETCH_RAISE).only("title")), lambda b: b.price),
    "raise_fk": (lambda a: list(m.Book.objects.using(a).fetch_mode(FETCH_RAISE)), lambda b: b.author),
    "raise_select_related_child": (
        lambda a: list(m.Book.objects.using(a).fetch_mode(FETCH_RAISE).select_related("author")),
        lambda b: b.author and b.author.publisher,
    ),
    "one_fk": (lambda a: list(m.Book.objects.using(a)), lambda b: b.author),
    # Django 6.1: a known related object is not looked up through a deferred FK column.
    "known_related_deferred_fk": (
        lambda a: list(m.Author.objects.using(a).get(name="Ann").books.only("pk")),
        lambda b: b.pk,
    ),
    "known_related_reverse": (
        lambda a: [b for au in m.Author.objects.using(a).fetch_mode(FETCH_PEERS) for b in au.books.all()],
        lambda b: b.author,
    ),
}


@pytest.mark.parametrize("case", sorted(LAZY))
def test_lazy_loads_match(plan_spy, case):
    build, touch = LAZY[case]
    native = _lazy("default", build, touch)
    django = _lazy("plain", build, touch)
    assert native == django
    if case.startswith("raise"):
        assert native[0] == "raised", "FETCH_RAISE must block the fetch"


def test_peers_make_two_queries(plan_spy):
    with CaptureQueriesContext(connections["default"]) as ctx:
        books = list(m.Book.objects.using("default").fetch_mode(FETCH_PEERS))
        [b.author for b in books]
    assert len(books) > 3 and len(ctx) == 2


def test_known_related_with_deferred_fk_runs_no_query_per_row(plan_spy):
    ann = m.Author.objects.using("default").get(name="Ann")
    with CaptureQueriesContext(connections["default"]) as ctx:
        books = list(ann.books.only("pk"))
    assert books and len(ctx) == 1
    assert all("author" not in b._state.fields_cache for b in books)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_pickle_and_refresh_keep_the_mode(plan_spy, mode):
    for alias in ("default", "plain"):
        book = m.Book.objects.using(alias).fetch_mode(MODES[mode]).select_related("author").get(title="Book 02")
        copy = pickle.loads(pickle.dumps(book))
        assert copy._state.fetch_mode is MODES[mode], alias
        assert copy.author._state.fetch_mode is MODES[mode], alias
        assert "peers" not in vars(copy._state)
        book.refresh_from_db()
        assert book._state.fetch_mode is MODES[mode], alias


class _EqualModes(FETCH_ONE.__class__):
    """Off the modelled ground: a user's fetch mode that defines ``__eq__`` (so it is
    unhashable) and calls every instance of its class equal. Django never hashes a mode."""

    __slots__ = ()

    def __eq__(self, other):
        return type(other) is type(self)


def test_an_unhashable_fetch_mode_is_served_and_kept_by_identity(plan_spy):
    first, second = _EqualModes(), _EqualModes()
    for mode in (first, second, first):
        native, _ = compare(plan_spy, lambda a: list(m.Publisher.objects.using(a).fetch_mode(mode)), {"models"})
        assert native and all(vars(p._state)["fetch_mode"] is mode for p in native)
