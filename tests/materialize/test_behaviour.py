"""Behaviour around the rows: the comparison helper itself, the stock alias, init signals,
known related objects, deferred loading, server-side cursors, time zones, errors
mid-iteration, and what one can do with a natively built instance afterwards."""
import copy
import datetime
import decimal
import pickle
import zoneinfo

import pytest
from django.db import connections, transaction
from django.db.models import Count, F
from django.db.models.functions import ExtractHour, TruncDate, TruncHour
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext, override_settings

from mat_app import models as m
from mat_compare import assert_same_objects, differences
from mat_helpers import compare, django_iterables, evaluate

D = decimal.Decimal
UTC = datetime.timezone.utc


# --------------------------------------------------------------------------- the helper can fail
class TestComparisonHelper:
    def test_int_vs_float(self):
        with pytest.raises(AssertionError, match=r"\[0\]\['x'\]: type int != float"):
            assert_same_objects([{"x": 1}], [{"x": 1.0}])

    def test_bool_vs_int(self):
        with pytest.raises(AssertionError, match="type bool != int"):
            assert_same_objects((True,), (1,))

    def test_missing_and_extra_keys(self):
        with pytest.raises(AssertionError) as e:
            assert_same_objects({"a": 1, "c": 3}, {"a": 1, "b": 2})
        assert "keys missing on the native side: ['b']" in str(e.value)
        assert "keys only on the native side: ['c']" in str(e.value)

    def test_key_order(self):
        with pytest.raises(AssertionError, match="key order"):
            assert_same_objects({"a": 1, "b": 2}, {"b": 2, "a": 1})

    def test_decimal_exponent(self):
        with pytest.raises(AssertionError, match="Decimal '1.10' != '1.1'"):
            assert_same_objects(D("1.10"), D("1.1"))

    def test_float_signed_zero_and_nan(self):
        assert differences(float("nan"), float("nan")) == []
        assert differences(-0.0, 0.0)

    def test_datetime_tzinfo(self):
        a = datetime.datetime(2020, 1, 1, 12, tzinfo=UTC)
        b = a.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
        assert a == b
        assert differences(a, b)
        assert differences(a, a.replace(tzinfo=None))
        assert differences(a, a.replace(tzinfo=zoneinfo.ZoneInfo("UTC")))  # same offset, other class

    def test_length(self):
        with pytest.raises(AssertionError, match="length 2 != 1"):
            assert_same_objects([1, 2], [1])

    def test_model_instances(self):
        a = m.Author.objects.using("default").get(name="Ann")
        b = m.Author.objects.using("plain").get(name="Ann")
        assert_same_objects(a, b, db_map={"plain": "default"})
        with pytest.raises(AssertionError, match=r"_state.db: 'default' != 'plain'"):
            assert_same_objects(a, b)
        b.rating = float(b.rating)
        with pytest.raises(AssertionError, match=r"^.*\n  \.rating: type Decimal != float"):
            assert_same_objects(a, b, db_map={"plain": "default"})

    def test_deferred_fields_and_fields_cache(self):
        a = m.Book.objects.using("default").select_related("author").only("title", "author__name").get(title="Book 01")
        b = m.Book.objects.using("plain").select_related("author").get(title="Book 01")
        diffs = differences(a, b, db_map={"plain": "default"})
        text = "\n".join(diffs)
        assert "get_deferred_fields()" in text
        assert "fields_cache['author']" in text
        del b._state.fields_cache["author"]
        assert any(
            d.startswith("._state.fields_cache: keys only on the native side: ['author']")
            for d in differences(a, b, db_map={"plain": "default"})
        )

    def test_adding_flag(self):
        a = m.Tag.objects.using("default").first()
        b = m.Tag.objects.using("default").first()
        b._state.adding = True
        assert any("adding" in d for d in differences(a, b))

    def test_cycles_terminate(self):
        a = m.Author.objects.using("default").select_related("profile").get(name="Ann")
        b = m.Author.objects.using("plain").select_related("profile").get(name="Ann")
        assert a.profile._state.fields_cache["author"] is a  # the cycle exists
        assert_same_objects(a, b, db_map={"plain": "default"})

    def test_custom_objects_by_dict(self):
        assert differences(m.Money(D("1.0"), "EUR"), m.Money(D("1.00"), "EUR"))

    def test_end_to_end_detects_a_broken_converter(self, plan_spy, monkeypatch):
        """A native path that forgets the converters must make compare() fail."""
        from django_rustpg import materialize

        real = materialize._converters
        monkeypatch.setattr(materialize, "_converters", lambda c, conn: [x for x in real(c, conn) if False])
        with pytest.raises(AssertionError, match="differ"):
            compare(plan_spy, lambda a: m.AllTypes.objects.using(a).values("money", "data"), {"dicts"})

    def test_end_to_end_detects_a_missing_fallback(self, plan_spy, monkeypatch):
        """If the plain-model check let Snapshot (custom from_db) through, compare() fails."""
        from django_rustpg import materialize

        monkeypatch.setattr(materialize, "_model_is_plain", lambda cls, attnames: True)
        with pytest.raises(AssertionError, match="_loaded_values"):
            compare(plan_spy, lambda a: m.Snapshot.objects.using(a), None)

    def test_vacuous_comparison_rejected(self, plan_spy):
        with pytest.raises(AssertionError, match="vacuous"):
            compare(plan_spy, lambda a: m.Book.objects.using(a).filter(pk=-1), {"models"})


