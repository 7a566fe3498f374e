"""Native materialization: Django's queryset iterables, with rows built in Rust.

Wiring: ``install()`` replaces ``__iter__`` of Django's ``ModelIterable``, ``ValuesIterable``,
``ValuesListIterable`` and ``FlatValuesListIterable`` with a generator that first asks
the native builder for its class (``_NATIVE``: ``_model_rows``, ``_value_rows``) for the
rows. That returns None (→ Django's own ``__iter__`` runs) unless
the queryset's database is a django_rustpg connection with ``OPTIONS["materialize"]`` on and
the query has a shape whose result is known to be identical. The decision is made once per
query, from Django's compiler (``select``, ``klass_info``, ``annotation_col_map``,
``get_converters``).

Version gate: this module stands in for Django code (``ModelIterable``, ``RelatedPopulator``,
``Model.from_db``/``__init__``, ...). It runs only where that code is exactly what was
verified: the Django minor version is in ``VERIFIED``, the features detected in the running
Django are the ones listed there, and the normalized source of the code stood in for has a
listed digest. Anywhere else every queryset takes Django's own iterable (one warning per
process): a new Django release can make it slower, never different.

The statement still goes through Django's ``CursorWrapper`` (``execute_sql(CURSOR)``), so
``connection.queries``, ``assertNumQueries`` and execute wrappers see it as usual.
"""

import hashlib
import inspect
import warnings
from itertools import chain
from typing import NamedTuple
from weakref import ref as weak_ref

import django
from django.db import connections
from django.db.models import JSONField, Model, query as query_module, signals
from django.db.models.base import ModelState
from django.db.models.expressions import Col

from . import _native, materialize_cache, materialize_links
from .materialize_cache import field_columns as _field_columns
from .materialize_rows import execute as _execute, rows as _rows
from .materialize_spec import ModelSpec, RelatedModelSpec

_JSON_FROM_DB_VALUE = JSONField.from_db_value

_installed = False
_MODEL_FROM_DB = Model.from_db.__func__
_MODEL_INIT = Model.__init__


class MaterializeFallbackWarning(RuntimeWarning):
    """The running Django is not one the native materializer was verified against."""


class DjangoIterables(NamedTuple):
    """What Django's model iterable does, as far as this module must do the same."""

    # QuerySet.fetch_mode(): from_db(..., fetch_mode=), get_related_populators(..., fetch_mode),
    # _state.fetch_mode on every instance, _state.peers for modes that track peers.
    fetch_modes: bool
    # known_related_objects are skipped when a from_field attname is deferred on the row.
    known_related_skips_deferred: bool
    # sha256 (first 16 hex digits) of the normalized source of _stood_in_for().
    digests: frozenset


# The single table of Django minor versions the native path has been verified against
# (tests/materialize and Django's own suite with --compare, on each). A new entry is
# added only after that verification; its digest is printed by ``python -m
# django_rustpg.materialize``.
VERIFIED = {
    (5, 2): DjangoIterables(False, False, frozenset({"1892b771a35b6316"})),
    (6, 0): DjangoIterables(False, False, frozenset({"1892b771a35b6316"})),
    (6, 1): DjangoIterables(True, True, frozenset({"b9162685faa22a04"})),
}


def _stood_in_for():
    """The Django code whose behaviour the native path reproduces."""
    from django.db.models import base
    from django.db.models.fields import files, related_descriptors
    from django.db.models.sql import compiler

    names = [
        (query_module.ModelIterable, "__iter__"),
        (query_module.ValuesIterable, "__iter__"),
        (query_module.ValuesListIterable, "__iter__"),
        (query_module.FlatValuesListIterable, "__iter__"),
        (query_module, "RelatedPopulator"),
        (query_module, "get_related_populators"),
        (query_module, "_get_from_db"),
        (base, "ModelState"),
        (base.Model, "__init__"),
        (base.Model, "from_db"),
        (compiler.SQLCompiler, "results_iter"),
        (compiler.SQLCompiler, "apply_converters"),
        (compiler, "cursor_iter"),
        # Stores the native path treats as plain __dict__ stores, and the JSON it parses itself.
        (related_descriptors, "ForeignKeyDeferredAttribute"),
        (files, "FileDescriptor"),
        (JSONField, "from_db_value"),
    ]
    return [(f"{getattr(owner, '__name__', owner)}.{name}", getattr(owner, name, None)) for owner, name in names]


