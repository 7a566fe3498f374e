"""Django's PostgreSQL compilers, with a faster way to prepare bulk_create()'s values.

``SQLInsertCompiler.as_sql`` asks, for every object and field, ``prepare_value(field,
pre_save_val(field, obj))``: five to seven Python calls per value (``pre_save``,
``get_db_prep_save``, ``get_db_prep_value``, ``get_prep_value``, ``to_python``, the ops'
adapter). For stock field classes whose methods are Django's own, and a value of the exact
type the field already stores, the outcome of that chain is known: the value itself (or,
for integer fields, psycopg's ``Int2/Int4/Int8`` wrapper, as Django's ops produce it).
Those values take one lookup here; anything else (an expression, None, another type, a
subclass, a field with a custom method, auto_now, ...) takes Django's own chain, in
Django's own order, so errors, warnings and pre_save side effects stay exactly Django's.

The statement Django then builds (``INSERT ... SELECT * FROM UNNEST(%s::type[], ...)`` for
several rows, ``ON CONFLICT`` and ``RETURNING`` as asked) is unchanged. When every column
was prepared ahead, Django builds it for the first two objects only and the whole columns
take the place of its two-element lists (see ``_unnest_sql``).
"""

import datetime
import decimal
import functools
import inspect
import uuid

import django
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.backends.postgresql import compiler as pg_compiler
from django.db.backends.postgresql import operations as pg_operations
from django.db.models import JSONField, fields as f
from django.db.models.fields.related import ForeignKey
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute

from django.db.backends.postgresql.compiler import (  # noqa: F401  (this module is compiler_module)
    SQLAggregateCompiler,
    SQLCompiler,
    SQLDeleteCompiler,
)

from . import bulk_update

_Field = f.Field

# Where the chains below were read and are tested (tests/test_compiler.py, run by test-py on
# 5.2 and by test-dj61 on 6.1): the digest of the Django code they stand in for, as
# materialize.source_digest() computes it. Anywhere else (another version, or a patch release
# whose code differs) every value takes Django's own chain.
VERIFIED_DJANGO = {(5, 2): {"af2b80841b211639"}, (6, 1): {"28fab51a60361cc4"}}


def _stood_in_for():
    """Django's code that decides when pre_save_val()/prepare_value() are called, and the
    stock prep chains value_rule() stands in for."""
    from django.db.models.sql import compiler as sql_compiler

    methods = {
        sql_compiler.SQLInsertCompiler: ("as_sql", "assemble_as_sql", "pre_save_val", "prepare_value", "field_as_sql"),
        pg_compiler.SQLInsertCompiler: ("as_sql", "assemble_as_sql"),
        pg_operations.DatabaseOperations: ("adapt_integerfield_value", "adapt_datetimefield_value",
                                           "adapt_datefield_value", "adapt_json_value"),
        BaseDatabaseOperations: ("adapt_decimalfield_value", "validate_autopk_value"),
    }
    chain = ("pre_save", "get_db_prep_save", "get_db_prep_value", "get_prep_value", "to_python")
    for owner in (_Field, f.AutoFieldMixin, f.IntegerField, f.BooleanField, f.CharField, f.TextField, f.FloatField,
                  f.DecimalField, f.DateTimeField, f.DateField, JSONField, f.UUIDField, ForeignKey):
        methods[owner] = chain
    return [(f"{owner.__module__}.{owner.__name__}.{name}", owner.__dict__.get(name))
            for owner, names in methods.items() for name in names]


@functools.cache
def insert_code_digest():
    from .materialize import source_digest

    return source_digest(_stood_in_for())


def _verified_django():
    return insert_code_digest() in VERIFIED_DJANGO.get(django.VERSION[:2], ())



def _is(cls, name, owner):
    """cls.name is exactly owner.name (not overridden anywhere below owner)."""
    return getattr(cls, name, None) is getattr(owner, name)


def _plain(cls, prep_owner, db_prep_owner, to_python_owner=None, pre_save_owner=_Field):
    """pre_save, get_db_prep_save, get_db_prep_value, get_prep_value (and to_python) are
    the verified ones."""
    return (
        _is(cls, "pre_save", pre_save_owner)
        and _is(cls, "get_db_prep_save", _Field)
        and _is(cls, "get_db_prep_value", db_prep_owner)
        and _is(cls, "get_prep_value", prep_owner)
        and (to_python_owner is None or _is(cls, "to_python", to_python_owner))
    )


def _ops_default(ops, name, owner=BaseDatabaseOperations):
    return _is(type(ops), name, owner)


def _identity(value):
    return value


