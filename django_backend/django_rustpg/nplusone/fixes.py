"""The fix a loop finding suggests: ``select_related`` / ``prefetch_related`` paths,
``Prefetch`` querysets, annotations, and ``fetch_mode(FETCH_PEERS)``; each checked by
``fix_check.validate`` before it is shown."""

from __future__ import annotations

import json
import linecache
import re

from . import _markers as rt
from .relations import _sql_relation
from .sources import _best_source, _owner_model

def _fetch_peers_fix(path, by_path, n_prefix, root, shape, reason, step=None):
    """``fetch_mode(models.FETCH_PEERS)`` (Django >= 6.1) when every step of the path is
    a single-valued relation or a deferred field: one query per step for all the rows
    instead of one per row. Feature-detected: None on older Django."""
    from django.db import models

    from . import fix_check

    if getattr(models, "FETCH_PEERS", None) is None or reason or n_prefix or shape & rt.M_VALUES:
        return None
    steps = [by_path.get(tuple(path[: i + 1])) for i in range(len(path))] if path else []
    kinds = [s.how if s is not None else None for s in steps]
    if not path and step is not None and step.how == "deferred":
        kinds = ["deferred"]
    if not kinds or not all(k in ("forward", "reverse_one", "deferred") for k in kinds):
        return None
    fix = _validated(fix_check.Fix(text="fetch_mode(models.FETCH_PEERS)", root=root))
    if fix.refused:
        return None
    # Steps the root query already joined (select_related) need no query.
    fix.queries = 1 + (1 if kinds == ["deferred"] else sum(1 for st in steps if st is not None and st.relation))
    return fix


def _existing_prefetches(root_src, groups, reg) -> tuple:
    """First-level prefetch_related() paths the root query ran (their queries remain
    after a fix that adds another lookup)."""
    if root_src is None:
        return ()
    out = []
    for h in groups.values():
        if h.markers & rt.M_PREFETCH and any(sid == root_src.id for sid, _c, _n in h.sources or []):
            step = _sql_relation(h, reg, root_src, None)
            if step is not None and step.name and step.name not in out:
                out.append(step.name)
    return tuple(out)


def _validated(fix, existing=()):
    from . import fix_check

    fix.existing = existing
    try:
        return fix_check.validate(fix)
    except Exception as e:  # the validator must never break reporting
        return fix_check.refused(f"the validator failed ({type(e).__name__}: {e})")


def _shaped(g) -> bool:
    """A related manager the loop filtered, ordered, sliced or aggregated."""
    qs = (g.ctx or {}).get("qs") or {}
    if not qs.get("instance"):
        return False
    return bool(qs.get("filters") or qs.get("order_by") or qs.get("slice") or qs.get("error")
                or qs.get("no_default_ordering") or qs.get("values") or qs.get("call") in ("count", "aggregate", "exists"))


def _repeats_on_line(g, name) -> int:
    """``g.parent.parent.name``: how often the self-referential step is chained on the
    call-site line (at least 1)."""
    frames = g.frames or []
    if not frames:
        return 1
    code, line = frames[0]
    text = linecache.getline(code.co_filename, line)
    best = 1
    for m in re.finditer(rf"(?:\.{re.escape(name)}\b)+", text):
        best = max(best, m.group(0).count("." + name))
    return best


def _path_fixes(paths, by_path, n_prefix, root, shape, reason):
    from . import fix_check

    if reason:
        return fix_check.refused(reason, root)
    if shape & rt.M_VALUES:
        return fix_check.refused("the rows come from values()/values_list(): there are no model instances to "
                              "attach related objects to (name the related fields in values() instead)", root)
    text = _path_fix(paths, by_path, n_prefix) if len(paths) == 1 else None
    if text is None:
        leaves = ["__".join(p) for p in paths]
        many = n_prefix > 0 or any(s.many for s in by_path.values())
        call = "prefetch_related" if many else "select_related"
        text = f"{call}({', '.join(json.dumps(p) for p in leaves)})"
    fix = fix_check.Fix(text=text, root=root)
    if shape & rt.M_ITERATOR and "prefetch_related" in text:
        fix.usage = "iterator() needs chunk_size=... for prefetch_related() to run"
    return fix


