"""What a per-row queryset asked for beyond its relation: filters, ordering, slicing,
aggregates. Read once per group (on its second run) from the queryset object, so a fix
can restate them (``Prefetch(queryset=...)``, ``Count(..., filter=Q(...))``).

Filters are read back from the compiled ``WHERE`` tree as lookups (``price__gt=10``);
the relation's own filter (the related manager's ``author = <instance>``) is left out.
What cannot be restated exactly (expressions on either side, joins other than forward
foreign keys, ``extra()``) is named in ``error`` and no fix is offered for it.
"""

from __future__ import annotations

import datetime
import decimal
import uuid


class Unsupported(Exception):
    pass


def describe(qs, *, plain=False) -> dict | None:
    """A small dict about ``qs``; the WHERE tree is read only for related managers (or,
    with ``plain``, for any queryset: a fix's ``Prefetch`` queryset)."""
    query = qs.query
    info = {"model": qs.model._meta.label}
    hints = getattr(qs, "_hints", None) or {}
    instance = hints.get("instance")
    if instance is None and not plain:
        return info
    if instance is not None:
        info["instance"] = type(instance)._meta.label
    try:
        info["filters"] = _where(qs, instance)
    except Unsupported as e:
        info["error"] = str(e)
    order = list(query.order_by)
    if all(isinstance(o, str) for o in order):
        info["order_by"] = order
        if not query.default_ordering:
            info["no_default_ordering"] = True
    else:
        info["error"] = "it orders by an expression"
    if query.low_mark or query.high_mark is not None:
        info["slice"] = [query.low_mark, query.high_mark]
    if query.distinct:
        info["error"] = "it uses distinct()"
    if query.extra or query.annotations:
        info["error"] = "it uses annotate()/extra()"
    if qs._iterable_class.__name__ != "ModelIterable":
        info["values"] = True
    return info


def describe_prefetch(qs) -> dict:
    return describe(qs, plain=True)  # type: ignore[return-value]


def describe_aggregates(kwargs) -> list:
    """[(alias, function, field, filter tree or None, distinct)] of ``aggregate()``'s
    arguments, or [("error", reason)]."""
    from django.db.models import Aggregate, F

    out = []
    for alias, agg in kwargs.items():
        if not isinstance(agg, Aggregate):
            return [["error", f"{alias!r} is not a plain aggregate"]]
        sources = [e for e in agg.get_source_expressions()[:-1] if e is not None]
        if len(sources) != 1 or not isinstance(sources[0], F) or getattr(agg, "order_by", None) is not None:
            return [["error", f"{alias!r} aggregates an expression, not a field"]]
        if agg.filter is not None:
            return [["error", f"{alias!r} has its own filter"]]
        out.append([alias, type(agg).__name__, sources[0].name, bool(getattr(agg, "distinct", False))])
    return out


def _where(qs, instance) -> list | None:
    """The user's filters as a tree: ["and"|"or", negated, [children]] with leaves
    ["lookup", "field__path__lookup", value_code]; None when there are none."""
    query = qs.query
    core_fields = set()
    for fld in (getattr(qs, "_known_related_objects", None) or {}):
        core_fields.add(fld)
    return _node(query.where, query, instance, core_fields)


def _node(node, query, instance, core_fields):
    from django.db.models.sql.where import NothingNode, WhereNode

    if isinstance(node, NothingNode):
        raise Unsupported("its filter matches nothing")
    children = []
    for child in node.children:
        if isinstance(child, WhereNode):
            sub = _node(child, query, instance, core_fields)
        else:
            sub = _lookup(child, query, instance, core_fields)
        if sub is not None:
            children.append(sub)
    if not children:
        return None
    if len(children) == 1 and not node.negated:
        return children[0]
    return [node.connector.lower(), bool(node.negated), children]