# --------------------------------------------------------------------------- stock backend untouched
STOCK_SHAPES = {
    "models": lambda a: m.Book.objects.using(a),
    "select_related": lambda a: m.Book.objects.using(a).select_related("author__publisher__country"),
    "annotate": lambda a: m.Author.objects.using(a).annotate(n=Count("books")),
    "values": lambda a: m.AllTypes.objects.using(a).values(),
    "values_list": lambda a: m.Book.objects.using(a).values_list("title", "price"),
    "flat": lambda a: m.Book.objects.using(a).values_list("created", flat=True),
    "iterator": lambda a: list(m.Book.objects.using(a).iterator(chunk_size=2)),
    "prefetch": lambda a: m.Author.objects.using(a).prefetch_related("books__tags"),
    "known_related": lambda a: m.Author.objects.using(a).get(name="Ann").books.all(),
}


@pytest.mark.parametrize("shape", sorted(STOCK_SHAPES))
def test_stock_alias_never_native(plan_spy, shape):
    from django_rustpg import materialize

    assert not materialize._is_native_connection(connections["stock"])
    assert not materialize._is_native_connection(connections["plain"])
    assert materialize._is_native_connection(connections["default"])
    stock = evaluate(STOCK_SHAPES[shape]("stock"))
    assert stock
    assert plan_spy.calls == [] and plan_spy.executed == [], (plan_spy.calls, plan_spy.executed)
    evaluate(STOCK_SHAPES[shape]("default"))  # the spy does see the native path
    assert plan_spy.calls and set(plan_spy.executed) == {"default"}


def test_stock_alias_never_reaches_fetch_plan(monkeypatch):
    """Even with the materializer's decision forced on, nothing native runs for 'stock':
    its cursors are psycopg's and have no fetch_plan; the decision keys off the wrapper."""
    from django_rustpg import materialize

    seen = []
    real = materialize._is_native_connection
    monkeypatch.setattr(materialize, "_is_native_connection", lambda c: seen.append(c.alias) or real(c))
    list(m.Book.objects.using("stock").select_related("author"))
    assert seen == ["stock"]


