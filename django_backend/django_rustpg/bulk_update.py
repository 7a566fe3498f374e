"""bulk_update() as one ``UPDATE ... FROM UNNEST(...)`` rather than a CASE per column.

For each batch, ``QuerySet.bulk_update`` calls ``filter(pk__in=pks).update(f=Cast(Case(
When(pk=p, then=Value(v, output_field=f)), ...), output_field=f), ...)``. Django's update()
then resolves two expressions per object and column (a filter built per WHEN: ~0.5 ms per
object for four columns), compiles them again, and PostgreSQL tries the CASE's branches in
order for every row: n objects cost O(n^2) comparisons per column (10,000 objects in one
batch: minutes). When update() is called with exactly that shape, the statement built here

    UPDATE t SET f = v.c0, ... FROM UNNEST((%s)::pktype[], (%s)::ftype[], ...) AS v(pk, c0, ...)
    WHERE t.pk = v.pk

touches the same rows (the batch's pks, which must be distinct: CASE takes the first match),
stores the same values (each prepared by ``get_db_prep_save`` as ``Value.as_sql`` does, in
the same order, then cast to the type ``Cast`` casts to, explicitly as ``Cast`` does, so
varchar(n) truncates the same) and is one statement too, sent through Django's compiler and
cursor (execute wrappers, ``connection.queries`` and the row count are Django's). Anything
else (an expression as a value, another filter, a related or parent update, a field with a
placeholder or no array form tested here, another pk type, a Django whose code differs from
the one read) goes to Django's own update().

Wiring: ``install()`` wraps ``QuerySet.update``; the plan rides on the UpdateQuery
(``rustpg_unnest``) to ``compiler.SQLUpdateCompiler.as_sql``, which renders it.
"""

import functools
import uuid

import django
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, transaction
from django.db.models import Q
from django.db.models.expressions import Case, Col, Value, When
from django.db.models.functions import Cast
from django.db.models.lookups import In
from django.db.models.query import QuerySet
from django.db.models.sql.constants import ROW_COUNT
from django.db.models.sql.query import Query
from django.db.models.sql.subqueries import UpdateQuery
from django.db.models.sql.where import AND, WhereNode

# Internal types (of the field, or of a relation's target) whose array form the driver sends
# and tests/test_bulk_update.py compares with Django's CASE, value by value.
ARRAY_SAFE = frozenset({
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField",
    "PositiveIntegerField", "PositiveSmallIntegerField", "PositiveBigIntegerField", "BooleanField",
    "CharField", "TextField", "SlugField", "FloatField", "DecimalField", "DateField", "DateTimeField",
    "TimeField", "DurationField", "UUIDField", "JSONField",
})
PK_TYPES = {"AutoField": int, "BigAutoField": int, "SmallAutoField": int, "IntegerField": int,
            "BigIntegerField": int, "SmallIntegerField": int, "UUIDField": uuid.UUID}
ALIAS = "_rustpg_v"
COMPILER_MODULE = "django_rustpg.compiler"

# The digest (materialize.source_digest) of the Django code this stands in for, where it was
# read and is tested (tests/test_bulk_update.py on 5.2 and, in test-dj61, on 6.1).
# 5.2.20 changed FieldGetDbPrepValueIterableMixin.batch_process_rhs (zip(..., strict=True)):
# a check that each value's SQL has its parameters; the UNNEST statement binds whole arrays.
VERIFIED_DJANGO = {(5, 2): {"302551779eb7020c", "e59cd1e06689c65d"}, (6, 1): {"10d9c75e703ff93f"}}