def _lookup(lookup, query, instance, core_fields):
    from django.db.models.expressions import Col
    from django.db.models.lookups import Lookup, Transform

    if not isinstance(lookup, Lookup):
        raise Unsupported(f"it filters with {type(lookup).__name__}")
    lhs, names = lookup.lhs, []
    while isinstance(lhs, Transform):
        names.insert(0, lhs.lookup_name)
        lhs = lhs.lhs
    if not isinstance(lhs, Col):
        raise Unsupported("it filters on an expression")
    rhs = lookup.rhs
    if _is_core(lookup, lhs, rhs, query, instance, core_fields):
        return None
    path = _alias_path(lhs.alias, query) + [lhs.target.name] + names
    if lookup.lookup_name != "exact":
        path.append(lookup.lookup_name)
    return ["lookup", "__".join(path), _code(rhs)]


def _is_core(lookup, col, rhs, query, instance, core_fields) -> bool:
    """The related manager's own filter (``author = <instance>``, or the M2M through
    table's ``book_id = <instance.pk>``)."""
    if instance is None or lookup.lookup_name != "exact":
        return False
    value = rhs.pk if hasattr(rhs, "_meta") else rhs
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if value != instance.pk:
        return False
    if col.target in core_fields:
        return True
    join = query.alias_map.get(col.alias)
    model = getattr(col.target, "model", None)
    return bool(join is not None and col.alias != query.base_table and model is not None and model._meta.auto_created)


def _alias_path(alias, query) -> list:
    """Field names from the queryset's model to the table ``alias``: forward foreign
    keys only."""
    path = []
    seen = 0
    while alias != query.base_table:
        join = query.alias_map.get(alias)
        if join is None or seen > 8:
            raise Unsupported("it filters through a join that cannot be restated")
        field = getattr(join, "join_field", None)
        if field is None or not getattr(field, "concrete", False) or not (field.many_to_one or field.one_to_one):
            raise Unsupported("it filters across a many-valued relation")
        path.insert(0, field.name)
        alias = join.parent_alias
        seen += 1
    return path


def _code(value) -> str:
    """Python source for a lookup value."""
    if hasattr(value, "resolve_expression"):
        raise Unsupported("it compares with an expression (F(), Subquery...)")
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        value = value.pk
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        if value == value.to_integral_value() and abs(value) < 10**15:
            return str(int(value))
        return f'Decimal("{value}")'
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None and value.utcoffset() == datetime.timedelta(0):
            naive = value.replace(tzinfo=None)
            return repr(naive)[:-1] + ", tzinfo=datetime.timezone.utc)"
        if value.tzinfo is None:
            return repr(value)
        raise Unsupported("it compares with a datetime in a named time zone")
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
        return repr(value)
    if isinstance(value, uuid.UUID):
        return f'UUID("{value}")'
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else list(value)
        return "[" + ", ".join(_code(v) for v in items) + "]"
    raise Unsupported(f"it compares with a {type(value).__name__}")


def q_code(tree, prefix="") -> str:
    """``Q(...)`` source for a filter tree, each lookup under ``prefix`` (``"books__"``)."""
    if tree[0] == "lookup":
        return f"Q({prefix}{tree[1]}={tree[2]})"
    kind, negated, children = tree
    sep = " & " if kind == "and" else " | "
    parts = [q_code(c, prefix) for c in children]
    text = sep.join(parts)
    if negated:
        return f"~({text})" if len(parts) > 1 else f"~{text}"
    return f"({text})" if len(parts) > 1 else text


def filter_args(tree) -> str:
    """Arguments for ``.filter(...)``: plain keywords when the tree is a conjunction of
    lookups, else one ``Q`` expression."""
    if tree[0] == "lookup":
        return f"{tree[1]}={tree[2]}"
    kind, negated, children = tree
    if kind == "and" and not negated and all(c[0] == "lookup" for c in children):
        names = [c[1] for c in children]
        if len(set(names)) == len(names):
            return ", ".join(f"{c[1]}={c[2]}" for c in children)
    return q_code(tree)
