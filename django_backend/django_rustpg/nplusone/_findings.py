"""From what the driver recorded in a scope to findings: kinds, relations, fixes.

Runs once per scope, at its end, and only over the groups that reached the threshold
(plus the groups their parameter values came from). Relations come from two places:
the Django frames the driver captured on a group's second run (which descriptor or
queryset method ran) and the parsed statement (its table and filtered column) mapped
through the app registry (table → model, column → field).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from . import _markers as rt
from .findings import Finding, _callsite, _finding, frame_function, frame_text
from .fixes import (
    _existing_prefetches,
    _fetch_peers_fix,
    _path_fixes,
    _repeats_on_line,
    _shaped,
    _special_fix,
    _validated,
)
from .ignore import _ignored, drop_ignored
from .records import Export, from_native
from .relations import Step, _loaded_model, _registry, _sql_relation
from .sources import _best_source, _is_model, _owner_model, _prefetch_prefix, _self_referential, _step
from .writes import _write_findings

__all__ = ["Finding", "build", "drop_ignored", "frame_function", "frame_text"]

def build(export: Export | Mapping[str, Any], *, duplicates: bool = True, rules=(), scope_name=None,
          test_file=None) -> list:
    if not isinstance(export, Export):
        export = from_native(export)
    groups = {g.id: g for g in export.groups}
    reg = _registry()
    candidates = {
        gid: g
        for gid, g in groups.items()
        if g.reached and g.distinct >= 2 and g.kind == "select"
        and not (g.markers & rt.OPERATION)
    }
    steps = {gid: _step(g, reg, groups) for gid, g in candidates.items()}
    # Nesting: a candidate whose parameter values came from another candidate's rows is
    # the inner loop of that one; both become one finding with one path-shaped fix.
    path_kinds = {"forward", "reverse_one", "reverse_fk", "m2m", "gfk"}
    parent = {}
    for gid, g in candidates.items():
        src, _ = _best_source(g, groups, reg)
        if src is not None and src.id in candidates and src.id != gid:
            inner, outer = steps[gid], steps[src.id]
            # Nested only if the inner relation starts from the rows the outer one loaded.
            if (inner.how in path_kinds and outer.how in path_kinds and inner.name and inner.relation
                    and inner.relation.rsplit(".", 1)[0] == _loaded_model(src, reg)):
                parent[gid] = src.id
    # Break cycles defensively.
    for gid in list(parent):
        seen, cur = {gid}, parent.get(gid)
        while cur is not None:
            if cur in seen:
                parent.pop(gid, None)
                break
            seen.add(cur)
            cur = parent.get(cur)
    children = {}
    for child, par in parent.items():
        children.setdefault(par, []).append(child)

    findings = []
    for gid in sorted(candidates, key=lambda i: candidates[i].first_seq):
        if gid in parent:
            continue
        findings.extend(_loop_findings(gid, candidates, groups, steps, children, reg, scope_name))

    findings.extend(_write_findings(groups, reg, scope_name, test_file))

    if duplicates:
        covered = set(candidates)
        merged = {}
        for d in export.duplicates:
            gids = tuple(sorted(d.groups))
            if all(x in covered for x in gids):
                continue
            m = merged.setdefault(gids, {"count": 0, "total_ms": 0.0, "distinct": 0, "fingerprint": d.fingerprint})
            m["count"] += d.count
            m["total_ms"] += d.total_ms
            m["distinct"] += 1
        for gids, m in merged.items():
            first = groups.get(gids[0])
            if first is None or first.kind != "select":
                continue
            g = first
            step = _step(g, reg, groups)
            fix = step.fix if step.how in ("forward", "reverse_one") else None
            checked = None
            if fix:
                from . import fix_check

                checked = _validated(fix_check.Fix(text=fix, root=_owner_model(step)))
                fix = checked.text if not checked.refused else None
            callsite, function, stack = _callsite(g)
            if len(gids) > 1:
                stack = [_callsite(groups[x])[0] for x in gids if x in groups]
            f = _finding(
                "duplicate", g, m["count"], m["total_ms"], step.relation, fix, None, callsite, function, stack, [],
                scope_name, distinct=m["distinct"],
            )
            f.confirmed = True
            if checked is not None:
                f.fix_queries, f.no_fix_reason = checked.queries, checked.refused
            else:
                f.no_fix_reason = ("the same statement with the same parameters, not a relation of loaded rows: "
                                   "keep the first result instead of asking again")
            findings.append(f)
    for f in findings:
        _classify_framework(f)
    return [f for f in findings if not _ignored(f, rules)]


DESCRIPTOR_KINDS = ("forward", "reverse_one", "gfk", "deferred")


def _classify_framework(f):
    """Framework finding: no application frame at all, or issued by django.contrib code
    (not through a relation the application read). Its call site is never
    ``<unknown>``: without application frames it is the Django frame."""
    ctx = getattr(f, "_ctx", None) or {}
    where = ctx.get("django_frame")
    f.django_frame = where
    contrib = bool(where) and where.replace(os.sep, "/").startswith("django/contrib/")
    if f.source_callsite == "<unknown>":
        f.source_callsite = "django code (no application frame)"
    if f.callsite == "<unknown>":
        f.framework = True
        f.callsite = where or "django code (no application frame)"
    elif contrib and ctx.get("kind") not in DESCRIPTOR_KINDS and not f.operation:
        f.framework = True


PATH_KINDS = ("forward", "reverse_one", "reverse_fk", "m2m", "gfk")


def _loop_findings(gid, candidates, groups, steps, children, reg, scope_name) -> list:
    """One finding per level of a (possibly nested) loop, each with a validated fix or
    the reason none is shown."""
    from . import fix_check

    g = candidates[gid]
    step = steps[gid]
    owner = _owner_model(step)
    src, _col = _best_source(g, groups, reg, prefer=owner)
    prefix, root_src = [], src
    if src is not None and _is_model(reg.model((src.tables or [None])[0]) if reg else None, owner):
        prefix, root_src = _prefetch_prefix(src, groups, reg)
    root = reg.model((root_src.tables or [None])[0]) if (root_src is not None and reg) else None
    if root is None and prefix:
        hop_owner = _owner_model(_sql_relation(src, reg, *_best_source(src, groups, reg)))
        root = hop_owner
    if root is None:
        root = owner
    reason = None
    joined = []
    if not prefix and root is not None and owner is not None and not _is_model(root, owner) and step.how != "get":
        found = fix_check.path_to(fix_check.joined_paths(root_src.sql if root_src else None, root, reg), owner)
        if isinstance(found, str):
            reason = found
        else:
            joined = list(found)
    own = [step.name] if step.name else []
    if step.how == "forward" and step.name and _self_referential(owner, step.name):
        # The same statement at one call site for every hop of `c.parent.parent`: the
        # chain's length is on the call-site line.
        own = [step.name] * _repeats_on_line(g, step.name)
    by_path = {}
    for i, name in enumerate(joined):
        by_path[tuple(joined[: i + 1])] = Step("forward", None, name, False)
    base = prefix + joined + own
    for i in range(len(own)):
        by_path[tuple(prefix + joined + own[: i + 1])] = step
    nodes = [(gid, base, 0)]

    def walk(node, path, level):
        for c in sorted(children.get(node, []), key=lambda i: candidates[i].first_seq):
            cpath = path + [steps[c].name]
            by_path[tuple(cpath)] = steps[c]
            nodes.append((c, cpath, level + 1))
            walk(c, cpath, level + 1)

    walk(gid, base, 0)
    shape = root_src.markers if root_src is not None else 0
    existing = _existing_prefetches(root_src, groups, reg)
    leaves = [p for _, p, _ in nodes if not any(len(q) > len(p) and q[: len(p)] == p for _, q, _ in nodes)]
    combined = None
    if len(nodes) > 1:
        combined = _validated(_path_fixes(leaves, by_path, len(prefix), root, shape, reason), existing)
    findings = []
    for node, path, level in nodes:
        ng = candidates[node]
        nstep = steps[node]
        if nstep.how in PATH_KINDS and nstep.name and not _shaped(ng):
            fix = _path_fixes([path], by_path, len(prefix), root, shape, reason)
        else:
            fix = _special_fix(ng, nstep, groups, reg, root, prefix, joined, shape, reason, path, level,
                               nested_src=root_src is not None and root_src.id in candidates,
                               grouped=" GROUP BY " in ((root_src.sql if root_src is not None else None) or "").upper())
        fix = _validated(fix, existing)
        if fix.text and fix.attr and nstep.name in existing and "to_attr=" in fix.text:
            fix.usage = (fix.usage or "") + f'; the existing prefetch_related("{nstep.name}") is then unused: drop it'
        if combined is not None and path in leaves and len(leaves) == 1:
            fix = combined
        src_n, _ = _best_source(ng, groups, reg, prefer=_owner_model(nstep))
        callsite, function, stack = _callsite(ng)
        f = _finding("n_plus_one", ng, ng.count, ng.total_ms, nstep.relation, fix.text, src_n, callsite,
                     function, stack, [], scope_name, distinct=ng.distinct)
        f.fix_queries, f.fix_attr, f.fix_usage, f.no_fix_reason = fix.queries, fix.attr, fix.usage, fix.refused
        peers = _fetch_peers_fix(path, by_path, len(prefix), root, shape, reason, nstep)
        if peers is not None:
            f.alt_fix, f.alt_fix_queries = peers.text, peers.queries
        f.level = level
        if combined is not None and combined.text:
            f.covered_by = combined.text
        if level == 0 and len(nodes) > 1:
            f.nested = [{
                "relation": steps[c].relation, "path": "__".join(p), "count": candidates[c].count,
                "total_ms": candidates[c].total_ms, "callsite": _callsite(candidates[c])[0],
                "sql": candidates[c].sql, "fingerprint": candidates[c].fingerprint,
            } for c, p, _lvl in nodes[1:]]
        findings.append(f)
    return findings
