"""Write findings: ``save()``, ``delete()``, ``QuerySet.update()``... once per row, and
the batch operation that replaces them."""

from __future__ import annotations

import json
import os
import re

from . import _markers as rt
from .findings import _callsite, _finding
from .fixes import _validated
from .relations import _loaded_model
from .sources import _best_source

WRITE_KINDS = ("insert", "update", "delete")


def _write_findings(groups, reg, scope_name, test_file=None) -> list:
    """Writes run once per row: ``save()``, ``delete()``, ``QuerySet.update()``... in a
    loop. Repetitions count calls of the Django operation, not statements, so one
    batched ``bulk_create()`` or one cascading ``delete()`` is one. The statements of one
    operation at one call site (a cascade's SELECTs and DELETEs, a multi-table save)
    make one finding. In a test's scope, writes called from the test's own module are
    the test arranging its data and are left out."""
    test_file = os.path.normcase(os.path.abspath(test_file)) if test_file else None
    by_site = {}
    for g in sorted(groups.values(), key=lambda g: g.first_seq):
        frames = g.frames or []
        if test_file and frames and os.path.normcase(os.path.abspath(frames[0][0].co_filename)) == test_file:
            continue
        is_operation = g.markers & rt.OPERATION
        if not (is_operation or g.kind in WRITE_KINDS):
            continue
        if not g.reached or g.distinct < 2:
            continue
        ctx = g.ctx or {}
        # Without Django's frames (not captured), the marker bits still name the operation.
        operation = (ctx.get("kind") or _operation_from_markers(g.markers)) if is_operation else "sql"
        key = (tuple(frames), operation, ctx.get("model"))  # text only for the findings
        by_site.setdefault(key, []).append(g)
    findings = []
    for (_frames, operation, model_label), members in by_site.items():
        writes = [g for g in members if g.kind in WRITE_KINDS]
        if not writes:
            continue
        own = [g for g in writes if _loaded_model(g, reg) == model_label]
        g = (own or writes)[-1 if operation == "delete" else 0]  # a cascade deletes its root last
        src, _col = _best_source(g, groups, reg)
        callsite, function, stack = _callsite(g)
        ctx = g.ctx or {}
        related = operation.startswith("related_") and model_label and ctx.get("field")
        relation = f"{model_label}.{ctx['field']}" if related else None
        f = _finding(
            "n_plus_one", g, sum(m.count for m in members), sum(m.total_ms for m in members), relation,
            None, src, callsite, function, stack, [], scope_name, distinct=g.distinct,
        )
        checked = _validated(_write_fix_checked(g, operation, reg))
        f.fix, f.no_fix_reason = (None, checked.refused) if checked.refused else (checked.text, None)
        f.operation = operation
        findings.append(f)
    return findings


def _operation_from_markers(markers) -> str:
    """The outermost operation a statement ran under, as far as marker bits tell."""
    for bit in (rt.M_RELATED, rt.M_DELETE, rt.M_SAVE, rt.M_QS_UPDATE, rt.M_QS_DELETE, rt.M_BULK_CREATE, rt.M_BULK_UPDATE):
        if markers & bit:
            return rt.MARKER_NAMES[bit]
    return "write"


def _write_fix_checked(g, operation, reg):
    """The write fix as a pattern Fix, its model and field names checked."""
    from . import fix_check

    text = _write_fix(g, operation, reg)
    model = reg.model((g.tables or [None])[0]) if reg is not None else None
    if text is None:
        return fix_check.refused(f"no batch operation is known for {operation}() per row")
    return fix_check.Fix(text=text, root=model, pattern=True)


def _write_fix(g, operation, reg) -> str | None:
    kind = g.kind
    model = reg.model((g.tables or [None])[0]) if reg is not None else None
    if kind == "insert" and operation in ("save", "bulk_create"):
        return "bulk_create([...])"
    if kind == "update" and operation in ("save", "bulk_update"):
        fields = ((g.ctx or {}).get("update_fields") if operation == "save" else None) or _set_fields(g, model, reg)
        return f"bulk_update([...], {json.dumps(fields)})" if fields else "bulk_update([...], [...])"
    if operation == "delete":
        return "filter(pk__in=[...]).delete()"
    ctx = g.ctx or {}
    if operation == "related_add" and ctx.get("many_to_many") and ctx.get("model") and ctx.get("field"):
        owner = ctx["model"].rsplit(".", 1)[-1]
        return f"{owner}.{ctx['field']}.through.objects.bulk_create([...])"
    if operation in ("queryset_update", "queryset_delete"):
        lookup = _filter_lookup(g, model, reg)
        verb = "update(...)" if operation == "queryset_update" else "delete()"
        return f"filter({lookup}__in=[...]).{verb}" if lookup else None
    return None


def _set_fields(g, model, reg) -> list:
    """Field names an UPDATE assigns (``SET "price" = ...``), primary key excluded."""
    m = re.search(r"\bSET\b(.*?)(?:\bWHERE\b|$)", g.sql or "", re.S | re.I)
    if m is None or model is None:
        return []
    names = []
    for column in re.findall(r'(?:\bSET\b|^|,)\s*"([^"]+)"\s*=', "SET" + m.group(1), re.I):
        fld = reg.field_by_column(model, column)
        if fld is not None and not fld.primary_key and fld.name not in names:
            names.append(fld.name)
    return names


def _filter_lookup(g, model, reg) -> str | None:
    """``pk`` or the field name a write filters on (``author`` for ``author_id``)."""
    for _table, column, _many in g.filters or []:
        fld = reg.field_by_column(model, column) if model is not None else None
        if fld is not None:
            return "pk" if fld.primary_key else fld.name
    return None
