"""Discrepancies found between the native path and Django's path (and a driver bug the
fixture data ran into). Each test states the expected (Django) behaviour; the ones that
fail today are marked ``xfail(strict=True)`` with the reason, so fixing the bug turns them
into XPASS failures: then delete the marker."""
import pytest
from django.db import connections, transaction
from django.db.models import F, Value

from mat_app import models as m
from mat_helpers import compare

def _regression(test):
    return test


# Fixed; kept as regression tests.
PLAIN_CHECK = NOT_WRAPPED = _regression


# ---- models whose construction Django routes through code the plain-model check misses
@PLAIN_CHECK
def test_mixin_init_after_model(plan_spy):
    """Model.__init__ ends with super().__init__(): a mixin listed after Model runs there."""
    native, django = compare(plan_spy, lambda a: m.MixinInit.objects.using(a), None)
    assert django[0].mixin_initialised is True


@PLAIN_CHECK
def test_model_with_setattr(plan_spy):
    """Model.__init__ assigns every field with setattr(): a __setattr__ override sees them."""
    native, django = compare(plan_spy, lambda a: m.SetattrModel.objects.using(a), None)
    assert django[0].name == "padded"


@PLAIN_CHECK
def test_model_with_metaclass_call(plan_spy):
    """Django instantiates with cls(*values): a metaclass __call__ runs."""
    native, django = compare(plan_spy, lambda a: m.MetaCallModel.objects.using(a), None)
    assert django[0].built_by_metaclass is True


@PLAIN_CHECK
def test_model_with_new(plan_spy):
    """Django instantiates with cls(*values), which calls cls.__new__."""
    native, django = compare(plan_spy, lambda a: m.NewModel.objects.using(a), None)
    assert django[0].made_by_new is True


def test_values_of_model_with_setattr(plan_spy):
    compare(plan_spy, lambda a: m.SetattrModel.objects.using(a).values("name"), {"dicts"})


# ---- errors raised while rows are fetched must be Django's (wrap_database_errors)
def _bulk_rows(alias):
    with connections[alias].cursor() as c:
        c.execute(
            "INSERT INTO mat_app_profilerow (name, number, big, amount, ratio, flag, day, moment, uid) "
            "SELECT 'n', g, g, 1, 1, true, '2020-01-01', now(), gen_random_uuid() FROM generate_series(1, 5000) g"
        )


@NOT_WRAPPED
@pytest.mark.parametrize("shape", ["models", "flat"])
def test_fetch_error_on_server_side_cursor_is_wrapped(shape):
    """The server reports division by zero at a later FETCH of the named cursor."""
    from django.db.utils import DataError

    got = {}
    for alias in ("default", "plain"):
        with transaction.atomic(using=alias):
            _bulk_rows(alias)
            qs = m.ProfileRow.objects.using(alias).annotate(x=Value(1) / (F("number") - 4000))
            if shape == "flat":
                qs = qs.values_list("x", flat=True)
            try:
                with transaction.atomic(using=alias):
                    list(qs.iterator(chunk_size=100))
            except Exception as e:  # noqa: BLE001
                got[alias] = type(e)
            transaction.set_rollback(True, using=alias)
    assert got["plain"] is DataError
    assert got["default"] is DataError, got


@NOT_WRAPPED
def test_decode_error_is_wrapped():
    """0001-01-01 00:00 UTC read as a naive America/Chicago datetime cannot be decoded."""
    from django.db.utils import DataError
    from django.test.utils import override_settings

    got = {}
    try:
        with override_settings(USE_TZ=False):
            for alias in ("default", "plain", "stock"):
                connections[alias].close()
                try:
                    list(m.AllTypes.objects.using(alias).filter(label="edges").values_list("moment", flat=True))
                except Exception as e:  # noqa: BLE001
                    got[alias] = type(e)
    finally:
        for alias in ("default", "plain", "stock"):
            connections[alias].close()
    assert got["plain"] is DataError and got["stock"] is DataError
    assert got["default"] is DataError, got


# ---- driver: identical parameter values shared one placeholder (src/bind.rs); fixed in
# b737563 ("Typed-only placeholder sharing"): kept as regression tests.
@pytest.mark.parametrize(
    "columns,values",
    [("a text, b varchar(10)", ["", ""]), ("a text, b varchar(10)", ["same", "same"]), ("a integer[], b text[]", [[], []])],
    ids=["empty-str", "same-str", "empty-lists"],
)
def test_driver_shared_placeholder_insert(columns, values):
    with transaction.atomic(using="default"):
        with connections["default"].cursor() as c:
            c.execute(f"CREATE TEMP TABLE shared_ph ({columns}) ON COMMIT DROP")
            c.execute("INSERT INTO shared_ph (a, b) VALUES (%s, %s)", values)
        transaction.set_rollback(True, using="default")


def test_driver_shared_placeholder_orm_create():
    with transaction.atomic(using="default"):
        a = m.Author.objects.using("default").create(name="tmp")
        m.AuthorProfile.objects.using("default").create(author=a, bio="", homepage="")  # TextField + URLField
        m.AllTypes.objects.using("default").create(label="x", text="", email="", slug="", ints=[], texts=[], decs=[])
        transaction.set_rollback(True, using="default")
