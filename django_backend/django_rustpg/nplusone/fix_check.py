"""Fix text for a finding, and the validator every fix passes before it is shown.

A fix is code appended to the queryset the loop's rows came from (the *root*
queryset): ``select_related("book__author")``, ``prefetch_related(Prefetch(...))``,
``annotate(...)``. The validator

- resolves every path from the root model through the app registry
  (``select_related`` only over single-valued relations; ``prefetch_related`` paths
  must resolve; a ``Prefetch``'s queryset must load the relation's model),
- checks the fix asks for what the loop asked for (a loop that filters, orders or
  slices a related manager needs ``Prefetch(queryset=...)`` restating exactly that; a
  loop that counts or aggregates needs ``annotate()`` with the same filter),
- evaluates the fix on ``Root.objects.all()`` (never runs it) and compiles its SQL (and
  the SQL of every ``Prefetch`` queryset), so a ``FieldError`` is caught here.

A fix that fails is not shown: the finding says ``no safe fix found`` and why.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from dataclasses import dataclass


@dataclass
class Fix:
    text: str | None = None
    root: object = None  # the model class of the root queryset
    queries: int | None = None  # queries of the loop once fixed (root query included)
    attr: str | None = None  # what the loop reads instead (to_attr, annotation)
    usage: str | None = None  # how the loop changes, when it must
    pattern: bool = False  # not queryset methods (in_bulk(), bulk_update(...))
    refused: str | None = None  # why no safe fix was found
    loop: dict | None = None  # what the loop asked for (filters, ordering, count...)
    existing: tuple = ()  # prefetch paths the root queryset already runs (their queries stay)


def refused(reason, root=None) -> Fix:
    return Fix(root=root, refused=reason)


# ---------------------------------------------------------------------------- names

def namespace(extra_models=()) -> dict:
    """Names a fix may use, for evaluating it: the query expressions and every model by
    class name (names used by two models are left out: a fix naming them is refused)."""
    from django.apps import apps
    from django.db import models
    from django.db.models import functions

    ns = {
        "Q": models.Q, "F": models.F, "Prefetch": models.Prefetch, "Count": models.Count, "Sum": models.Sum,
        "Avg": models.Avg, "Min": models.Min, "Max": models.Max, "StdDev": models.StdDev,
        "Variance": models.Variance, "Exists": models.Exists, "OuterRef": models.OuterRef,
        "Subquery": models.Subquery, "Coalesce": functions.Coalesce, "Value": models.Value,
        "Decimal": decimal.Decimal, "datetime": datetime, "UUID": uuid.UUID,
    }
    seen = {}
    for m in apps.get_models():
        seen.setdefault(m.__name__, []).append(m)
    for name, ms in seen.items():
        if len(ms) == 1 and name not in ns:
            ns[name] = ms[0]
    if getattr(models, "FETCH_PEERS", None) is not None:
        ns["models"] = models
    return ns


def manager_expr(model) -> str:
    return f"{model.__name__}.{model._default_manager.name}"


# ---------------------------------------------------------------------------- registry paths

@dataclass
class Hop:
    name: str
    model: object  # the model this hop leads to (None for a GenericForeignKey)
    many: bool
    kind: str  # "forward" | "reverse_one" | "reverse_fk" | "m2m" | "gfk"


def resolve_hop(model, name) -> Hop | None:
    """One step of a lookup path from ``model``, by field name or reverse accessor."""
    from django.core.exceptions import FieldDoesNotExist

    for f in model._meta.private_fields:
        if f.name == name and hasattr(f, "fk_field"):
            return Hop(name, None, False, "gfk")
    try:
        f = model._meta.get_field(name)
    except FieldDoesNotExist:
        f = None
    if f is not None and f.is_relation and not f.auto_created and f.concrete:
        if f.many_to_many:
            return Hop(name, f.related_model, True, "m2m")
        return Hop(name, f.related_model, False, "forward")
    if f is not None and f.is_relation and getattr(f, "many_to_many", False) and not f.concrete and not f.auto_created:
        return Hop(name, f.related_model, True, "m2m")  # GenericRelation
    for rel in model._meta.related_objects:
        if rel.get_accessor_name() == name:
            if rel.one_to_one:
                return Hop(name, rel.related_model, False, "reverse_one")
            return Hop(name, rel.related_model, True, "m2m" if rel.many_to_many else "reverse_fk")
    return None


def resolve_path(model, path) -> list | str:
    """[Hop] for ``a__b__c`` from ``model``, or the reason it does not resolve."""
    hops = []
    for name in path.split("__"):
        if model is None:
            return f"{path!r}: nothing to follow after the generic relation {hops[-1].name!r}"
        hop = resolve_hop(model, name)
        if hop is None:
            return f"{path!r}: {model._meta.label} has no relation {name!r}"
        hops.append(hop)
        model = hop.model
    return hops


# ---------------------------------------------------------------------------- source joins

_JOIN = re.compile(
    r'(?:INNER|LEFT OUTER) JOIN "(?P<table>[^"]+)"(?: (?P<alias>\w+))? ON '
    r'\("?(?P<la>[\w]+)"?\."(?P<lc>[^"]+)" = "?(?P<ra>[\w]+)"?\."(?P<rc>[^"]+)"\)'
)


def joined_paths(sql, root, reg) -> dict:
    """The select_related paths a statement joined: {path tuple: model}. Parent-link
    joins (multi-table inheritance) are the same object: no path step."""
    paths = {(): root}
    if not sql or reg is None:
        return paths
    base = root._meta.db_table
    by_alias = {base: ((), root)}
    for m in _JOIN.finditer(sql.split(" WHERE ", 1)[0]):
        table, alias = m.group("table"), m.group("alias") or m.group("table")
        child = reg.model(table)
        if child is None:
            continue
        for la, lc, ra, rc in ((m["la"], m["lc"], m["ra"], m["rc"]), (m["ra"], m["rc"], m["la"], m["lc"])):
            if ra != alias or la not in by_alias:
                continue
            ppath, pmodel = by_alias[la]
            step = _join_step(pmodel, lc, child, rc)
            if step is None:
                continue
            name, parent_link = step
            path = ppath if parent_link else ppath + (name,)
            by_alias[alias] = (path, pmodel if parent_link and issubclass(pmodel, child) else child)  # type: ignore[assignment]
            paths.setdefault(path, by_alias[alias][1])  # type: ignore[arg-type]
            break
    return paths


def _join_step(pmodel, pcol, child, ccol):
    for f in pmodel._meta.concrete_fields:
        if f.is_relation and f.column == pcol and issubclass(child, f.related_model) or (
                f.is_relation and f.column == pcol and issubclass(f.related_model, child)):
            return f.name, bool(getattr(f.remote_field, "parent_link", False))
    for f in child._meta.concrete_fields:
        if f.is_relation and f.one_to_one and f.column == ccol and issubclass(pmodel, f.related_model):
            if getattr(f.remote_field, "parent_link", False):
                return f.name, True
            return f.remote_field.get_accessor_name(), False
    return None


def path_to(paths, model) -> tuple | str:
    """The one joined path whose rows are ``model`` instances (shortest first)."""
    found = sorted((p for p, m in paths.items() if m is model or issubclass(m, model)), key=len)
    if not found:
        return f"the rows of {model._meta.label} did not come from the root query's select_related()"
    if len(found) > 1 and len(found[0]) == len(found[1]):
        names = ", ".join('"' + "__".join(p) + '"' for p in found[:2])
        return f"{model._meta.label} is joined twice in the root query ({names}): ambiguous"
    return found[0]


def loaded_fields(sql, model) -> list | None:
    """Field names of ``model``'s own columns a SELECT loaded (for ``only()``)."""
    m = re.match(r"\s*SELECT\s+(.*?)\s+FROM\s", sql or "", re.S | re.I)
    if m is None:
        return None
    table = model._meta.db_table
    cols = set(re.findall(rf'"{re.escape(table)}"\."([^"]+)"', m.group(1)))
    names = [f.name for f in model._meta.concrete_fields if f.column in cols and not f.primary_key]
    return names