def _stood_in_for():
    from django.db.models import query
    from django.db.models.fields import CharField, Field
    from django.db.models import lookups
    from django.db.models.lookups import Exact, FieldGetDbPrepValueIterableMixin, FieldGetDbPrepValueMixin
    from django.db.models.sql import compiler, subqueries

    methods = {
        query.QuerySet: ("bulk_update", "update"),
        compiler.SQLUpdateCompiler: ("as_sql", "pre_sql_setup", "execute_sql"),
        subqueries.UpdateQuery: ("add_update_values", "add_update_fields", "get_related_updates"),
        Value: ("__init__", "as_sql", "resolve_expression"),
        When: ("__init__", "as_sql", "resolve_expression"),
        Case: ("__init__", "as_sql", "resolve_expression"),
        Q: ("__init__", "resolve_expression"),
        lookups.IntegerFieldOverflow: ("process_rhs",),
        lookups.IntegerFieldExact: ("process_rhs", "get_prep_lookup"),
        Query: ("chain", "clear_select_clause"),
        Cast: ("as_sql", "as_postgresql"),
        In: ("get_prep_lookup", "process_rhs"),
        Exact: ("get_prep_lookup", "process_rhs"),
        FieldGetDbPrepValueMixin: ("get_db_prep_lookup",),
        FieldGetDbPrepValueIterableMixin: ("get_prep_lookup", "batch_process_rhs"),
        Field: ("cast_db_type",),
        CharField: ("cast_db_type",),
    }
    return [(f"{owner.__module__}.{owner.__name__}.{name}", owner.__dict__.get(name))
            for owner, names in methods.items() for name in names]


@functools.cache
def update_code_digest():
    from .materialize import source_digest

    return source_digest(_stood_in_for())


def verified_django():
    return update_code_digest() in VERIFIED_DJANGO.get(django.VERSION[:2], ())


def _own(expr, name):
    """An attribute set on the instance itself (output_field is a cached property otherwise)."""
    return expr.__dict__.get(name)


def _case_values(val, field, pks):
    """The values of `val` when it is bulk_update's (unresolved) Cast(Case(When(pk=...,
    then=Value(...)))) for `field`, with the pks in `pks` order (or, pks empty, appending
    them); else None."""
    if type(val) is not Cast or _own(val, "output_field") is not field or val.extra:
        return None
    (case,) = val.get_source_expressions() or (None,)
    if type(case) is not Case or _own(case, "output_field") is not field or case.extra:
        return None
    default = case.default
    if type(default) is not Value or default.value is not None or _own(default, "output_field") is not None:
        return None
    whens = case.cases
    fill = not pks
    if not fill and len(whens) != len(pks):
        return None
    values = []
    append = values.append
    for i, when in enumerate(whens):
        if type(when) is not When:
            return None
        cond, result = when.condition, when.result
        if (type(cond) is not Q or cond.negated or cond.connector != AND or len(cond.children) != 1
                or type(result) is not Value or _own(result, "output_field") is not field):
            return None
        lookup, pk = cond.children[0]
        if lookup != "pk":
            return None
        if fill:
            pks.append(pk)
        elif pks[i] is not pk and pks[i] != pk:
            return None
        value = result.value
        if hasattr(value, "as_sql") or hasattr(value, "resolve_expression"):
            return None
        append(value)
    return values


def _array_type(field, connection):
    target = field.target_field if field.is_relation else field
    if target.get_internal_type() not in ARRAY_SAFE:
        return None
    if hasattr(field, "get_placeholder") or hasattr(field, "get_placeholder_sql"):
        return None
    return field.cast_db_type(connection) + "[]"


def _pk_filter(query, pk_field, alias):
    """The pks of the query's only filter, pk__in=[...], or None."""
    where = query.where
    if type(where) is not WhereNode or where.connector != AND or where.negated or len(where.children) != 1:
        return None
    lookup = where.children[0]
    if type(lookup) is not pk_field.get_lookup("in") or not lookup.rhs_is_direct_value():
        return None
    lhs = lookup.lhs
    if type(lhs) is not Col or lhs.alias != alias or lhs.target is not pk_field:
        return None
    rhs = lookup.rhs
    return list(rhs) if isinstance(rhs, (list, tuple)) else None