# --------------------------------------------------------------------------- init signals
class TestInitSignals:
    def run_both(self, plan_spy, counting, build, expect):
        connect, snap = counting
        snap()
        native, django = None, None
        plan_spy.clear()
        native = evaluate(build("default"))
        kinds = plan_spy.kinds("default")
        native_counts = snap()
        django = evaluate(build("plain"))
        django_counts = snap()
        assert_same_objects(native, django, db_map={"plain": "default"})
        assert native_counts == django_counts, (native_counts, django_counts)
        if expect is not None:
            assert kinds == expect, kinds
        return native_counts

    def test_receiver_for_model(self, plan_spy, counting_signals):
        counting_signals[0](m.Book)
        counts = self.run_both(plan_spy, counting_signals, lambda a: m.Book.objects.using(a), set())
        assert counts["post_init"] == {"Book": 12} and counts["pre_init"] == {"Book": 12}

    def test_receiver_for_related_model(self, plan_spy, counting_signals):
        counting_signals[0](m.Author)
        counts = self.run_both(
            plan_spy, counting_signals, lambda a: m.Book.objects.using(a).select_related("author__publisher"), {"tuples"}
        )
        assert counts["post_init"]["Author"] == 10

    def test_receiver_for_any_sender(self, plan_spy, counting_signals):
        counting_signals[0](None)
        counts = self.run_both(
            plan_spy, counting_signals, lambda a: m.Restaurant.objects.using(a).select_related("chef__publisher"), set()
        )
        assert counts["post_init"] == {"Restaurant": 4, "Author": 2, "Publisher": 2}

    def test_receiver_for_other_model_keeps_native(self, plan_spy, counting_signals):
        counting_signals[0](m.Tag)
        counts = self.run_both(plan_spy, counting_signals, lambda a: m.Book.objects.using(a).select_related("author"), {"models"})
        assert counts == {"pre_init": {}, "post_init": {}}

    def test_receiver_for_proxy_and_mti(self, plan_spy, counting_signals):
        counting_signals[0](m.ProxyBook)
        counting_signals[0](m.ItalianRestaurant)
        self.run_both(plan_spy, counting_signals, lambda a: m.ProxyBook.objects.using(a), set())
        self.run_both(plan_spy, counting_signals, lambda a: m.Book.objects.using(a), {"models"})
        self.run_both(
            plan_spy, counting_signals, lambda a: m.Place.objects.using(a).select_related("restaurant__italianrestaurant"),
            {"tuples"},
        )

    def test_receiver_connected_after_native_use(self, plan_spy, counting_signals):
        self.run_both(plan_spy, counting_signals, lambda a: m.Book.objects.using(a).only("title"), {"models"})
        counting_signals[0](m.Book)
        counts = self.run_both(plan_spy, counting_signals, lambda a: m.Book.objects.using(a).only("title"), set())
        assert counts["post_init"] == {"Book": 12}

    def test_model_receiver_values(self):
        native = list(m.Tracked.objects.using("default").select_related("owner"))
        assert native[0]._initial == {"name": "tracked0", "count": 0}


# --------------------------------------------------------------------------- known related objects
def test_known_related_objects_are_the_same_instances(plan_spy):
    for alias in ("default", "plain"):
        ann = m.Author.objects.using(alias).get(name="Ann")
        books = list(ann.books.all())
        assert books and all(b._state.fields_cache["author"] is ann for b in books), alias
        # select_related wins over the known object (Django: "avoid overwriting")
        books = list(ann.books.select_related("author"))
        assert all(b.author is not ann and b.author.pk == ann.pk for b in books), alias
    plan_spy.clear()
    compare(plan_spy, lambda a: m.Author.objects.using(a).get(name="Ann").books.select_related("author"), {"models"})


def test_null_joins_cache_none():
    for alias in ("default", "plain"):
        rows = list(m.Book.objects.using(alias).select_related("author__publisher__country").order_by("id"))
        no_author = [b for b in rows if b.author_id is None]
        assert no_author and all(b._state.fields_cache == {"author": None} for b in no_author)
        no_pub = [b for b in rows if b.author_id and b.author.publisher_id is None]
        assert no_pub and all(b.author._state.fields_cache == {"publisher": None} for b in no_pub)
        no_country = [b for b in rows if b.author_id and b.author.publisher_id and b.author.publisher.country_id is None]
        assert no_country and all(b.author.publisher._state.fields_cache == {"country": None} for b in no_country)
        with CaptureQueriesContext(connections[alias]) as ctx:
            [(b.author, b.author and b.author.publisher) for b in rows]
        assert len(ctx) == 0