def _subquery_aggregates(aggs, step, root, joined, tree, loop):
    """``aggregate()`` per row over a reverse foreign key when the root query already
    groups: one correlated subquery per aggregate (a join would multiply the rows)."""
    from . import fix_check, _querysets

    owner = _owner_model(step)
    rel = None
    for r in (owner._meta.related_objects if owner is not None else ()):
        if r.get_accessor_name() == step.name and r.many_to_one is False and r.one_to_many:
            rel = r
    if rel is None:
        return fix_check.refused("the root query already aggregates (GROUP BY) and the relation is not a reverse "
                              "foreign key: neither annotate() nor a simple Subquery restates it", root)
    model, fk = rel.related_model, rel.field.name
    outer = "__".join(joined) if joined else "pk"
    base = f'{fix_check.manager_expr(model)}.filter({fk}=OuterRef("{outer}"))'
    if tree:
        base += f".filter({_querysets.filter_args(tree)})"
    parts, attrs = [], []
    for alias, fn, fname, distinct in aggs:
        attr = alias.replace("__", "_")
        attrs.append(attr)
        extra = ", distinct=True" if distinct else ""
        sub = f'Subquery({base}.order_by().values("{fk}").annotate(v={fn}("{fname}"{extra})).values("v"))'
        if fn == "Count":
            sub = f"Coalesce({sub}, 0)"
        parts.append(f"{attr}={sub}")
    return fix_check.Fix(text=f"annotate({', '.join(parts)})", root=root, attr=attrs[0], loop=loop,
                      usage="read " + ", ".join(f"row.{a}" for a in attrs) + " instead of calling aggregate()")


def _special_fix(g, step, groups, reg, root, prefix, joined, shape, reason, node_path=(), level=0, nested_src=False,
                 grouped=False):
    """Fixes that are not a plain relation path: counts and aggregates per row, a
    related manager filtered/ordered/sliced per row, a deferred field, get() per id."""
    from . import fix_check, _querysets

    ctx = g.ctx or {}
    loop = dict(ctx.get("qs") or {})
    how = step.how
    if how == "get":
        if loop.get("instance"):
            return fix_check.refused("get() on a related manager per row: no single query returns the same rows")
        model = reg.model((g.tables or [None])[0]) if reg else None
        fld = None
        for table, column, _many in g.filters or []:
            fld = reg.field_by_column(model, column) if model is not None else None
            break
        if model is None or fld is None or not (fld.primary_key or fld.unique) or len(g.filters or []) != 1:
            return fix_check.refused("get() filters on more than one unique field: in_bulk() cannot replace it")
        text = "in_bulk()" if fld.primary_key else f'in_bulk([...], field_name="{fld.name}")'
        src, _ = _best_source(g, groups, reg)
        return fix_check.Fix(text=text, root=model, pattern=True, queries=2 if src is not None else 1,
                          usage=f"{model.__name__}.objects.{text.replace('()', '(ids)')} once, then look rows up by key")
    if reason:
        return fix_check.refused(reason, root)
    if how == "deferred":
        model = root
        fields = fix_check.loaded_fields(getattr(_best_source(g, groups, reg)[0], "sql", None), model) if model else None
        name = (step.relation or "").rsplit(".", 1)[-1]
        if model is None or fields is None or not name:
            return fix_check.refused("the fields the root query loaded are unknown")
        text = f"only({', '.join(json.dumps(n) for n in [*fields, name])})"
        return fix_check.Fix(text=text, root=model)
    if loop.get("error"):
        return fix_check.refused(f"the loop's queryset cannot be restated: {loop['error']}", root)
    if shape & rt.M_VALUES:
        return fix_check.refused("the rows come from values()/values_list(): annotate() or a prefetch would change "
                              "the rows the loop reads", root)
    if not step.name:
        return fix_check.refused("the statement's relation is unknown", root)
    call = loop.get("call")
    if call == "iterate" and step.many and node_path:
        path = "__".join(node_path)
    elif prefix or level or nested_src:
        return fix_check.refused("the rows came from a prefetch or an outer per-row query: the fix belongs in "
                              "that query's own queryset (Prefetch(queryset=...))", root)
    else:
        path = "__".join(joined + [step.name])
    tree = loop.get("filters")
    flt = f", filter={_querysets.q_code(tree, path + '__')}" if tree else ""
    if how in ("count", "exists", "aggregate") and loop.get("slice"):
        return fix_check.refused(f"the loop slices the related manager before {how}(): annotate() cannot slice", root)
    # The root query already aggregates (GROUP BY): one more many-valued join would
    # multiply its rows and so its own aggregates: a correlated subquery instead.
    dist = ""
    if how == "count" and grouped:
        loop["call"] = "count"
        fix = _subquery_aggregates([[f"{step.name}_count", "Count", "pk", False]], step, root, joined, tree, loop)
        if not fix.refused:
            fix.usage = f"read row.{step.name}_count instead of calling count()"
        return fix
    if how == "count":
        loop["call"] = "count"
        if not tree:
            return fix_check.Fix(text=f'annotate(Count("{path}"{dist}))', root=root, attr=f"{path}__count", loop=loop,
                              usage=f"read row.{path}__count instead of calling count()")
        attr = f"{step.name}_count"
        return fix_check.Fix(text=f'annotate({attr}=Count("{path}"{dist}{flt}))', root=root, attr=attr, loop=loop,
                          usage=f"read row.{attr} instead of calling count()")
    if how == "exists":
        loop["call"] = "exists"
        if not tree:
            return fix_check.Fix(text=f'prefetch_related("{path}")', root=root, loop=None)
        attr = f"has_{step.name}"
        return fix_check.Fix(text=f'annotate({attr}=Count("{path}"{flt}))', root=root, attr=attr, loop=loop,
                          usage=f"test row.{attr} > 0 instead of calling exists()")
    if how == "aggregate":
        aggs = loop.get("aggregates") or []
        if not aggs or aggs[0][0] == "error":
            return fix_check.refused(f"the aggregate cannot be restated: {aggs[0][1] if aggs else 'unknown'}", root)
        if grouped:
            return _subquery_aggregates(aggs, step, root, joined, tree, loop)
        parts, attrs = [], []
        for alias, fn, fname, distinct in aggs:
            attr = alias.replace("__", "_")
            attrs.append(attr)
            extra = ", distinct=True" if distinct else ""
            parts.append(f'{attr}={fn}("{path}__{fname}"{extra}{flt})')
        return fix_check.Fix(text=f"annotate({', '.join(parts)})", root=root, attr=attrs[0], loop=loop,
                          usage="read " + ", ".join(f"row.{a}" for a in attrs) + " instead of calling aggregate()")
    if call == "iterate" and step.many:
        if loop.get("values"):
            return fix_check.refused("the loop reads the related manager with values(): Prefetch cannot", root)
        target = reg.model((g.tables or [None])[0]) if reg else None
        hops = fix_check.resolve_path(root, path) if root is not None else None
        if isinstance(hops, list) and hops[-1].model is not None:
            target = hops[-1].model
        if target is None:
            return fix_check.refused("the related model is unknown", root)
        qs = fix_check.manager_expr(target)
        if tree:
            qs += f".filter({_querysets.filter_args(tree)})"
        if loop.get("order_by") or loop.get("no_default_ordering"):
            qs += f".order_by({', '.join(json.dumps(o) for o in loop.get('order_by') or [])})"
        if loop.get("slice"):
            lo, hi = loop["slice"]
            qs += f"[{lo or ''}:{'' if hi is None else hi}]"
        attr = f"{step.name}_list"
        return fix_check.Fix(text=f'prefetch_related(Prefetch("{path}", queryset={qs}, to_attr="{attr}"))',
                          root=root, attr=attr, loop=loop,
                          usage=f"read row.{attr} (a list) instead of the filtered/ordered manager")
    return fix_check.refused(f"no fix is known for {how}() per row", root)