def _plan(qs, kwargs):
    """(pk field, pks, [(field, model, array type, values)]) when qs.update(**kwargs) is one
    of bulk_update's batches on a plain pk__in filter, else None. Reads only: nothing is
    prepared or resolved here."""
    connection = connections[qs.db]
    query = qs.query
    if (connection.ops.compiler_module != COMPILER_MODULE or not verified_django() or query.combinator
            or query.is_sliced or query.distinct or query.distinct_fields or query.order_by or query.extra
            or len(query.alias_map) != 1 or query.select_for_update or type(query) is not Query):
        return None
    opts = query.get_meta()
    pk_field = opts.pk
    alias = query.base_table
    if pk_field is None or pk_field.is_relation or alias is None or alias == ALIAS:
        return None
    kind = pk_field.get_internal_type()
    if kind not in PK_TYPES or hasattr(pk_field, "get_placeholder") or hasattr(pk_field, "get_placeholder_sql"):
        return None
    filtered = _pk_filter(query, pk_field, alias)
    if not filtered:
        return None
    pks, columns, seen = [], [], set()
    for name, val in kwargs.items():
        try:
            field = opts.get_field(name)
        except FieldDoesNotExist:
            return None
        model = field.model._meta.concrete_model
        if (model is not opts.concrete_model or not field.concrete or field.many_to_many or field.primary_key
                or field.generated or field.column is None or field.column in seen):
            return None
        seen.add(field.column)
        array_type = _array_type(field, connection)
        if array_type is None:
            return None
        values = _case_values(val, field, pks)
        if values is None:
            return None
        columns.append((field, model, array_type, values))
    pk_type = PK_TYPES[kind]
    if not all(type(p) is pk_type for p in pks) or filtered != pks or len(set(pks)) != len(pks):
        return None
    if pk_type is int:
        # Django drops a WHEN whose pk is out of the column's range; an array cast would raise.
        low, high = connection.ops.integer_field_range(kind)
        if (low is not None and min(pks) < low) or (high is not None and max(pks) > high):
            return None
    return pk_field, pks, columns


def _update(qs, kwargs):
    """Django's update() for a planned batch, with the plan in place of add_update_values()
    (order_by, distinct fields and annotations aside, as _plan requires)."""
    plan = _plan(qs, kwargs)
    if plan is None:
        return None
    qs._for_write = True
    query = qs.query.chain(UpdateQuery)
    query.rustpg_unnest = plan
    query.clear_select_clause()
    with transaction.mark_for_rollback_on_error(using=qs.db):
        rows = query.get_compiler(qs.db).execute_sql(ROW_COUNT)
    qs._result_cache = None
    return rows


_django_update = None


def install():
    """Wraps QuerySet.update (once): bulk_update's batches on django_rustpg take _update."""
    global _django_update
    if _django_update is not None:
        return
    _django_update = django_update = QuerySet.update

    @functools.wraps(django_update)
    def update(self, **kwargs):
        # Cheap test first: only bulk_update passes Cast values to every column.
        if kwargs and all(type(v) is Cast for v in kwargs.values()):
            rows = _update(self, kwargs)
            if rows is not None:
                return rows
        return django_update(self, **kwargs)

    QuerySet.update = update


def as_sql(compiler, prepare):
    """(sql, params) of a planned batch (see _update), or None: Django's own SQL.
    prepare(field, values, connection) -> the values as get_db_prep_save prepares them, in
    order (the compiler's faster preparation)."""
    plan = getattr(compiler.query, "rustpg_unnest", None)
    if plan is None:
        return None
    compiler.pre_sql_setup()  # what Django's as_sql does first: with one table, it only refs the alias
    return _statement(compiler, *plan, prepare)


def _statement(compiler, pk_field, pks, columns, prepare):
    connection = compiler.connection
    qn = connection.ops.quote_name
    table = qn(compiler.query.base_table)
    v = qn(ALIAS)
    sets, arrays, names, params = [], [], [qn("pk")], []
    pk_prep = pk_field.get_db_prep_value
    params.append([pk_prep(p, connection, prepared=True) for p in pks])
    arrays.append(f"(%s)::{pk_field.cast_db_type(connection)}[]")
    for i, (field, _model, array_type, values) in enumerate(columns):
        name = qn(f"c{i}")
        sets.append(f"{qn(field.column)} = {v}.{name}")
        arrays.append(f"(%s)::{array_type}")
        names.append(name)
        params.append(prepare(field, values, connection))
    sql = (f"UPDATE {table} SET {', '.join(sets)} FROM UNNEST({', '.join(arrays)}) AS {v}({', '.join(names)}) "
           f"WHERE {table}.{qn(pk_field.column)} = {v}.{qn('pk')}")
    return sql, tuple(params)
