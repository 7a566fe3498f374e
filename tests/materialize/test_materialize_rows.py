"""How a plan's objects are fetched (django_rustpg/materialize_rows.py): the cyclic collector
pauses while a batch is built and is left as it was found (errors included); a queryset's
full read without Python converters is one batch; with converters, objects still come
chunk by chunk as before. ``plain`` (Django's own path) is the control that the probes see
collections at all."""
import gc
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.db import models, transaction
from django.db.models import Value

from mat_app import models as m

ROWS = 300
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


class GcProbeField(models.CharField):
    """A converter that records whether the collector was enabled when it ran."""

    seen: list = []

    def from_db_value(self, value, expression, connection):
        GcProbeField.seen.append(gc.isenabled())
        return value


@pytest.fixture
def many_tags():
    """ROWS extra tags on both aliases (distinct names: the unique index would make the second
    transaction wait for the first), each in a transaction rolled back afterwards."""
    atomics = []
    for alias in ("default", "plain"):
        atomic = transaction.atomic(using=alias)
        atomic.__enter__()
        atomics.append(atomic)
        m.Tag.objects.using(alias).bulk_create(m.Tag(name=f"many-{alias}-{i:03}") for i in range(ROWS))
    yield
    for atomic in reversed(atomics):
        transaction.set_rollback(True, using=atomic.using)
        atomic.__exit__(None, None, None)


@pytest.fixture
def collections():
    """Counts collections that start, with a threshold that starts one every few objects."""
    starts = []

    def callback(phase, info):
        if phase == "start":
            starts.append(info["generation"])

    old = gc.get_threshold()
    gc.set_threshold(5)
    gc.callbacks.append(callback)
    try:
        yield starts
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*old)


def _tags(alias):
    return m.Tag.objects.using(alias).filter(name__startswith=f"many-{alias}-").order_by("id")


# Rows of (id, name) values are untracked dicts/tuples: only model instances are containers.
@pytest.mark.parametrize("shape", ["models"])
def test_full_read_is_one_pause(many_tags, collections, shape):
    def read(alias):
        qs = _tags(alias)
        qs = {"models": qs, "values": qs.values(), "values_list": qs.values_list("id", "name")}[shape]
        collections.clear()
        result = list(qs)
        assert len(result) == ROWS
        return len(collections)

    plain, native = read("plain"), read("default")
    # Django's own path: a collection every few objects; natively only those started by
    # compiling the query (the same on both paths) and one after the batch.
    assert plain > 2 * native, (plain, native)
    assert gc.isenabled()


def test_chunked_read_pauses_per_chunk(many_tags, collections):
    counts = {}
    for alias in ("plain", "default"):
        collections.clear()
        assert sum(1 for _ in _tags(alias).iterator(chunk_size=100)) == ROWS
        counts[alias] = len(collections)
    assert counts["plain"] > 2 * counts["default"], counts
    assert gc.isenabled()


@pytest.mark.parametrize("how", ["list", "iterator", "values"])
def test_converters_run_with_the_collector_paused_and_restored(how):
    GcProbeField.seen = []
    for alias, expect in (("default", False), ("plain", True)):
        GcProbeField.seen.clear()
        qs = m.Tag.objects.using(alias).annotate(probe=Value("x", output_field=GcProbeField()))
        if how == "list":
            list(qs)
        elif how == "iterator":
            list(qs.iterator(chunk_size=2))
        else:
            list(qs.values_list("probe", flat=True))
        assert GcProbeField.seen and set(GcProbeField.seen) == {expect}, alias
        assert gc.isenabled()


@pytest.mark.parametrize("how", ["list", "iterator"])
def test_a_disabled_collector_stays_disabled(how):
    GcProbeField.seen = []
    qs = m.Tag.objects.annotate(probe=Value("x", output_field=GcProbeField()))
    gc.disable()
    try:
        list(qs) if how == "list" else list(qs.iterator(chunk_size=2))
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert set(GcProbeField.seen) == {False}