def _finite(value):
    """Marker: a Decimal column is Django's only when every value is finite (DecimalField's
    to_python raises ValidationError for NaN and infinities)."""


def _aware(value):
    """Marker: a datetime column is Django's only when every value is aware (with USE_TZ,
    DateTimeField warns about naive values and makes them aware)."""


def value_rule(field, connection):
    """(exact value types, transform) when the field's prep chain is the verified one, else
    None. transform maps one value to its prepared value (or is a marker, see _column)."""
    cls = type(field)
    ops = connection.ops
    if isinstance(field, ForeignKey):
        if not (_is(cls, "pre_save", _Field) and _is(cls, "get_db_prep_save", ForeignKey)):
            return None
        # ForeignKey.get_db_prep_save: None or "" aside, the target field's chain.
        return value_rule(field.target_field, connection)
    if isinstance(field, f.AutoFieldMixin):
        if not _ops_default(ops, "validate_autopk_value"):
            return None
        if _plain(cls, f.IntegerField, f.AutoFieldMixin):
            return (int,), _identity
        # 6.1: AutoFieldMixin.get_db_prep_save is get_prep_value (int() of an int: itself),
        # validate_autopk_value, then get_db_prep_value(prepared=True), which returns it.
        if (_is(cls, "pre_save", _Field) and _is(cls, "get_db_prep_save", f.AutoFieldMixin)
                and "get_db_prep_save" in f.AutoFieldMixin.__dict__
                and _is(cls, "get_db_prep_value", f.AutoFieldMixin) and _is(cls, "get_prep_value", f.IntegerField)):
            return (int,), _identity
        return None
    if isinstance(field, f.IntegerField):
        if not (_plain(cls, f.IntegerField, f.IntegerField)
                and _is(type(ops), "adapt_integerfield_value", pg_operations.DatabaseOperations)):
            return None
        wrap = getattr(ops, "integerfield_type_map", {}).get(field.get_internal_type())
        return ((int,), wrap) if wrap is not None else None
    if isinstance(field, f.BooleanField):
        return ((bool,), _identity) if _plain(cls, f.BooleanField, _Field, f.BooleanField) else None
    if isinstance(field, (f.CharField, f.TextField)):
        owner = f.CharField if isinstance(field, f.CharField) else f.TextField
        return ((str,), _identity) if _plain(cls, owner, _Field, owner) else None
    if isinstance(field, f.FloatField):
        return ((float,), _identity) if _plain(cls, f.FloatField, _Field) else None
    if isinstance(field, f.DecimalField):
        if _plain(cls, f.DecimalField, f.DecimalField, f.DecimalField) and _ops_default(ops, "adapt_decimalfield_value"):
            return (decimal.Decimal,), _finite
        return None
    if isinstance(field, f.DateTimeField):
        if (field.auto_now or field.auto_now_add
                or not _plain(cls, f.DateTimeField, f.DateTimeField, f.DateTimeField, f.DateTimeField)
                or not _is(type(ops), "adapt_datetimefield_value", pg_operations.DatabaseOperations)):
            return None
        from django.conf import settings

        return (datetime.datetime,), (_aware if settings.USE_TZ else _identity)
    if isinstance(field, f.DateField):
        if (field.auto_now or field.auto_now_add
                or not _plain(cls, f.DateField, f.DateField, f.DateField, f.DateField)
                or not _is(type(ops), "adapt_datefield_value", pg_operations.DatabaseOperations)):
            return None
        return (datetime.date,), _identity
    if isinstance(field, JSONField):
        # JSONField.get_db_prep_save: None and Value(None) aside, Field's chain, which ends in
        # ops.adapt_json_value(value, encoder).
        if (_is(cls, "pre_save", _Field) and _is(cls, "get_db_prep_save", JSONField)
                and _is(cls, "get_db_prep_value", JSONField) and _is(cls, "get_prep_value", _Field)
                and _is(type(ops), "adapt_json_value", pg_operations.DatabaseOperations)):
            adapt, encoder = ops.adapt_json_value, field.encoder
            return (dict, list), lambda value: adapt(value, encoder)
        return None
    if isinstance(field, f.UUIDField):
        if _plain(cls, f.UUIDField, f.UUIDField) and connection.features.has_native_uuid_field:
            return (uuid.UUID,), _identity
        return None
    return None


# pre_save methods that only ever set the field's own attribute (auto_now): a column read
# ahead of Django's loop cannot miss a change they make.
_SELF_CONTAINED_PRE_SAVE = {_Field.pre_save, f.DateField.pre_save, f.DateTimeField.pre_save, f.TimeField.pre_save}
# Class attributes through which getattr(obj, attname) is obj.__dict__[attname] when present.
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)