def source_digest(stood_in_for=None):
    """Digest of the normalized source (comments and blank lines dropped) of the code
    stood in for (``(label, object)`` pairs, by default the materializer's); None when a
    source cannot be read."""
    h = hashlib.sha256()
    for label, obj in _stood_in_for() if stood_in_for is None else stood_in_for:
        h.update(label.encode())
        if obj is None:
            h.update(b"<absent>")
            continue
        try:
            source = inspect.getsource(inspect.unwrap(getattr(obj, "__func__", obj)))
        except (OSError, TypeError):
            return None
        for line in source.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                h.update(line.encode() + b"\n")
    return h.hexdigest()[:16]


def detect_iterables():
    """The features of the running Django's iterables, read from its code."""
    params = lambda f: inspect.signature(f).parameters  # noqa: E731
    fetch_modes = (
        hasattr(query_module.QuerySet, "fetch_mode")
        and "fetch_mode" in params(Model.from_db)
        and "fetch_mode" in params(query_module.get_related_populators)
        and hasattr(query_module, "_get_from_db")
    )
    # The deferred check names its attnames list; Django's loop has no other use for it.
    model_iter = inspect.unwrap(query_module.ModelIterable.__iter__)  # Django's, once installed
    skips_deferred = "rel_attnames" in model_iter.__code__.co_varnames
    return fetch_modes, skips_deferred


def _decide_gate():
    """(DjangoIterables or None, reason): decided once per process."""
    version = django.VERSION[:2]
    expected = VERIFIED.get(version)
    if expected is None:
        return None, f"Django {django.get_version()} is not a verified version ({_verified_text()})"
    if detect_iterables() != (expected.fetch_modes, expected.known_related_skips_deferred):
        return None, f"Django {django.get_version()}'s iterables do not have the features verified for {version[0]}.{version[1]}"
    digest = source_digest()
    if digest not in expected.digests:
        return None, (
            f"Django {django.get_version()}'s iterable code (digest {digest}) differs from the "
            f"verified {version[0]}.{version[1]} code"
        )
    return expected, None


def _verified_text():
    return ", ".join(f"{a}.{b}" for a, b in sorted(VERIFIED))


_gate = None  # set by install()
_gate_reason = None
_warned = False


def _warn_fallback():
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"django_rustpg: {_gate_reason}; querysets use Django's own iterables "
            "(correct, without native materialization).",
            MaterializeFallbackWarning,
            stacklevel=4,
        )


def _is_native_connection(connection):
    return getattr(connection, "rustpg_materialize", False)


def _plain_setattr_equivalent(cls, attname):
    """Would ``setattr(obj, attname, v)`` on a new instance just store v in ``__dict__``?"""
    attr = inspect.getattr_static(cls, attname, None)
    if attr is None:
        return True
    setter = getattr(type(attr), "__set__", None)
    if setter is None:
        return True
    # ForeignKeyDeferredAttribute.__set__ clears a cached related object (none on a new
    # instance); FileDescriptor.__set__ stores the raw value. Both equal a dict store here.
    from django.db.models.fields.files import FileDescriptor, ImageFileDescriptor
    from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute

    return type(attr) in (ForeignKeyDeferredAttribute, FileDescriptor) and not isinstance(attr, ImageFileDescriptor)


_plain_classes = {}


def _has_init_listeners(cls):
    pre, post = signals.pre_init, signals.post_init
    # Most projects connect no init receiver for any model: two list checks instead of
    # has_listeners' per-sender lookups (6 Python calls a query). Without the attribute
    # (another Django), ask has_listeners.
    if not getattr(pre, "receivers", True) and not getattr(post, "receivers", True):
        return False
    return pre.has_listeners(cls) or post.has_listeners(cls)


def _model_is_plain(cls, attnames):
    if _has_init_listeners(cls):
        return False
    key = (cls, tuple(attnames))
    plain = _plain_classes.get(key)
    if plain is None:
        plain = _plain_classes[key] = _model_is_plain_uncached(cls, attnames)
    return plain


def _model_is_plain_uncached(cls, attnames):
    """Would Django build this class's instances with nothing but attribute stores?"""
    if cls.from_db.__func__ is not _MODEL_FROM_DB or cls.__init__ is not _MODEL_INIT:
        return False
    if cls.__new__ is not object.__new__ or cls.__setattr__ is not object.__setattr__:
        return False
    if type(cls).__call__ is not type.__call__:
        return False
    # Model.__init__ ends with super().__init__(): a mixin after Model would run there.
    mro = cls.__mro__
    after_model = mro[mro.index(Model) + 1 :]
    if any("__init__" in vars(base) for base in after_model if base is not object):
        return False
    if cls._meta.abstract:
        return False
    return all(_plain_setattr_equivalent(cls, a) for a in attnames)


