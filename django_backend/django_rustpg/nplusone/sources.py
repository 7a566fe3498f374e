"""Where a group's parameter values came from: the earlier result set (the loop's rows)
that held them, checked for plausibility through the app registry."""

from __future__ import annotations

from . import _markers as rt
from .relations import Step, _sql_relation

# Executions sharing one source that confirm a group whatever their share (the driver
# remembers the first 5,000 rows of each result set).
CONFIRM_HITS = 1000


def _step(g, reg, groups) -> Step:
    ctx = g.ctx or {}
    how = ctx.get("kind")
    markers = g.markers or 0
    if how is None:
        for bit in (rt.M_FORWARD, rt.M_REVERSE_ONE, rt.M_GFK, rt.M_DEFERRED, rt.M_COUNT, rt.M_EXISTS, rt.M_GET, rt.M_REFRESH):
            if markers & bit:
                how = rt.MARKER_NAMES[bit]
                break
    model, name = ctx.get("model"), ctx.get("field")
    if how == "forward" and model and name:
        return Step("forward", f"{model}.{name}", name, False, f'select_related("{name}")')
    if how == "reverse_one" and model and name:
        return Step("reverse_one", f"{model}.{name}", name, False, f'select_related("{name}")')
    if how == "gfk" and model and name:
        return Step("gfk", f"{model}.{name}", name, True, f'prefetch_related("{name}")')
    if how == "deferred" and model and name:
        return Step("deferred", f"{model}.{name}", None, False, f'remove only()/defer() so "{name}" is loaded with the rows')
    source, column = _best_source(g, groups, reg)
    sql_step = _sql_relation(g, reg, source, column)
    qs_call = (ctx.get("qs") or {}).get("call")
    if how is None and qs_call == "aggregate":
        how = "aggregate"
    if how == "aggregate":
        if sql_step and sql_step.name:
            return Step("aggregate", sql_step.relation, sql_step.name, True, None)
        return Step(how, None, None, False, None)
    if how in ("count", "exists"):
        if sql_step and sql_step.name:
            accessor = sql_step.name
            if how == "count" or g.count_only:
                return Step("count", sql_step.relation, accessor, True, f'annotate(Count("{accessor}"))')
            return Step("exists", sql_step.relation, accessor, True, f'prefetch_related("{accessor}")')
        return Step(how, None, None, False, None)
    if how == "get":
        return Step("get", None, None, False, "in_bulk()")
    if sql_step is not None:
        sql_step.fix = (
            f'prefetch_related("{sql_step.name}")' if sql_step.many else f'select_related("{sql_step.name}")'
        )
        return sql_step
    if how == "refresh":
        return Step("refresh", None, None, False, None)
    return Step(how or "query", None, None, False, None)


def _best_source(g, groups, reg=None, prefer=None):
    """(source group, column) when the confirmed check holds, else (None, None).

    Small integer keys of different tables often coincide, so a value can have several
    sources; with the app registry, sources whose column cannot hold this statement's
    key (not a foreign key to the filtered model, not its primary key...) are dropped
    first. ``prefer`` (a model) picks the sources whose rows are that model's first: a
    related manager's key belongs to its owner's rows, not to a prefetch of the same
    relation that loaded the key too. Ties go to the most recent source (the nearest
    enclosing loop)."""
    count = g.count
    cands = []
    for sid, column, hits in g.sources or []:
        src = groups.get(sid)
        if src is not None and sid != g.id and hits >= 2 and (hits * 2 >= count or hits >= CONFIRM_HITS):
            cands.append((hits, src.first_seq, src, column))
    if not cands:
        return None, None
    if reg is not None:
        plausible = [c for c in cands if _plausible(g, c[2], c[3], reg)]
        cands = plausible if (plausible or prefer is not None) else cands
        if not cands:
            return None, None
        if prefer is not None:
            own = [c for c in cands if _is_model(reg.model((c[2].tables or [None])[0]), prefer)]
            cands = own or cands
    hits, _seq, src, column = max(cands, key=lambda c: (c[0], c[1]))
    return src, column


def _is_model(model, target) -> bool:
    return model is not None and target is not None and (model is target or issubclass(model, target))


def _self_referential(model, name) -> bool:
    try:
        return model._meta.get_field(name).related_model is model
    except Exception:
        return False


def _plausible(g, src, column, reg) -> bool:
    """Could rows of ``src`` hold the key ``g`` filters on? (Unknown: True.)

    Judged by models, not by the recorded column: a value seen in two columns of one
    row is remembered with the first, and small keys of different tables coincide."""
    try:
        tables = g.tables or []
        filters = g.filters or []
        if not filters:
            return True
        table, fcol, _many = filters[0]
        model = reg.model(table or (tables[0] if tables else None))
        smodel = reg.model((src.tables or [None])[0])
        if model is None or smodel is None:
            return True
        fld = reg.field_by_column(model, fcol)
        if fld is None:
            return True
        if fld.is_relation and not fld.primary_key:
            target = fld.related_model  # rows pointing at `target`: reverse FK, M2M, reverse one-to-one
        elif fld.primary_key or getattr(fld, "unique", False):
            target = model  # rows of `model` by key: forward FK, GFK, .get(), reload
        else:
            return True
        if smodel is target or issubclass(smodel, target) or issubclass(target, smodel):
            return True
        # The source's own model, or one it joined (select_related).
        for m in [smodel] + [reg.model(t) for t in (src.tables or [])[1:]]:
            if m is None:
                continue
            for f in m._meta.get_fields():
                if getattr(f, "concrete", False) and f.is_relation and f.related_model is target:
                    return True
            if any(hasattr(f, "fk_field") for f in m._meta.private_fields):
                return True
        return False
    except Exception:
        return True


def _prefetch_prefix(src, groups, reg, depth=0) -> tuple:
    """When rows came from a prefetch query ``src``: (the path that prefetch followed,
    the group of the root query the path starts from)."""
    if depth > 8 or src is None or not (src.markers & rt.M_PREFETCH):
        return [], src
    step = _sql_relation(src, reg, *_best_source(src, groups, reg))
    if step is None or not step.name:
        return [], src
    owner = _owner_model(step)
    # A prefetch query runs once (its keys in one IN list): any earlier result set of
    # the owner's rows that held them is where it started.
    up = None
    for sid, _column, _hits in src.sources or []:
        cand = groups.get(sid)
        if cand is not None and sid != src.id and _is_model(reg.model((cand.tables or [None])[0]), owner):
            if up is None or cand.first_seq > up.first_seq:
                up = cand
    if up is None:
        return [step.name], None
    prefix, root = _prefetch_prefix(up, groups, reg, depth + 1)
    return prefix + [step.name], root


def _owner_model(step):
    """The model whose instances the loop reads ``step`` from."""
    if step is None or not step.relation:
        return None
    try:
        from django.apps import apps

        return apps.get_model(step.relation.rsplit(".", 1)[0])
    except Exception:
        return None