# ---------------------------------------------------------------------------- validator

def validate(fix: Fix) -> Fix:
    """Checks ``fix`` (see the module docs); on failure returns it refused with the reason.
    On success fills ``queries`` when the fix is a queryset fix."""
    if fix.refused or fix.text is None:
        return fix
    if fix.pattern:
        return _validate_pattern(fix)
    root = fix.root
    if root is None:
        return _refuse(fix, "the root queryset's model is unknown")
    from django.core.exceptions import FieldError
    from django.db import models

    ns = namespace()
    ns["qs"] = root._default_manager.all()  # type: ignore[attr-defined]
    try:
        qs = eval(f"qs.{fix.text}", {"__builtins__": {}}, ns)  # our own text, evaluated to prove it
    except (FieldError, TypeError, ValueError, NameError, AttributeError, SyntaxError) as e:
        return _refuse(fix, f"{fix.text} does not build on {manager_expr(root)}: {e}")
    if not isinstance(qs, models.QuerySet):
        return _refuse(fix, f"{fix.text} is not a queryset method chain")
    reason = _compile(qs) or _check_select_related(qs, root) or _check_prefetches(qs, root)
    if reason is None:
        reason = _check_loop(qs, fix)
    if reason:
        return _refuse(fix, reason)
    fix.queries = promised_queries(qs, root, fix.existing)
    return fix