def _related_plans(klass_info, select, db, fetch_mode=None) -> list[RelatedModelSpec] | None:
    parts = []
    for rel in klass_info.get("related_klass_infos", []):
        select_fields = rel["select_fields"]
        cls = rel["model"]
        if rel["from_parent"]:
            attname_index = {select[i][0].target.attname: i for i in select_fields}
            init_list = [f.attname for f in cls._meta.concrete_fields if f.attname in attname_index]
            columns = [attname_index[a] for a in init_list]
        else:
            columns = list(range(select_fields[0], select_fields[-1] + 1))
            init_list = [select[i][0].target.attname for i in columns]
        if not _model_is_plain(cls, init_list):
            return None
        pk_attname = _pk_attname(cls)
        if pk_attname not in init_list:
            return None
        nested = _related_plans(rel, select, db, fetch_mode)
        if nested is None:
            return None
        parts.append((rel, cls, init_list, columns, pk_attname, nested))
    linked = materialize_links.links([(part[0], part[5]) for part in parts])
    return [
        RelatedModelSpec(
            **_model_spec_base(cls, init_list, columns, db, fetch_mode),
            pk_column=columns[init_list.index(pk_attname)],
            annotations=[],
            related=nested,
            local_setter=rel["local_setter"],
            remote_setter=rel["remote_setter"],
            local_cache_name=local,
            remote_cache_name=remote,
            remote_noop=noop,
        )
        for (rel, cls, init_list, columns, pk_attname, nested), (local, remote, noop) in zip(parts, linked)
    ]


def _model_spec_base(cls, init_list, columns, db, fetch_mode):
    """The record fields of every model in a plan, the queryset's own and a related one."""
    return {
        "cls": cls,
        "state_cls": ModelState,
        "fetch_mode": fetch_mode,
        "db": db,
        "fields": _field_columns(cls, init_list, columns),
        "fields_cache_columns": materialize_cache.fields_cache_columns(cls, init_list, columns),
    }


def _pk_attname(cls):
    pk_fields = getattr(cls._meta, "pk_fields", None)
    return (pk_fields[0] if pk_fields else cls._meta.pk).attname


def _converters(compiler, connection):
    fields = [s[0] for s in compiler.select[0 : compiler.col_count]]
    if hasattr(compiler, "has_composite_fields") and compiler.has_composite_fields(fields):
        return None
    return _all_converters(compiler, fields)


def _all_converters(compiler, fields):
    """``(column, converters, expression, native_json)`` per converted column, in
    Django's order; ``native_json``: the driver may parse the jsonb itself (see below)."""
    return [
        (column, list(convs), expression, _is_plain_json_converter(convs[0]) if convs else False)
        for column, (convs, expression) in sorted(compiler.get_converters(fields).items())
    ]


def _is_plain_json_converter(converter) -> bool:
    """Django's own ``JSONField.from_db_value`` with no custom decoder: on PostgreSQL it is
    ``json.loads(value)`` of the jsonb text (or None for NULL), which the driver builds
    natively with identical results."""
    field = getattr(converter, "__self__", None)
    return (
        getattr(converter, "__func__", None) is _JSON_FROM_DB_VALUE
        and isinstance(field, JSONField)
        and field.decoder is None
    )


def _column_width(compiler):
    """Database columns in the select list (a composite primary key spans several)."""
    fields = [s[0] for s in compiler.select[0 : compiler.col_count]]
    return sum(len(f) if type(f).__name__ == "ColPairs" else 1 for f in fields)


def _model_rows(iterable, connection, db):
    queryset = iterable.queryset
    if not _model_is_plain(queryset.model, ()):
        return None  # decided before executing: Django's own path runs the query
    fetch_mode = queryset._fetch_mode if _gate.fetch_modes else None
    compiler = queryset.query.get_compiler(using=db)
    cursor, (plan, converters) = _execute(
        compiler, iterable, lambda: _model_plan(compiler, connection, db, fetch_mode)
    )
    if cursor is None:
        return iter(())
    if plan is None:
        rows = _django_models(iterable, compiler, cursor, connection, db, fetch_mode)
    else:
        rows = _rows(cursor, plan, iterable, converters)
    return _with_known_related(rows, queryset)


