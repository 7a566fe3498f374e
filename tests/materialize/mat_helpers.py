"""Running one queryset shape down both paths and comparing the results."""
import contextlib
import types

from django.db import connections
from django.db.models import QuerySet
from django.db.models import query as query_module

from mat_compare import assert_same_objects

ITERABLES = (
    query_module.ModelIterable,
    query_module.ValuesIterable,
    query_module.ValuesListIterable,
    query_module.FlatValuesListIterable,
)


def evaluate(result):
    if isinstance(result, QuerySet):
        return list(result)
    if isinstance(result, (types.GeneratorType, map, filter)):
        return list(result)
    return result


@contextlib.contextmanager
def django_iterables():
    """Django's own ``__iter__`` on the four iterables, whatever the connection."""
    saved = {cls: cls.__dict__["__iter__"] for cls in ITERABLES}
    for cls in ITERABLES:
        cls.__iter__ = cls.__iter__.__wrapped__
    try:
        yield
    finally:
        for cls, it in saved.items():
            cls.__iter__ = it


def compare(spy, build, expect, via="plain", what="", allow_empty=False, django_plans_ok=False):
    """``build(alias)`` returns a queryset (or anything to compare); it runs on ``default``
    (native) and then on Django's path (``via="plain"``: the materialize-off alias;
    ``via="wrapped"``: alias ``default`` with the original ``__iter__`` restored).

    ``expect``: the set of Plan kinds the native run must create for alias ``default``
    (``{"models"}``, ``{"dicts"}``, ... ; ``{"tuples"}`` for the natively decoded fallback,
    ``set()`` when Django's path must run); None to skip that check.
    ``django_plans_ok``: Django itself sends part of the work to alias ``default`` (e.g.
    ``ContentType.get_all_objects_for_this_type`` ignores the instance's database).
    """
    spy.clear()
    native = evaluate(build("default"))
    native_kinds = spy.kinds("default")
    spy.clear()
    if via == "plain":
        django = evaluate(build("plain"))
        db_map = {"plain": "default"}
    elif via == "wrapped":
        with django_iterables():
            django = evaluate(build("default"))
        db_map = None
    elif via == "stock":
        django = evaluate(build("stock"))
        db_map = {"stock": "default"}
    else:
        raise ValueError(via)
    assert django_plans_ok or not spy.calls, f"Django's path ({via}) created native Plans: {spy.calls}"
    if not allow_empty and isinstance(django, (list, tuple, dict)):
        assert len(django) > 0, "the comparison is vacuous: Django's path returned nothing"
    assert_same_objects(native, django, db_map=db_map, what=what)
    if expect is not None:
        assert native_kinds == set(expect), (
            f"native run on 'default' created Plans of kinds {sorted(native_kinds)}, expected {sorted(expect)}"
        )
    return native, django


def queries_on(alias):
    return len(connections[alias].queries_log)
