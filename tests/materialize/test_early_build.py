"""Large reads built while the result arrives (``Cursor.set_plan_hook``): the objects are
the ones Django builds, and errors mid-result, execute wrappers, slices, chunked reads and
a failing plan decision behave as on Django's path."""
import datetime
import decimal
import uuid

import pytest
from django.db import DataError, connections, transaction
from django.db.models import F, Value
from django.test.utils import CaptureQueriesContext

from django_rustpg import _native, materialize
from mat_app import models as m
from mat_helpers import compare

# Three early batches and a partial fourth: every batch boundary is crossed.
COPIES = 3 * _native.EARLY_BATCH + 123


@pytest.fixture(scope="module")
def many_rows():
    """COPIES rows of AllTypes, cycling through the session's rows (every field type, NULLs,
    edge values), written through the stock backend; removed afterwards."""
    # (Django's DecimalField does not save the NaN the session wrote with raw SQL.)
    source = [r for r in m.AllTypes.objects.using("stock").order_by("id") if r.dec is None or r.dec.is_finite()]
    copies = []
    for i in range(COPIES):
        row = source[i % len(source)]
        row.pk = None
        row.label = f"copy-{i}"
        copies.append(row)
    made = m.AllTypes.objects.using("stock").bulk_create(copies)
    ids = [r.pk for r in made]
    yield ids
    m.AllTypes.objects.using("stock").filter(pk__in=ids).delete()


@pytest.fixture
def early_seen(monkeypatch):
    """How many objects each native read had built before its first fetch."""
    seen = []
    real_rows = materialize._rows

    def spy_rows(cursor_wrapper, plan, iterable, converters):
        seen.append(cursor_wrapper.cursor.early_rows)
        return real_rows(cursor_wrapper, plan, iterable, converters)

    monkeypatch.setattr(materialize, "_rows", spy_rows)
    return seen


def _copies(alias):
    return m.AllTypes.objects.using(alias).filter(label__startswith="copy-")