def _reads_dict(classes, attname):
    return all(type(inspect.getattr_static(cls, attname, None)) in _PLAIN_DESCRIPTORS for cls in classes)


def _column(values, types, transform):
    """The prepared column, or None when some value needs Django's own chain."""
    if len(types) == 1:
        (t,) = types
        if not all(type(v) is t for v in values):
            return None
    elif not all(type(v) in types for v in values):
        return None
    if transform is _identity:
        return values
    if transform is _finite:
        return values if all(v.is_finite() for v in values) else None
    if transform is _aware:
        return values if all(v.utcoffset() is not None for v in values) else None
    return list(map(transform, values))


class SQLInsertCompiler(pg_compiler.SQLInsertCompiler):
    # id(field) -> iterator over that field's prepared values, in self.query.objs order.
    _rustpg_columns: "dict | None" = None

    def as_sql(self):
        columns = self._prepared_columns()
        if columns is None:
            return super().as_sql()  # no frame of ours per field (a single create())
        if len(columns) == len(self.query.fields) and len(self.query.objs) > 2:
            statements = self._unnest_sql(columns)
            if statements is not None:
                return statements
        self._serve({key: iter(column) for key, column in columns.items()})
        try:
            return super().as_sql()
        finally:
            self._stop_serving()

    def _serve(self, columns):
        """While Django's as_sql runs, its per-field calls take these columns' values:
        instance attributes shadow pre_save_val and prepare_value until _stop_serving."""
        self._rustpg_columns = columns
        self.pre_save_val = self._served_pre_save_val
        self.prepare_value = self._served_prepare_value

    def _stop_serving(self):
        self._rustpg_columns = None
        self.__dict__.pop("pre_save_val", None)
        self.__dict__.pop("prepare_value", None)

    def _unnest_sql(self, columns):
        """Every column prepared: Django's statement for the first two objects, whose
        parameters are one list per column (INSERT ... SELECT * FROM UNNEST(%s::type[], ...),
        the same text for two rows as for n), with the whole columns in place of those lists.
        Spares Django's loop over every object and field. None when Django took another form
        (VALUES rows, one statement per object)."""
        query, fields = self.query, self.query.fields
        objs = query.objs
        query.objs = objs[:2]
        self._serve({key: iter(column[:2]) for key, column in columns.items()})
        try:
            statements = super().as_sql()
        finally:
            query.objs = objs
            self._stop_serving()
        if len(statements) != 1:
            return None
        sql, params = statements[0]
        if len(params) < len(fields):
            return None
        whole = []
        for field, param in zip(fields, params):
            column = columns[id(field)]
            # The very objects served for the two rows, as a list: the UNNEST form.
            if type(param) is not list or len(param) != 2 or param[0] is not column[0] or param[1] is not column[1]:
                return None
            whole.append(column if type(column) is list else list(column))
        return [(sql, (*whole, *params[len(fields):]))]

    def _prepared_columns(self):
        query = self.query
        objs, fields = query.objs, query.fields
        if not fields or len(objs) < 2 or query.raw or not _verified_django():
            return None
        if any(getattr(type(field), "pre_save", None) not in _SELF_CONTAINED_PRE_SAVE for field in fields):
            return None  # a pre_save that may change other attributes: only Django's order is right
        classes = {type(obj) for obj in objs}
        columns = {}
        for field in fields:
            rule = value_rule(field, self.connection)
            if rule is None or not _reads_dict(classes, field.attname):
                continue
            attname = field.attname
            try:
                values = [obj.__dict__[attname] for obj in objs]
            except KeyError:  # deferred: getattr would load it
                continue
            column = _column(values, *rule)
            if column is not None:
                columns[id(field)] = column
        return columns or None

    def _served_pre_save_val(self, field, obj):
        column = self._rustpg_columns.get(id(field))
        if column is not None:
            return next(column)
        return super().pre_save_val(field, obj)

    def _served_prepare_value(self, field, value):
        if id(field) in self._rustpg_columns:
            return value  # prepared in _prepared_columns
        return super().prepare_value(field, value)


def prepared_values(field, values, connection):
    """[field.get_db_prep_save(v) for v in values], through value_rule where it is exact."""
    if _verified_django():
        rule = value_rule(field, connection)
        if rule is not None:
            column = _column(values, *rule)
            if column is not None:
                return column
    prep = field.get_db_prep_save
    return [prep(v, connection=connection) for v in values]


class SQLUpdateCompiler(pg_compiler.SQLUpdateCompiler):
    def as_sql(self):
        unnest = bulk_update.as_sql(self, prepared_values)
        return unnest if unnest is not None else super().as_sql()