# --------------------------------------------------------------------------- deferred loading
@pytest.mark.parametrize("alias", ["default", "plain"])
def test_deferred_field_loads_from_same_alias(alias):
    book = m.Book.objects.using(alias).only("title").get(title="Book 04")
    assert book.get_deferred_fields() == {f.attname for f in m.Book._meta.concrete_fields} - {"id", "title"}
    with CaptureQueriesContext(connections[alias]) as ctx:
        assert book.metadata == 1.5
        price = book.price
    assert len(ctx) == 2  # one query per deferred field accessed
    assert type(price) is D
    assert "metadata" not in book.get_deferred_fields()


def test_deferred_then_loaded_compare(plan_spy):
    def build(a):
        rows = list(m.Book.objects.using(a).select_related("author").only("title", "author__name"))
        for b in rows:
            b.price, b.author and b.author.rating
        return rows

    compare(plan_spy, build, {"models"})


def test_refresh_from_db_native(plan_spy):
    def build(a):
        b = m.Book.objects.using(a).get(title="Book 02")
        b.title = "changed in memory"
        b.refresh_from_db(fields=["title", "metadata"])
        return b

    compare(plan_spy, build, {"models"})


# --------------------------------------------------------------------------- server-side cursors
def test_iterator_uses_a_server_side_cursor(plan_spy, monkeypatch):
    conn = connections["default"]
    made = []
    real = conn.chunked_cursor

    def spy():
        c = real()
        made.append(c)
        return c

    monkeypatch.setattr(conn, "chunked_cursor", spy)
    rows = list(m.Book.objects.using("default").select_related("author").iterator(chunk_size=4))
    assert len(rows) == 12 and len(made) == 1
    assert made[0].cursor.name, "not a named (server-side) cursor"
    assert plan_spy.kinds() == {"models"}


def _interleave(alias):
    """Two open server-side cursors and ordinary queries in between, on one connection."""
    a = m.Book.objects.using(alias).select_related("author").iterator(chunk_size=2)
    b = m.Author.objects.using(alias).values_list("name", flat=True).iterator(chunk_size=1)
    out = []
    for book, name in zip(a, b):
        out.append((book.title, name, book.editor and book.editor.name, m.Tag.objects.using(alias).count()))
    a.close()
    b.close()
    return out


def test_interleaved_iterators_same_result():
    native = _interleave("default")
    assert len(native) == 4
    assert native == _interleave("plain")


@pytest.mark.parametrize("chunk", [1, 5, 100])
def test_iterator_early_break_then_query(chunk):
    it = m.Book.objects.using("default").iterator(chunk_size=chunk)
    first = next(it)
    it.close()
    assert first.title == "Book 00"
    assert m.Book.objects.using("default").count() == 12
    assert [b.title for b in m.Book.objects.using("default").iterator(chunk_size=chunk)][:2] == ["Book 00", "Book 01"]


@pytest.mark.parametrize("chunk", [1, 3, 2000])
def test_iterator_in_transaction(plan_spy, chunk):
    def build(a):
        with transaction.atomic(using=a):
            return list(m.Book.objects.using(a).select_related("author__publisher").iterator(chunk_size=chunk))

    compare(plan_spy, build, {"models"})


# --------------------------------------------------------------------------- time zones
TZ_SHAPES = {
    "events": lambda a: m.Event.objects.using(a),
    "values": lambda a: m.Event.objects.using(a).values(),
    "flat": lambda a: m.Event.objects.using(a).values_list("starts", flat=True),
    "annotations": lambda a: m.Event.objects.using(a).annotate(
        d=TruncDate("starts"), h=TruncHour("starts"), hour=ExtractHour("starts"), later=F("starts") + datetime.timedelta(hours=1)
    ),
    "datetimes": lambda a: m.Event.objects.using(a).datetimes("starts", "hour"),
    "values_transforms": lambda a: m.Event.objects.using(a).values("starts__date", "starts__hour", "ends__time"),
    # (label="edges" holds 0001-01-01 00:00 UTC: not a Python datetime in a zone west of UTC)
    "all_types": lambda a: m.AllTypes.objects.using(a).filter(label="full").only("moment", "moments", "momentrange"),
    "books_select_related": lambda a: m.Review.objects.using(a).select_related("book"),
}