def _validate_pattern(fix) -> Fix:
    """Batch calls (``in_bulk()``, ``bulk_update([...], [...])``, ``filter(x__in=[...])``):
    the model and every field or relation they name must exist."""
    import json

    model = fix.root
    if model is None:
        return _refuse(fix, "the model of the statement is unknown")
    m = re.match(r"bulk_update\(\[\.\.\.\], (\[.*\])\)$", fix.text)
    if m:
        for name in json.loads(m.group(1)) if m.group(1) != "[...]" else []:
            try:
                f = model._meta.get_field(name)
            except Exception:
                return _refuse(fix, f"{model._meta.label} has no field {name!r}")
            if not f.concrete or f.primary_key:
                return _refuse(fix, f"bulk_update() cannot set {model._meta.label}.{name}")
    m = re.match(r"filter\((\w+)__in=", fix.text)
    if m and m.group(1) != "pk" and resolve_hop(model, m.group(1)) is None:
        try:
            model._meta.get_field(m.group(1))
        except Exception:
            return _refuse(fix, f"{model._meta.label} has no field {m.group(1)!r}")
    m = re.match(r'in_bulk\(\[\.\.\.\], field_name="(\w+)"\)', fix.text)
    if m:
        f = model._meta.get_field(m.group(1))
        if not f.unique:
            return _refuse(fix, f"in_bulk() needs a unique field; {model._meta.label}.{f.name} is not")
    return fix


def _refuse(fix, reason) -> Fix:
    fix.refused = reason
    return fix


def _compile(qs) -> str | None:
    from django.core.exceptions import EmptyResultSet, FieldError

    try:
        qs.query.get_compiler(using=qs.db).as_sql()
    except EmptyResultSet:
        return None
    except (FieldError, TypeError, ValueError) as e:
        return f"its SQL does not compile: {e}"
    return None


def _check_select_related(qs, root) -> str | None:
    sr = qs.query.select_related

    def walk(model, tree, prefix):
        if not isinstance(tree, dict):
            return None
        for name, sub in tree.items():
            hop = resolve_hop(model, name)
            path = prefix + [name]
            if hop is None or hop.many or hop.kind == "gfk":
                return f'select_related("{"__".join(path)}") does not follow a single-valued relation'
            reason = walk(hop.model, sub, path)
            if reason:
                return reason
        return None

    return walk(root, sr, [])


def _check_prefetches(qs, root) -> str | None:
    from django.db.models import Prefetch

    for lookup in qs._prefetch_related_lookups:
        path = lookup.prefetch_through if isinstance(lookup, Prefetch) else lookup
        hops = resolve_path(root, path)
        if isinstance(hops, str):
            return f"prefetch_related path does not resolve: {hops}"
        if isinstance(lookup, Prefetch) and lookup.queryset is not None:
            target = hops[-1].model
            pqs = lookup.queryset
            if target is not None and not issubclass(pqs.model, target):
                return f"Prefetch({path!r}) gets a queryset of {pqs.model._meta.label}, not {target._meta.label}"
            reason = _compile(pqs) or _check_select_related(pqs, pqs.model)
            if reason:
                return f"Prefetch({path!r}): {reason}"
    return None


def _check_loop(qs, fix) -> str | None:
    """The fix restates what the loop asked of the related manager, nothing less."""
    loop = fix.loop or {}
    call = loop.get("call")
    shaped = loop.get("filters") or loop.get("order_by") or loop.get("slice") or loop.get("no_default_ordering")
    if call in ("count", "aggregate", "exists"):
        if fix.attr is None or fix.attr not in qs.query.annotations:
            return f"the loop calls {call}() per row: the fix must annotate the result"
        from django.db.models import Aggregate

        annotation = qs.query.annotations[fix.attr]
        # (a Subquery restates the filter inside its own queryset)
        if call != "exists" and loop.get("filters") and isinstance(annotation, Aggregate) and annotation.filter is None:
            return "the loop filters before counting: the aggregate needs the same filter"
        return None
    if call == "iterate" and shaped:
        from django.db.models import Prefetch

        from . import _querysets

        for lookup in qs._prefetch_related_lookups:
            if isinstance(lookup, Prefetch) and lookup.to_attr == fix.attr and lookup.queryset is not None:
                info = _querysets.describe_prefetch(lookup.queryset)
                for key in ("filters", "order_by", "slice"):
                    if (info.get(key) or None) != (loop.get(key) or None):
                        return f"the Prefetch queryset's {key} differ from the loop's"
                return None
        return ("the loop filters, orders or slices the related manager: a plain prefetch is not used there; "
                "it needs Prefetch(queryset=..., to_attr=...)")
    return None


def promised_queries(qs, root, existing=()) -> int:
    """Queries of the loop after the fix: the root query plus one per prefetched level
    not already joined (a generic relation: one per content type; counted as one)."""
    from django.db.models import Prefetch

    joined = set()

    def walk(tree, prefix):
        if isinstance(tree, dict):
            for name, sub in tree.items():
                joined.add(prefix + (name,))
                walk(sub, prefix + (name,))

    walk(qs.query.select_related, ())
    levels = set()
    for lookup in qs._prefetch_related_lookups:
        path = (lookup.prefetch_to if isinstance(lookup, Prefetch) else lookup).split("__")
        through = (lookup.prefetch_through if isinstance(lookup, Prefetch) else lookup).split("__")
        for i in range(1, len(through) + 1):
            key = tuple(through[:i])
            if key not in joined:
                levels.add(tuple(path[:i]) if i == len(through) else key)
    for path in existing:
        levels.add(tuple(path.split("__")))
    return 1 + len(levels)