# Python converters (MoneyField, a JSONField with its own decoder, an array of JSON) are left
# out: they run between objects in Django, so those reads are fetched in chunks, never
# built early.
PLAIN = ("tagged", "money", "jsons")
SHAPES = {
    "models": (lambda a: _copies(a).defer(*PLAIN), {"models"}),
    "values": (lambda a: _copies(a).values("id", "label", "big", "dec", "moment", "data", "ints", "store", "momentrange"), {"dicts"}),
    "values_list": (lambda a: _copies(a).values_list("id", "fl", "day", "clock", "span", "uid", "blob", "ip"), {"tuples"}),
    "flat": (lambda a: _copies(a).values_list("moment", flat=True), {"flat"}),
    "annotated": (lambda a: _copies(a).defer(*PLAIN).annotate(k=Value("x"), again=F("moment")), {"models"}),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_built_early_and_the_same_as_django(plan_spy, many_rows, early_seen, shape):
    build, kinds = SHAPES[shape]
    native, _ = compare(plan_spy, build, kinds, what=shape)
    assert len(native) == COPIES
    # Built while arriving: every whole batch (the partial last one is built by fetch_plan).
    assert early_seen[0] == 3 * _native.EARLY_BATCH


def test_python_converters_are_not_built_early(plan_spy, many_rows, early_seen):
    compare(plan_spy, lambda a: _copies(a), {"models"}, what="with converters")
    assert early_seen == [0]


def test_small_slice_and_chunked_reads_are_not_built_early(plan_spy, many_rows, early_seen):
    compare(plan_spy, lambda a: _copies(a).defer(*PLAIN)[: _native.EARLY_BATCH - 1], {"models"})
    compare(plan_spy, lambda a: list(_copies(a).defer(*PLAIN).iterator(chunk_size=500)), {"models"})
    assert early_seen == [0, 0]
    compare(plan_spy, lambda a: _copies(a).defer(*PLAIN)[5 : 5 + _native.EARLY_BATCH], {"models"})
    assert early_seen[-1] == _native.EARLY_BATCH


def test_iterator_without_server_side_cursors(plan_spy, many_rows, early_seen):
    """iterator() on a client-side cursor (DISABLE_SERVER_SIDE_CURSORS, as behind
    PgBouncer): chunks are fetched by plan from a result nothing was built from early."""
    saved = {a: connections[a].settings_dict.get("DISABLE_SERVER_SIDE_CURSORS") for a in ("default", "plain")}
    try:
        for alias in saved:
            connections[alias].settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
        native, _ = compare(plan_spy, lambda a: list(_copies(a).defer(*PLAIN).iterator(chunk_size=700)), {"models"})
        assert len(native) == COPIES
        compare(plan_spy, lambda a: list(_copies(a).values_list("id", "label").iterator()), {"tuples"})
    finally:
        for alias, value in saved.items():
            connections[alias].settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = value
    assert early_seen == [0, 0]


@pytest.mark.parametrize("in_atomic", [False, True])
def test_error_after_early_batches_is_django_error(many_rows, in_atomic):
    """A division by zero at the 3,000th row: the server fails after two batches were built."""
    pivot = sorted(many_rows)[3000]
    messages = {}
    for alias in ("default", "plain"):
        qs = _copies(alias).order_by("id").values_list("id", flat=True).annotate(q=1 / (F("id") - pivot))
        with pytest.raises(DataError, match="division by zero") as e:
            if in_atomic:
                with transaction.atomic(using=alias):
                    list(qs)
            else:
                list(qs)
        messages[alias] = str(e.value).splitlines()[0]
        # The connection is usable, and a transaction after it is clean.
        with transaction.atomic(using=alias):
            assert _copies(alias).count() == COPIES
    assert messages["default"] == messages["plain"]


def test_execute_wrapper_running_its_own_query_first(plan_spy, many_rows, early_seen):
    """The plan belongs to the queryset's cursor: a wrapper's own statement, run on another
    cursor before it, gets plain rows."""
    seen = {}

    def wrapper(execute, sql, params, many, context):
        alias = context["connection"].alias
        if alias not in seen:  # (the wrapper wraps its own statement too)
            seen[alias] = None
            with context["connection"].cursor() as c:
                c.execute("SELECT generate_series(1, %s)", [_native.EARLY_BATCH * 2])
                seen[alias] = c.fetchall()
        return execute(sql, params, many, context)

    with connections["default"].execute_wrapper(wrapper), connections["plain"].execute_wrapper(wrapper):
        compare(plan_spy, lambda a: _copies(a).defer(*PLAIN), {"models"})
    assert seen["default"] == seen["plain"] == [(i,) for i in range(1, _native.EARLY_BATCH * 2 + 1)]
    assert early_seen == [3 * _native.EARLY_BATCH]


def _as_in_a_new_process(alias):
    """The alias's connection closed and Django's version check not run yet, as in a new
    process: its first connect then reads the server version on a cursor of its own."""
    from django.db.backends.base import base as base_backend

    connection = connections[alias]
    connection.close()
    connection.__dict__.pop("pg_version", None)
    base_backend.RAN_DB_VERSION_CHECK.discard(alias)


def test_large_read_first_in_a_new_process(plan_spy, many_rows, early_seen):
    """A worker's first request reads a large queryset: connecting makes Django's own cursor
    first (the version check). The read still gets its plan, and its rows."""

    def first_read(alias):
        _as_in_a_new_process(alias)
        return _copies(alias).defer(*PLAIN)

    compare(plan_spy, first_read, {"models"})
    assert early_seen == [3 * _native.EARLY_BATCH]
    compare(plan_spy, lambda a: (_as_in_a_new_process(a), _copies(a).values_list("id", "label"))[1], {"tuples"})


def test_connection_created_receiver_running_its_own_query(plan_spy, many_rows, early_seen):
    """A connection_created receiver runs a large statement on its own cursor while the read
    connects: that cursor gets plain rows, and the read its plan."""
    from django.db.backends.signals import connection_created

    seen = {}

    def receiver(sender, connection, **kwargs):
        if connection.alias in ("default", "plain"):
            with connection.cursor() as c:
                c.execute("SELECT generate_series(1, %s)", [_native.EARLY_BATCH * 2])
                seen[connection.alias] = c.fetchall()

    def first_read(alias):
        connections[alias].close()
        return _copies(alias).defer(*PLAIN)

    connection_created.connect(receiver)
    try:
        compare(plan_spy, first_read, {"models"})
    finally:
        connection_created.disconnect(receiver)
    assert seen["default"] == seen["plain"] == [(i,) for i in range(1, _native.EARLY_BATCH * 2 + 1)]
    assert early_seen == [3 * _native.EARLY_BATCH]


@pytest.mark.parametrize("shape", ["large", "small"])
def test_reads_leave_no_reference_cycles(many_rows, shape):
    """As Django 6.1's select_related memory-leak test asks of every backend: a read leaves
    nothing for the cyclic collector (the plan hook and its closures included)."""
    import gc

    qs = _copies("default").defer(*PLAIN)
    read = (lambda: list(qs.all())) if shape == "large" else (lambda: list(qs.all()[:3]))
    read()  # caches (plans, converters) filled outside the measured read
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert len(read()) > 0
        gc.collect()
        leaked = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert leaked == []


def test_failing_plan_decision_raises_after_the_statement(monkeypatch, many_rows):
    """The plan is decided inside execute; an error there surfaces once the statement ran,
    as it did when the plan was decided after execute."""

    def broken(*args):
        raise RuntimeError("plan decision failed")

    monkeypatch.setattr(materialize, "_model_plan", broken)
    with CaptureQueriesContext(connections["default"]) as ctx:
        with pytest.raises(RuntimeError, match="plan decision failed"):
            list(_copies("default").defer(*PLAIN))
    assert len(ctx.captured_queries) == 1
    assert connections["default"]._rustpg_plan_hook is None
    monkeypatch.undo()
    assert _copies("default").defer(*PLAIN).count() == COPIES


# Values no reference cycle can pass through (Python 3.13 tracks Decimals, and every Python
# tracks UUIDs, only because their classes are heap types; the decoders untrack them).
_IMMUTABLE = (int, bool, float, str, bytes, type(None), decimal.Decimal, uuid.UUID, datetime.date, datetime.datetime,
              datetime.time, datetime.timedelta)


@pytest.mark.parametrize("columns, tracked", [(("id", "fl", "day", "clock", "span", "big", "moment", "label"), False),
                                              (("id", "uid", "ip", "ints"), True),
                                              (("id", "uid", "decs"), True),
                                              (("id", "dec"), False),
                                              (("id", "uid", "dec", "moment"), False)])
def test_tuples_tracked_by_the_collector_only_where_a_cycle_could_pass(many_rows, columns, tracked):
    """Rows of plain values are untracked as they are built (CPython untracks them on its
    first collection), and so are rows whose only collected values are Decimals and UUIDs;
    rows holding a container (a list, a dict) stay tracked."""
    import gc

    gc.disable()  # no collection may untrack them before they are looked at
    try:
        native = list(_copies("default").order_by("id").values_list(*columns))
        native_tracked = [gc.is_tracked(t) for t in native]
        leaves = [v for row in native for v in row if isinstance(v, (decimal.Decimal, uuid.UUID))]
        assert leaves or "uid" not in columns
        assert not any(gc.is_tracked(v) for v in leaves)
    finally:
        gc.enable()
    django = list(_copies("plain").order_by("id").values_list(*columns))
    gc.collect()
    assert native == django
    for row, row_tracked, django_row in zip(native, native_tracked, django):
        if not row_tracked:
            assert all(type(v) in _IMMUTABLE or (type(v) is tuple and not gc.is_tracked(v)) for v in row), row
        if not gc.is_tracked(django_row):  # what CPython untracks, we do too
            assert not row_tracked, row
    assert any(native_tracked) is tracked


@pytest.mark.parametrize("columns, tracked", [(("id", "uid", "dec", "moment", "label"), False), (("id", "uid", "ints"), True)])
def test_values_dicts_tracked_only_where_a_cycle_could_pass(many_rows, columns, tracked):
    """A values() dict of immutable values (Decimals and UUIDs too) is untracked as built,
    and tracks itself again, as any dict does, once a container is stored in it."""
    import gc

    gc.disable()
    try:
        native = list(_copies("default").order_by("id").values(*columns))
        native_tracked = [gc.is_tracked(d) for d in native]
    finally:
        gc.enable()
    assert native == list(_copies("plain").order_by("id").values(*columns))
    assert any(native_tracked) is tracked
    for row, row_tracked in zip(native, native_tracked):
        assert row_tracked is not all(type(v) in _IMMUTABLE for v in row.values()), row
    row = native[0]
    row["again"] = [row]  # a cycle through the dict: it is tracked, and collected
    assert gc.is_tracked(row)
    del native, row
    assert gc.collect() >= 2