def _path_fix(leaf_paths, by_path, n_prefix) -> str | None:
    """The fix for one relation path with the fewest queries, or None (the caller then
    names the plain path). Single-valued steps before the first many-valued one join the
    root query (``select_related``); single-valued steps after the last many-valued one
    join that prefetch's own query (``Prefetch(..., queryset=...select_related(...))``):
    ``books`` then ``editor`` is 2 queries this way, 3 as ``prefetch_related("books__editor")``.
    Steps of a prefetch the code already has (``n_prefix``) are never rewritten: a second
    lookup with a queryset for a path Django already prefetched is an error."""
    if len(leaf_paths) != 1:
        return None
    path = leaf_paths[0]
    steps = [None if i < n_prefix else by_path.get(tuple(path[: i + 1])) for i in range(len(path))]
    if any(i >= n_prefix and s is None for i, s in enumerate(steps)):
        return None
    single = [s is not None and not s.many and s.how in ("forward", "reverse_one") for s in steps]
    if all(single):
        return f"select_related({json.dumps('__'.join(path))})"
    first_many = single.index(False)
    last_many = max(i for i, one in enumerate(single) if not one)
    parts = []
    if first_many:
        parts.append(f"select_related({json.dumps('__'.join(path[:first_many]))})")
    trailing = path[last_many + 1:]
    arg = json.dumps("__".join(path))
    if trailing and last_many >= n_prefix:
        manager = _manager_expr(steps[last_many + 1].relation)  # type: ignore[union-attr]
        if manager is not None:
            arg = (f"Prefetch({json.dumps('__'.join(path[: last_many + 1]))}, "
                   f"queryset={manager}.select_related({json.dumps('__'.join(trailing))}))")
    parts.append(f"prefetch_related({arg})")
    return ".".join(parts)


def _manager_expr(relation) -> str | None:
    """``Book.objects`` for the model owning ``"shop.Book.editor"``."""
    try:
        from django.apps import apps

        model = apps.get_model(relation.rsplit(".", 1)[0])
        return f"{model.__name__}.{model._default_manager.name}"
    except Exception:
        return None