def _model_plan(compiler, connection, db, fetch_mode):
    """``(plan, converters)`` for the executed compiler's model rows; ``(None, None)`` where
    Django's from_db and populators build the instances."""
    select, klass_info, annotation_col_map = compiler.select, compiler.klass_info, compiler.annotation_col_map
    cls = klass_info["model"]
    select_fields = klass_info["select_fields"]
    columns = list(range(select_fields[0], select_fields[-1] + 1))
    init_list = [select[i][0].target.attname for i in columns]
    related = _related_plans(klass_info, select, db, fetch_mode) if klass_info.get("related_klass_infos") else []
    # A plan (with its converters) of model columns only depends on this key: the common
    # get() / filter() of a model, built once, not per query.
    alias = _plain_columns_alias(select, compiler.col_count) if related == [] and not annotation_col_map else None
    # Peers (weak references shared per populator) are left to Django's populators.
    track_peers = fetch_mode is not None and fetch_mode.track_peers
    key = None
    if alias is not None:
        # The mode by identity, as from_db stores it (a user's mode may define __eq__ and be
        # unhashable); the cached plan holds the mode, so its id is not reused meanwhile.
        key = (cls, tuple(init_list), select_fields[0], compiler.col_count, db, alias, connection, id(fetch_mode))
        cached = materialize_cache.plain_plans.get(key)
        if cached is not None and not track_peers and _model_is_plain(cls, init_list):
            return cached
    converters = _converters(compiler, connection)
    if (
        converters is None
        or related is None
        or not _model_is_plain(cls, init_list)
        or track_peers
    ):
        return None, None
    annotations = list((annotation_col_map or {}).items())
    plan = _native.MaterializePlan(
        "models",
        compiler.col_count,
        converters,
        connection,
        model=ModelSpec(
            **_model_spec_base(cls, init_list, columns, db, fetch_mode),
            pk_column=None,
            annotations=annotations,
            related=related,
        ),
    )
    if key is not None:
        materialize_cache.remember_plain_plan(key, (plan, converters))
    return plan, converters


def _plain_columns_alias(select, col_count):
    """The table alias when the select list is only that table's columns (``field.get_col``,
    so each column's converters depend on its field alone); None otherwise."""
    if not col_count:
        return None
    alias = select[0][0].alias if type(select[0][0]) is Col else None
    for expression, _, _ in select[:col_count]:
        if type(expression) is not Col or expression.alias != alias:
            return None
    return alias


def _with_known_related(rows, queryset):
    known = queryset._known_related_objects
    if not known:
        return rows
    return _with_known_related_objects(rows, queryset, known)


def _django_models(iterable, compiler, cursor, connection, db, fetch_mode):
    """Rows decoded natively, instances built by Django (from_db, related populators), in
    the order of Django's ModelIterable loop: for models with their own from_db/__init__,
    init signals, composite keys, or fetch modes that track peers."""
    fields = [s[0] for s in compiler.select[0 : compiler.col_count]]
    converters = _all_converters(compiler, fields)
    plan = _native.MaterializePlan("tuples", _column_width(compiler), converters, connection)
    rows = _rows(cursor, plan, iterable, converters)
    if hasattr(compiler, "has_composite_fields") and compiler.has_composite_fields(fields):
        rows = compiler.composite_fields_to_tuples(rows, fields)
    klass_info = compiler.klass_info
    model_cls = klass_info["model"]
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    init_list = [f[0].target.attname for f in compiler.select[start:end]]
    if fetch_mode is None:
        from_db = model_cls.from_db
        populators = query_module.get_related_populators(klass_info, compiler.select, db)
    else:
        from_db = query_module._get_from_db(model_cls, fetch_mode)
        populators = query_module.get_related_populators(klass_info, compiler.select, db, fetch_mode)
    track_peers = fetch_mode is not None and fetch_mode.track_peers
    peers = []
    annotations = list((compiler.annotation_col_map or {}).items())
    for row in rows:
        obj = from_db(db, init_list, row[start:end])
        if track_peers:
            peers.append(weak_ref(obj))
            obj._state.peers = peers
        for populator in populators:
            populator.populate(row, obj)
        for attr, col in annotations:
            setattr(obj, attr, row[col])
        yield obj


def _with_known_related_objects(rows, queryset, known):
    import operator

    known_related_objects = [
        (
            field,
            related_objs,
            attnames := [
                field.attname if from_field == "self" else queryset.model._meta.get_field(from_field).attname
                for from_field in field.from_fields
            ],
            operator.attrgetter(*attnames),
        )
        for field, related_objs in known.items()
    ]
    skip_deferred = _gate.known_related_skips_deferred
    for obj in rows:
        for field, rel_objs, rel_attnames, rel_getter in known_related_objects:
            if field.is_cached(obj):
                continue
            # Django >= 6.1: a deferred from_field is not loaded just to find the object.
            if skip_deferred and any(attname not in obj.__dict__ for attname in rel_attnames):
                continue
            try:
                rel_obj = rel_objs[rel_getter(obj)]
            except KeyError:
                pass
            else:
                setattr(obj, field.name, rel_obj)
        yield obj