def _reconnect():
    for alias in ("default", "plain", "stock"):
        connections[alias].close()


@pytest.mark.parametrize("reconnect", [True, False], ids=["reconnect", "no-reconnect"])
@pytest.mark.parametrize(
    "tz_settings",
    [
        {"USE_TZ": False},
        {"USE_TZ": False, "TIME_ZONE": "Asia/Kathmandu"},
        {"USE_TZ": True, "TIME_ZONE": "Asia/Kathmandu"},
    ],
    ids=["naive-chicago", "naive-kathmandu", "aware-kathmandu"],
)
@pytest.mark.parametrize("shape", sorted(TZ_SHAPES))
def test_time_zone_settings(plan_spy, tz_settings, reconnect, shape):
    build = TZ_SHAPES[shape]
    try:
        with override_settings(**tz_settings):
            if reconnect:
                _reconnect()
            native, _ = compare(plan_spy, build, None, via="plain", what=shape)
            compare(plan_spy, build, None, via="wrapped", what=shape)
            # And the stock backend (psycopg) reads the same values with the same tzinfo.
            compare(plan_spy, build, None, via="stock", what=shape)
            if not tz_settings["USE_TZ"] and shape == "events":
                assert native[0].starts.tzinfo is None
    finally:
        _reconnect()


# --------------------------------------------------------------------------- errors mid-iteration
@pytest.mark.parametrize("alias", ["default", "plain"])
@pytest.mark.parametrize(
    "how", ["list", "iterator", "values", "atomic"],
)
def test_converter_error_mid_iteration(alias, how):
    qs = m.Fragile.objects.using(alias)
    with pytest.raises(ValueError, match="boom in from_db_value"):
        if how == "list":
            list(qs)
        elif how == "iterator":
            list(qs.iterator(chunk_size=1))
        elif how == "values":
            list(qs.values_list("name", flat=True))
        else:
            with transaction.atomic(using=alias):
                list(qs)
    # the connection is still usable, outside and inside a transaction
    assert m.Fragile.objects.using(alias).filter(name="ok").count() == 1
    with transaction.atomic(using=alias):
        assert list(m.Fragile.objects.using(alias).exclude(name="boom").values_list("name", flat=True)) == ["ok", "fine"]


def test_converter_error_partial_results_match():
    got = {}
    for alias in ("default", "plain"):
        seen = []
        with pytest.raises(ValueError):
            for obj in m.Fragile.objects.using(alias).iterator(chunk_size=1):
                seen.append(obj.name)
        got[alias] = seen
    assert got["default"] == got["plain"] == ["ok"]


# --------------------------------------------------------------------------- using native instances
def test_save_native_instance_updates(plan_spy):
    with transaction.atomic(using="default"):
        book = m.Book.objects.using("default").select_related("author").get(title="Book 01")
        with CaptureQueriesContext(connections["default"]) as ctx:
            book.pages = 999
            book.save()
        assert len(ctx) == 1 and ctx[0]["sql"].startswith("UPDATE"), ctx.captured_queries
        assert m.Book.objects.using("default").get(pk=book.pk).pages == 999
        transaction.set_rollback(True, using="default")


def test_save_deferred_native_instance_updates_loaded_fields_only():
    with transaction.atomic(using="default"):
        book = m.Book.objects.using("default").only("title").get(title="Book 01")
        with CaptureQueriesContext(connections["default"]) as ctx:
            book.title = "x"
            book.save()
        assert len(ctx) == 1 and ctx[0]["sql"].startswith("UPDATE") and '"price"' not in ctx[0]["sql"]
        transaction.set_rollback(True, using="default")


