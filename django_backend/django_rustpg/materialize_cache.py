"""What materialize.py builds once and reuses: field columns per model and loaded fields,
and the plans of plain models."""
import functools
import inspect
import sys


def field_columns(cls, init_list, columns):
    return _field_columns_cached(cls, tuple(init_list), tuple(columns))


@functools.lru_cache(maxsize=4096)
def _field_columns_cached(cls, init_list, columns):
    """(attname, column, via_dict) as ``Model.from_db`` assigns them. ``via_dict`` marks
    attnames behind a data descriptor (FK ids, files), whose __set__ stores into
    ``__dict__``; the rest are plain attribute stores."""
    concrete = cls._meta.concrete_fields
    if len(init_list) == len(concrete):
        # from_db then passes the values positionally in concrete_fields order.
        pairs = [(f.attname, columns[i]) for i, f in enumerate(concrete)]
    else:
        pairs = list(zip(init_list, columns))
    # Interned once here: the driver sets attributes by these names on every row.
    return [(sys.intern(a), c, _has_data_descriptor(cls, a)) for a, c in pairs]


def fields_cache_columns(cls, init_list, columns):
    return _fields_cache_columns_cached(cls, tuple(init_list), tuple(columns))


@functools.lru_cache(maxsize=4096)
def _fields_cache_columns_cached(cls, init_list, columns):
    """Columns of the loaded foreign key ids. Model.__init__ stores each through
    ForeignKeyDeferredAttribute.__set__, whose ``field.is_cached()`` on a non-None id creates
    ``_state.fields_cache``: first in the state's attributes, before from_db's ``adding``."""
    from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute

    return [
        c for a, c, _ in _field_columns_cached(cls, init_list, columns)
        if type(inspect.getattr_static(cls, a, None)) is ForeignKeyDeferredAttribute
    ]


@functools.lru_cache(maxsize=4096)
def _has_data_descriptor(cls, attname):
    attr = inspect.getattr_static(cls, attname, None)
    return attr is not None and hasattr(type(attr), "__set__")


# Plans of plain models without converters or select_related, by what they are built from
# (materialize.py's key); replaced by the materialize tests to count plan builds.
plain_plans = {}
PLAIN_PLANS_MAX = 512


def remember_plain_plan(key, plan):
    if len(plain_plans) >= PLAIN_PLANS_MAX:
        plain_plans.clear()
    plain_plans[key] = plan