def _value_rows(iterable, connection, db, kind):
    queryset = iterable.queryset
    query = queryset.query
    names = None
    if kind == "dicts":
        if getattr(query, "selected", None):
            names = list(query.selected)
        else:
            names = [*query.extra_select, *query.values_select, *query.annotation_select]
    compiler = query.get_compiler(db)
    cursor, (plan, converters) = _execute(
        compiler, iterable, lambda: _values_plan(queryset, compiler, connection, kind, names)
    )
    if cursor is None:
        return iter(())
    if plan is not None:
        return _rows(cursor, plan, iterable, converters)
    # Composite fields: Django's row post-processing, on natively decoded tuples.
    fields = [s[0] for s in compiler.select[0 : compiler.col_count]]
    converters = _all_converters(compiler, fields)
    plan = _native.MaterializePlan("tuples", _column_width(compiler), converters, connection)
    rows = compiler.composite_fields_to_tuples(_rows(cursor, plan, iterable, converters), fields)
    if kind == "dicts":
        return ({n: row[i] for i, n in enumerate(names)} for row in rows)
    if kind == "flat":
        return (row[0] for row in rows)
    return map(tuple, rows)


def _values_plan(queryset, compiler, connection, kind, names):
    """``(plan, converters)`` for the executed compiler's value rows; ``(None, None)`` for
    composite fields."""
    converters = _converters(compiler, connection)
    if converters is None:
        return None, None
    order = _values_list_order(queryset) if kind == "tuples" else None
    plan = _native.MaterializePlan(kind, compiler.col_count, converters, connection, order=order, names=names)
    return plan, converters


def _values_list_order(queryset):
    """Column order for values_list() before Django 5.2, which reorders rows in Python
    when fields and annotations are listed in another order than they are selected."""
    query = queryset.query
    if hasattr(query, "selected") or not queryset._fields:
        return None  # Django 5.2+ selects the columns in the requested order.
    names = [*query.extra_select, *query.values_select, *query.annotation_select]
    fields = [*queryset._fields, *(f for f in query.annotation_select if f not in queryset._fields)]
    if fields == names:
        return None
    index = {name: i for i, name in enumerate(names)}
    return [index[f] for f in fields]


_NATIVE = {
    query_module.ModelIterable: _model_rows,
    query_module.ValuesIterable: lambda it, c, db: _value_rows(it, c, db, "dicts"),
    query_module.ValuesListIterable: lambda it, c, db: _value_rows(it, c, db, "tuples"),
    query_module.FlatValuesListIterable: lambda it, c, db: _value_rows(it, c, db, "flat"),
}


def _make_iter(iterable_cls, original):
    native = _NATIVE[iterable_cls]

    def results(self):
        """Yields the one iterable of this query's results: the native one, or Django's."""
        if type(self) is not iterable_cls:
            yield original(self)
            return
        # The router is asked once per query, as Django's own iterables do.
        queryset = self.queryset
        db = queryset.db
        connection = connections[db]
        if _is_native_connection(connection):
            if _gate is None:
                _warn_fallback()  # not a verified Django: its own iterables, always
            else:
                rows = native(self, connection, db)
                if rows is not None:
                    yield rows
                    return
        if queryset._db is None:
            # Pin the routed alias so Django's path does not route a second time.
            self = type(self)(queryset.using(db), chunked_fetch=self.chunked_fetch, chunk_size=self.chunk_size)
        yield original(self)

    def __iter__(self):
        # Nothing runs before the first next(), as with Django's generator; after that each
        # row passes through C only (a `yield from` here cost a frame resume per row).
        return chain.from_iterable(results(self))

    __iter__.__wrapped__ = original
    return __iter__


def install():
    """Idempotent: routes Django's iterables through the native path for our connections."""
    global _installed, _gate, _gate_reason
    if _installed:
        return
    _gate, _gate_reason = _decide_gate()
    for iterable_cls in _NATIVE:
        iterable_cls.__iter__ = _make_iter(iterable_cls, iterable_cls.__iter__)
    _installed = True


if __name__ == "__main__":
    # For adding a VERIFIED entry after verification: the running Django's facts.
    print(f"Django {django.get_version()}: features {detect_iterables()}, digest {source_digest()}")