def test_pickle_copy_and_dict_helpers(plan_spy):
    def build(a):
        objs = list(m.Book.objects.using(a).select_related("author__publisher").only("title", "metadata", "author__name",
                                                                                      "author__publisher__name"))
        objs += list(m.AllTypes.objects.using(a))
        return [
            [pickle.loads(pickle.dumps(o)) for o in objs],
            [copy.copy(o) for o in objs],
            [copy.deepcopy(o) for o in objs],
            [model_to_dict(o) for o in objs],
            [(o == o, hash(o) == hash(o.pk) or hash(o)) for o in objs],
        ]

    compare(plan_spy, build, {"models"})


def test_full_clean_native(plan_spy):
    def build(a):
        out = []
        for o in m.Author.objects.using(a).select_related("publisher"):
            try:
                o.full_clean(validate_unique=False)
                out.append(None)
            except Exception as e:  # noqa: BLE001
                out.append(repr(e))
        return out

    compare(plan_spy, build, {"models"})


def test_str_repr(plan_spy):
    compare(plan_spy, lambda a: [repr(b) + str(b) for b in m.Book.objects.using(a)], {"models"})


def test_native_path_in_a_transaction_sees_uncommitted_rows(plan_spy):
    with transaction.atomic(using="default"):
        m.Tag.objects.using("default").create(name="uncommitted")
        names = list(m.Tag.objects.using("default").values_list("name", flat=True))
        objs = list(m.Tag.objects.using("default").filter(name="uncommitted"))
        transaction.set_rollback(True, using="default")
    assert "uncommitted" in names and len(objs) == 1 and objs[0]._state.adding is False


# --------------------------------------------------------------------------- more ways in
def test_async_iteration(plan_spy):
    import asyncio

    async def run(a):
        qs = m.Book.objects.using(a).select_related("author__publisher")
        objs = [b async for b in qs]
        chunked = [b async for b in qs.aiterator(chunk_size=3)]
        values = [v async for v in m.Book.objects.using(a).values("title", "metadata")]
        one = await m.Book.objects.using(a).aget(title="Book 03")
        first = await m.Author.objects.using(a).select_related("profile").afirst()
        return [objs, chunked, values, one, first]

    compare(plan_spy, lambda a: asyncio.run(run(a)), None)


def test_threads(plan_spy):
    from concurrent.futures import ThreadPoolExecutor

    def work(alias):
        try:
            out = []
            for _ in range(5):
                out.append(list(m.Book.objects.using(alias).select_related("author__publisher__country")))
                out.append(list(m.AllTypes.objects.using(alias).values_list()))
            return out
        finally:
            connections.close_all()

    def build(a):
        with ThreadPoolExecutor(max_workers=6) as pool:
            return list(pool.map(work, [a] * 6))

    native, _ = compare(plan_spy, build, None)
    assert len(native) == 6