@pytest.mark.parametrize("how", ["list", "iterator", "values"])
def test_collector_restored_after_a_converter_error(how):
    qs = m.Fragile.objects.using("default")
    with pytest.raises(ValueError, match="boom in from_db_value"):
        if how == "list":
            list(qs)
        elif how == "iterator":
            list(qs.iterator(chunk_size=1))
        else:
            list(qs.values_list("name", flat=True))
    assert gc.isenabled()


def test_abandoned_iterator_leaves_the_collector_enabled(many_tags):
    it = _tags("default").iterator(chunk_size=100)
    next(it)
    assert gc.isenabled()  # paused only inside a fetch, not between the caller's steps
    it.close()
    assert gc.isenabled()


def test_with_python_converters_objects_still_come_chunk_by_chunk(many_tags):
    """A converter's side effects interleave with the caller as before: the first object
    arrives after its chunk (100 rows) is converted, not after all ROWS."""
    from django.db.models.query import ModelIterable

    GcProbeField.seen = []
    qs = _tags("default").annotate(probe=Value("x", output_field=GcProbeField()))
    it = iter(ModelIterable(qs))
    next(it)
    assert len(GcProbeField.seen) == 100
    assert len(list(it)) == ROWS - 1
    assert len(GcProbeField.seen) == ROWS


def test_without_converters_a_full_read_builds_every_object_first(many_tags, collections):
    """The same read without converters is one batch: a collection can only start once all
    ROWS objects exist (no collection while the first next() builds them)."""
    from django.db.models.query import ModelIterable

    it = iter(ModelIterable(_tags("default")))
    first = next(it)
    collections.clear()
    rest = list(it)
    assert len(collections) <= 1  # nothing left to build
    assert [t.name for t in [first, *rest]] == [f"many-default-{i:03}" for i in range(ROWS)]


@pytest.fixture
def shelf():
    """20 authors with 5 books each and tags, on both aliases, rolled back afterwards. A
    prefetch of books__tags makes a cyclic graph: a book's author is the prefetching author,
    and each book's tag queryset holds the book as its hint."""
    atomics = []
    for alias in ("default", "plain"):
        atomic = transaction.atomic(using=alias)
        atomic.__enter__()
        atomics.append(atomic)
        tags = m.Tag.objects.using(alias).bulk_create(m.Tag(name=f"shelf-{alias}-{i}") for i in range(5))
        for a in range(20):
            author = m.Author.objects.using(alias).create(name=f"shelf-{alias}-{a:02}")
            for b in range(5):
                book = m.Book.objects.using(alias).create(
                    title=f"shelf-{a}-{b}", author=author, price=Decimal("1.00"), created=CREATED
                )
                book.tags.set(tags[: 1 + b % 5])
    yield
    for atomic in reversed(atomics):
        transaction.set_rollback(True, using=atomic.using)
        atomic.__exit__(None, None, None)


def test_prefetch_garbage_is_freed_as_often_as_on_djangos_path(shelf):
    """Prefetched graphs are garbage only the cyclic collector frees. On our alias they must
    not pile up for one late collection that frees many at once (stop 28 paused the collector
    during prefetch: ten graphs waited, then one collection took 1.1-1.7 s): the most graphs
    alive at once in a loop of prefetches stays within one graph of Django's own path."""

    def books_alive():
        return sum(1 for o in gc.get_objects() if type(o) is m.Book)

    # Scaled to this small graph (a few thousand containers): young thresholds that make
    # Django's own path run many collections per prefetch, and the process's other objects
    # frozen, so that a graph is large next to the rest of the heap, as prefetch_200's is.
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50, 10, 10)
    try:
        most_waiting = {alias: _most_graphs_waiting(alias, books_alive) for alias in ("plain", "default")}
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
    assert most_waiting["default"] <= most_waiting["plain"] + 1, most_waiting


def _most_graphs_waiting(alias, books_alive, per_graph=100):
    """The most prefetched graphs (of per_graph books) alive at once over 40 prefetches."""
    gc.collect()
    baseline, most = books_alive(), 0
    for _ in range(40):
        list(m.Author.objects.using(alias).filter(name__startswith=f"shelf-{alias}-").prefetch_related("books", "books__tags"))
        most = max(most, books_alive() - baseline)
    gc.collect()
    assert books_alive() == baseline
    return most / per_graph