def test_disable_server_side_cursors(plan_spy, monkeypatch):
    for alias in ("default", "plain"):
        monkeypatch.setitem(connections[alias].settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    compare(plan_spy, lambda a: list(m.Book.objects.using(a).select_related("author").iterator(chunk_size=2)), {"models"})
    compare(plan_spy, lambda a: list(m.Book.objects.using(a).values_list("title", "created").iterator(chunk_size=5)), {"tuples"})


@pytest.mark.parametrize("db_tz", ["Europe/Paris", "UTC", "Asia/Kathmandu"])
def test_database_time_zone(plan_spy, db_tz, monkeypatch):
    """DATABASES[alias]["TIME_ZONE"]: aware datetimes come back in that zone."""
    aliases = ("default", "plain", "stock")
    for alias in aliases:
        conn = connections[alias]
        conn.close()
        monkeypatch.setitem(conn.settings_dict, "TIME_ZONE", db_tz)
        for attr in ("timezone", "timezone_name"):
            conn.__dict__.pop(attr, None)
    try:
        events, _ = compare(plan_spy, lambda a: m.Event.objects.using(a), {"models"})
        assert str(events[0].starts.tzinfo) == db_tz
        for build in (
            lambda a: m.Event.objects.using(a),
            lambda a: m.Event.objects.using(a).values_list("starts", "moments", "span"),
            lambda a: m.Book.objects.using(a).annotate(d=TruncDate("created"), h=TruncHour("created")),
            lambda a: m.Book.objects.using(a).datetimes("created", "day"),
        ):
            compare(plan_spy, build, None)
            compare(plan_spy, build, None, via="wrapped")
            compare(plan_spy, build, None, via="stock")
    finally:
        monkeypatch.undo()
        for alias in aliases:
            conn = connections[alias]
            conn.close()
            for attr in ("timezone", "timezone_name"):
                conn.__dict__.pop(attr, None)


@pytest.mark.parametrize(
    "build",
    [
        lambda a: m.Book.objects.using(a).select_related("author__publisher").prefetch_related("tags", "reviews"),
        lambda a: m.Author.objects.using(a).get(name="Ann").books.all(),
        lambda a: list(m.Book.objects.using(a).iterator(chunk_size=5)),
        lambda a: m.AllTypes.objects.using(a).values_list("label", flat=True),
    ],
    ids=["select_prefetch", "known_related", "iterator", "flat"],
)
def test_same_statements(plan_spy, build):
    """The native path sends exactly the statements Django sends (through its CursorWrapper)."""
    conn = connections["default"]
    with CaptureQueriesContext(conn) as native:
        evaluate(build("default"))
    with django_iterables(), CaptureQueriesContext(conn) as django:
        evaluate(build("default"))
    assert [q["sql"] for q in native.captured_queries] == [q["sql"] for q in django.captured_queries]
    assert plan_spy.calls


def test_custom_iterable_subclass_falls_back(plan_spy):
    from django.db.models.query import ModelIterable

    class Reversing(ModelIterable):
        def __iter__(self):
            yield from reversed(list(super().__iter__()))

    def build(a):
        qs = m.Book.objects.using(a).select_related("author")
        qs._iterable_class = Reversing
        return list(qs)

    native, _ = compare(plan_spy, build, set())
    assert native[0].title == "Book 11"


ROUTED_SHAPES = {
    "models": lambda: m.Book.objects.select_related("author"),
    "fallback": lambda: m.Snapshot.objects.all(),
    "fallback_tuples": lambda: m.Shouty.objects.all(),
    "values": lambda: m.Book.objects.values("title", "price"),
    "flat": lambda: m.Book.objects.values_list("created", flat=True),
    "iterator": lambda: list(m.Book.objects.iterator(chunk_size=3)),
    "prefetch": lambda: m.Author.objects.prefetch_related("books__tags"),
    "get": lambda: m.Book.objects.get(title="Book 02"),
}


def _routed_param(name):
    return name


@pytest.mark.parametrize("shape", [_routed_param(n) for n in sorted(ROUTED_SHAPES)])
def test_routed_querysets(plan_spy, shape):
    """No .using(): the router picks the alias; same alias, results and router calls."""
    import mat_settings

    router = mat_settings.WriteRouter
    build = ROUTED_SHAPES[shape]
    results, calls = {}, {}
    try:
        for label, alias, wrapped in (("native", "default", False), ("django", "default", True), ("plain", "plain", False)):
            router.READ_ALIAS, router.read_calls = alias, 0
            plan_spy.clear()
            if wrapped:
                with django_iterables():
                    results[label] = evaluate(build())
            else:
                results[label] = evaluate(build())
            calls[label] = router.read_calls
            if alias == "plain":
                assert plan_spy.calls == []
    finally:
        router.READ_ALIAS, router.read_calls = None, 0
    assert_same_objects(results["native"], results["django"])
    assert_same_objects(results["native"], results["plain"], db_map={"plain": "default"})
    assert calls["native"] == calls["django"], calls
