"""From what the driver recorded in a scope to findings: kinds, relations, fixes.

Runs once per scope, at its end, and only over the groups that reached the threshold
(plus the groups their parameter values came from). Relations come from two places:
the Django frames the driver captured on a group's second run (which descriptor or
queryset method ran) and the parsed statement (its table and filtered column) mapped
through the app registry (table → model, column → field).
"""

from __future__ import annotations

import json
import linecache
import os
import re
from dataclasses import asdict, dataclass, field

from . import _runtime as rt

IGNORE_COMMENT = "nplusone: ignore"
# Executions sharing one source that confirm a group whatever their share (the driver
# remembers the first 5,000 rows of each result set).
CONFIRM_HITS = 1000


@dataclass
class Finding:
    """One N+1 or duplicate-query finding (see the module docs of ``nplusone``)."""

    kind: str  # "n_plus_one" | "duplicate" | "unused_eager_load"
    count: int
    total_ms: float
    sql: str
    fingerprint: str
    callsite: str
    relation: str | None = None
    fix: str | None = None
    confirmed: bool = False
    source_callsite: str | None = None
    # Extras (in JSON and the HTML page; not needed to act on a finding):
    distinct_params: int = 0
    source_sql: str | None = None
    stack: list = field(default_factory=list)
    function: str = ""
    template: str | None = None
    nested: list = field(default_factory=list)
    scope: str | None = None
    # Writes: the Django operation run once per row ("save", "delete", "queryset_update",
    # "queryset_delete", "bulk_create", "bulk_update"; "sql" for raw statements).
    operation: str | None = None
    # The fix, validated (see _fixes): queries the loop runs once fixed, the attribute
    # the loop reads instead (Prefetch to_attr, annotation) and how its code changes.
    fix_queries: int | None = None
    fix_attr: str | None = None
    fix_usage: str | None = None
    no_fix_reason: str | None = None  # set when no fix passed the validator
    covered_by: str | None = None  # nested loops: the deepest level's fix, which covers this one
    level: int = 0  # nested loops: 0 for the outermost loop, 1 for the one inside it...
    # Statements Django itself repeats (admin changelist counts, session/auth lookups,
    # contenttypes warm-up): listed apart (``Report.framework_findings``), never failing.
    framework: bool = False
    django_frame: str | None = None  # the Django code that issued the statement
    # The statement in Django's form with the parameters of one run (the report page's
    # EXPLAIN button, DEBUG only): {"sql", "params", "alias"}, or None.
    explain: dict | None = None
    # Django >= 6.1: the queryset-wide alternative for single-valued relations and
    # deferred fields (``fetch_mode(models.FETCH_PEERS)``), validated like ``fix``.
    alt_fix: str | None = None
    alt_fix_queries: int | None = None

    @property
    def key(self) -> str:
        """Stable across runs and line shifts: kind, fingerprint, file and function."""
        path = self.callsite.rsplit(":", 1)[0]
        return f"{self.kind}|{self.fingerprint}|{path}::{self.function}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["key"] = self.key
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def describe(self) -> str:
        """The one-line log message."""
        if self.kind == "unused_eager_load":
            return (f"unused eager load: {self.relation} requested {self.count} time(s), never read | at {self.callsite}"
                    f" | fix: {self.fix}")
        if self.kind == "n_plus_one":
            what = f"N+1 writes, {self.operation}() per row" if self.operation else "N+1 query"
            head = f"{what} ({'confirmed' if self.confirmed else 'probable'})"
        else:
            head = "duplicate query"
        if self.framework:
            head = "framework " + head
        parts = [
            f"{head}: {self.count} queries, {self.total_ms:.2f} ms, {self.distinct_params} distinct parameter sets",
            f"at {self.callsite}",
        ]
        if self.template:
            parts.append(f"in template {self.template}")
        if self.source_callsite:
            parts.append(f"source {self.source_callsite}")
        if self.relation:
            parts.append(f"relation {self.relation}")
        if self.fix:
            parts.append(f"fix: {self.fix}")
            if self.fix_usage:
                parts.append(self.fix_usage)
        elif self.no_fix_reason:
            parts.append(f"no safe fix found: {self.no_fix_reason}")
        if self.alt_fix:
            parts.append(f"or: {self.alt_fix}")
        if self.covered_by and self.covered_by != self.fix:
            parts.append(f"with the inner loop: {self.covered_by}")
        sql = " ".join(self.sql.split())
        if len(sql) > 240:
            sql = sql[:237] + "..."
        parts.append(f"sql: {sql}")
        return " | ".join(parts)

    def __str__(self):
        return self.describe()


# ---------------------------------------------------------------------------- frames → text

def _relpath(path: str) -> str:
    from .settings import base_dir

    for root in (base_dir(), os.getcwd()):
        try:
            rel = os.path.relpath(path, root)
        except ValueError:
            continue
        if not rel.startswith(".."):
            return rel
    return path


def frame_text(frame) -> str:
    code, line = frame
    return f"{_relpath(code.co_filename)}:{line}"


def frame_function(frame) -> str:
    code = frame[0]
    return getattr(code, "co_qualname", code.co_name)


def _has_ignore_comment(frame) -> bool:
    code, line = frame
    return IGNORE_COMMENT in linecache.getline(code.co_filename, line)


# ---------------------------------------------------------------------------- app registry

class _Registry:
    def __init__(self):
        from django.apps import apps

        self.by_table = {}
        self.through = {}  # through model -> [m2m field]
        for model in apps.get_models(include_auto_created=True):
            self.by_table.setdefault(model._meta.db_table.lower(), model)
            self.by_table.setdefault(model._meta.db_table, model)
        for model in apps.get_models():
            for f in model._meta.local_many_to_many:
                through = f.remote_field.through
                if through is not None and not isinstance(through, str):
                    self.through.setdefault(through, []).append(f)

    def model(self, table):
        if table is None:
            return None
        return self.by_table.get(table) or self.by_table.get(table.lower())

    @staticmethod
    def field_by_column(model, column):
        for f in model._meta.concrete_fields:
            if f.column == column or f.column.lower() == column:
                return f
        return None


_registry_cache = {}


def _registry():
    """The table → model maps, rebuilt when the set of models changes."""
    try:
        from django.apps import apps

        key = tuple(apps.get_models(include_auto_created=True))
        reg = _registry_cache.get(key)
        if reg is None:
            _registry_cache.clear()
            reg = _registry_cache[key] = _Registry()
        return reg
    except Exception:
        return None


@dataclass
class Step:
    """What one group loads: ``relation`` ("app.Model.name"), ``name`` (the path step),
    ``many`` (needs prefetch_related), ``how`` (what kind of load)."""

    how: str
    relation: str | None = None
    name: str | None = None
    many: bool = False
    fix: str | None = None


def _sql_relation(g, reg, source_group=None, source_column=None) -> Step | None:
    """The relation a statement loads, from its table and filtered column."""
    if reg is None:
        return None
    tables = g.get("tables") or []
    primary = tables[0] if tables else None
    for table, column, _many in g.get("filters") or []:
        model = reg.model(table or primary)
        if model is None:
            continue
        fld = reg.field_by_column(model, column)
        if fld is None:
            continue
        m2ms = reg.through.get(model)
        if m2ms and (table or primary) != primary:
            for m2m in m2ms:
                if fld.name == m2m.m2m_field_name():
                    return Step("m2m", f"{m2m.model._meta.label}.{m2m.name}", m2m.name, True)
                if fld.name == m2m.m2m_reverse_field_name():
                    accessor = m2m.remote_field.get_accessor_name()
                    target = m2m.remote_field.model
                    if accessor:
                        return Step("m2m", f"{target._meta.label}.{accessor}", accessor, True)
        if fld.is_relation and (fld.many_to_one or fld.one_to_one) and not fld.primary_key:
            accessor = fld.remote_field.get_accessor_name()
            if accessor:
                target = fld.remote_field.model
                if fld.one_to_one:
                    return Step("reverse_one", f"{target._meta.label}.{accessor}", accessor, False)
                return Step("reverse_fk", f"{target._meta.label}.{accessor}", accessor, True)
        if fld.primary_key or getattr(fld, "unique", False):
            # A row by its key: a forward foreign key, if we know where the value came from.
            fk = None
            if source_group is not None:
                smodel = reg.model((source_group.get("tables") or [None])[0])
                if smodel is not None:
                    fks = [f for f in smodel._meta.concrete_fields
                           if f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is model
                           and _targets(f, fld)]
                    by_column = [f for f in fks if f.column == source_column]
                    # Values of another column (an email matched to a unique field) are
                    # no foreign key; a primary key read by its only foreign key is.
                    fk = by_column[0] if by_column else (fks[0] if len(fks) == 1 and fld.primary_key else None)
            if fk is None:
                candidates = [
                    f
                    for m in {id(x): x for x in reg.by_table.values()}.values()
                    for f in m._meta.concrete_fields
                    if f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is model
                    and not m._meta.auto_created and _targets(f, fld)
                ]
                if len(candidates) == 1:
                    fk = candidates[0]
            if fk is not None:
                return Step("forward", f"{fk.model._meta.label}.{fk.name}", fk.name, False)
    return None


def _targets(fk, fld) -> bool:
    """Does foreign key ``fk`` point at field ``fld`` (its primary key, or its to_field)?"""
    try:
        return fk.target_field.column == fld.column
    except Exception:
        return fld.primary_key


def _loaded_model(g, reg) -> str | None:
    """The label of the model whose rows a statement loads (its first table)."""
    if reg is None:
        return None
    model = reg.model((g.get("tables") or [None])[0])
    return model._meta.label if model is not None else None


def _step(g, reg, groups) -> Step:
    ctx = g.get("ctx") or {}
    how = ctx.get("kind")
    markers = g.get("markers") or 0
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
            if how == "count" or g.get("count_only"):
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


# ---------------------------------------------------------------------------- sources

def _best_source(g, groups, reg=None, prefer=None):
    """(source group, column) when the confirmed check holds, else (None, None).

    Small integer keys of different tables often coincide, so a value can have several
    sources; with the app registry, sources whose column cannot hold this statement's
    key (not a foreign key to the filtered model, not its primary key...) are dropped
    first. ``prefer`` (a model) picks the sources whose rows are that model's first: a
    related manager's key belongs to its owner's rows, not to a prefetch of the same
    relation that loaded the key too. Ties go to the most recent source (the nearest
    enclosing loop)."""
    count = g["count"]
    cands = []
    for sid, column, hits in g.get("sources") or []:
        src = groups.get(sid)
        if src is not None and sid != g["id"] and hits >= 2 and (hits * 2 >= count or hits >= CONFIRM_HITS):
            cands.append((hits, src["first_seq"], src, column))
    if not cands:
        return None, None
    if reg is not None:
        plausible = [c for c in cands if _plausible(g, c[2], c[3], reg)]
        cands = plausible if (plausible or prefer is not None) else cands
        if not cands:
            return None, None
        if prefer is not None:
            own = [c for c in cands if _is_model(reg.model((c[2].get("tables") or [None])[0]), prefer)]
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
        tables = g.get("tables") or []
        filters = g.get("filters") or []
        if not filters:
            return True
        table, fcol, _many = filters[0]
        model = reg.model(table or (tables[0] if tables else None))
        smodel = reg.model((src.get("tables") or [None])[0])
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
        for m in [smodel] + [reg.model(t) for t in (src.get("tables") or [])[1:]]:
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
    if depth > 8 or src is None or not (src.get("markers", 0) & rt.M_PREFETCH):
        return [], src
    step = _sql_relation(src, reg, *_best_source(src, groups, reg))
    if step is None or not step.name:
        return [], src
    owner = _owner_model(step)
    # A prefetch query runs once (its keys in one IN list): any earlier result set of
    # the owner's rows that held them is where it started.
    up = None
    for sid, _column, _hits in src.get("sources") or []:
        cand = groups.get(sid)
        if cand is not None and sid != src["id"] and _is_model(reg.model((cand.get("tables") or [None])[0]), owner):
            if up is None or cand["first_seq"] > up["first_seq"]:
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


# ---------------------------------------------------------------------------- findings

def _callsite(g) -> tuple:
    frames = g.get("frames") or []
    if not frames:
        return "<unknown>", "", []
    return frame_text(frames[0]), frame_function(frames[0]), [frame_text(f) for f in frames]


def build(export: dict, *, threshold: int, duplicates: bool = True, rules=(), scope_name=None, test_file=None) -> list:
    groups = {g["id"]: g for g in export.get("groups", [])}
    reg = _registry()
    candidates = {
        gid: g
        for gid, g in groups.items()
        if g.get("calls", g["count"]) >= threshold and g.get("distinct", 0) >= 2 and g.get("kind") == "select"
        and not (g.get("markers", 0) & rt.OPERATION)
    }
    steps = {gid: _step(g, reg, groups) for gid, g in candidates.items()}
    # Nesting: a candidate whose parameter values came from another candidate's rows is
    # the inner loop of that one; both become one finding with one path-shaped fix.
    path_kinds = {"forward", "reverse_one", "reverse_fk", "m2m", "gfk"}
    parent = {}
    for gid, g in candidates.items():
        src, _ = _best_source(g, groups, reg)
        if src is not None and src["id"] in candidates and src["id"] != gid:
            child, par = steps[gid], steps[src["id"]]
            # Nested only if the inner relation starts from the rows the outer one loaded.
            if (child.how in path_kinds and par.how in path_kinds and child.name and child.relation
                    and child.relation.rsplit(".", 1)[0] == _loaded_model(src, reg)):
                parent[gid] = src["id"]
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
    for gid in sorted(candidates, key=lambda i: candidates[i]["first_seq"]):
        if gid in parent:
            continue
        findings.extend(_loop_findings(gid, candidates, groups, steps, children, reg, scope_name))

    findings.extend(_write_findings(groups, reg, threshold, scope_name, test_file))

    if duplicates:
        covered = set(candidates)
        merged = {}
        for d in export.get("duplicates", []):
            gids = tuple(sorted(d["groups"]))
            if all(x in covered for x in gids):
                continue
            m = merged.setdefault(gids, {"count": 0, "total_ms": 0.0, "distinct": 0, "fingerprint": d["fingerprint"]})
            m["count"] += d["count"]
            m["total_ms"] += d["total_ms"]
            m["distinct"] += 1
        for gids, m in merged.items():
            g = groups.get(gids[0])
            if g is None or g.get("kind") != "select":
                continue
            step = _step(g, reg, groups)
            fix = step.fix if step.how in ("forward", "reverse_one") else None
            checked = None
            if fix:
                from . import _fixes

                checked = _validated(_fixes.Fix(text=fix, root=_owner_model(step)))
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
    from . import _fixes

    g = candidates[gid]
    step = steps[gid]
    owner = _owner_model(step)
    src, _col = _best_source(g, groups, reg, prefer=owner)
    prefix, root_src = [], src
    if src is not None and _is_model(reg.model((src.get("tables") or [None])[0]) if reg else None, owner):
        prefix, root_src = _prefetch_prefix(src, groups, reg)
    root = reg.model((root_src.get("tables") or [None])[0]) if (root_src is not None and reg) else None
    if root is None and prefix:
        hop_owner = _owner_model(_sql_relation(src, reg, *_best_source(src, groups, reg)))
        root = hop_owner
    if root is None:
        root = owner
    reason = None
    joined = []
    if not prefix and root is not None and owner is not None and not _is_model(root, owner) and step.how != "get":
        found = _fixes.path_to(_fixes.joined_paths(root_src["sql"] if root_src else None, root, reg), owner)
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
        for c in sorted(children.get(node, []), key=lambda i: candidates[i]["first_seq"]):
            cpath = path + [steps[c].name]
            by_path[tuple(cpath)] = steps[c]
            nodes.append((c, cpath, level + 1))
            walk(c, cpath, level + 1)

    walk(gid, base, 0)
    shape = (root_src or {}).get("markers", 0) if root_src is not None else 0
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
                               nested_src=root_src is not None and root_src["id"] in candidates,
                               grouped=" GROUP BY " in ((root_src or {}).get("sql") or "").upper())
        fix = _validated(fix, existing)
        if fix.text and fix.attr and nstep.name in existing and "to_attr=" in fix.text:
            fix.usage = (fix.usage or "") + f'; the existing prefetch_related("{nstep.name}") is then unused: drop it'
        if combined is not None and path in leaves and len(leaves) == 1:
            fix = combined
        src_n, _ = _best_source(ng, groups, reg, prefer=_owner_model(nstep))
        callsite, function, stack = _callsite(ng)
        f = _finding("n_plus_one", ng, ng["count"], ng["total_ms"], nstep.relation, fix.text, src_n, callsite,
                     function, stack, [], scope_name, distinct=ng["distinct"])
        f.fix_queries, f.fix_attr, f.fix_usage, f.no_fix_reason = fix.queries, fix.attr, fix.usage, fix.refused
        peers = _fetch_peers_fix(path, by_path, len(prefix), root, shape, reason, nstep)
        if peers is not None:
            f.alt_fix, f.alt_fix_queries = peers.text, peers.queries
        f.level = level
        if combined is not None and combined.text:
            f.covered_by = combined.text
        if level == 0 and len(nodes) > 1:
            f.nested = [{
                "relation": steps[c].relation, "path": "__".join(p), "count": candidates[c]["count"],
                "total_ms": candidates[c]["total_ms"], "callsite": _callsite(candidates[c])[0],
                "sql": candidates[c]["sql"], "fingerprint": candidates[c]["fingerprint"],
            } for c, p, _lvl in nodes[1:]]
        findings.append(f)
    return findings


def _fetch_peers_fix(path, by_path, n_prefix, root, shape, reason, step=None):
    """``fetch_mode(models.FETCH_PEERS)`` (Django >= 6.1) when every step of the path is
    a single-valued relation or a deferred field: one query per step for all the rows
    instead of one per row. Feature-detected: None on older Django."""
    from django.db import models

    from . import _fixes

    if getattr(models, "FETCH_PEERS", None) is None or reason or n_prefix or shape & rt.M_VALUES:
        return None
    steps = [by_path.get(tuple(path[: i + 1])) for i in range(len(path))] if path else []
    kinds = [s.how if s is not None else None for s in steps]
    if not path and step is not None and step.how == "deferred":
        kinds = ["deferred"]
    if not kinds or not all(k in ("forward", "reverse_one", "deferred") for k in kinds):
        return None
    fix = _validated(_fixes.Fix(text="fetch_mode(models.FETCH_PEERS)", root=root))
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
        if h.get("markers", 0) & rt.M_PREFETCH and any(sid == root_src["id"] for sid, _c, _n in h.get("sources") or []):
            step = _sql_relation(h, reg, root_src, None)
            if step is not None and step.name and step.name not in out:
                out.append(step.name)
    return tuple(out)


def _validated(fix, existing=()):
    from . import _fixes

    fix.existing = existing
    try:
        return _fixes.validate(fix)
    except Exception as e:  # the validator must never break reporting
        return _fixes.refused(f"the validator failed ({type(e).__name__}: {e})")


def _shaped(g) -> bool:
    """A related manager the loop filtered, ordered, sliced or aggregated."""
    qs = (g.get("ctx") or {}).get("qs") or {}
    if not qs.get("instance"):
        return False
    return bool(qs.get("filters") or qs.get("order_by") or qs.get("slice") or qs.get("error")
                or qs.get("no_default_ordering") or qs.get("values") or qs.get("call") in ("count", "aggregate", "exists"))


def _repeats_on_line(g, name) -> int:
    """``g.parent.parent.name``: how often the self-referential step is chained on the
    call-site line (at least 1)."""
    frames = g.get("frames") or []
    if not frames:
        return 1
    code, line = frames[0]
    text = linecache.getline(code.co_filename, line)
    best = 1
    for m in re.finditer(rf"(?:\.{re.escape(name)}\b)+", text):
        best = max(best, m.group(0).count("." + name))
    return best


def _path_fixes(paths, by_path, n_prefix, root, shape, reason):
    from . import _fixes

    if reason:
        return _fixes.refused(reason, root)
    if shape & rt.M_VALUES:
        return _fixes.refused("the rows come from values()/values_list(): there are no model instances to "
                              "attach related objects to (name the related fields in values() instead)", root)
    text = _path_fix(paths, by_path, n_prefix) if len(paths) == 1 else None
    if text is None:
        leaves = ["__".join(p) for p in paths]
        many = n_prefix > 0 or any(s.many for s in by_path.values())
        call = "prefetch_related" if many else "select_related"
        text = f"{call}({', '.join(json.dumps(p) for p in leaves)})"
    fix = _fixes.Fix(text=text, root=root)
    if shape & rt.M_ITERATOR and "prefetch_related" in text:
        fix.usage = "iterator() needs chunk_size=... for prefetch_related() to run"
    return fix


def _subquery_aggregates(aggs, step, root, joined, tree, loop):
    """``aggregate()`` per row over a reverse foreign key when the root query already
    groups: one correlated subquery per aggregate (a join would multiply the rows)."""
    from . import _fixes, _querysets

    owner = _owner_model(step)
    rel = None
    for r in (owner._meta.related_objects if owner is not None else ()):
        if r.get_accessor_name() == step.name and r.many_to_one is False and r.one_to_many:
            rel = r
    if rel is None:
        return _fixes.refused("the root query already aggregates (GROUP BY) and the relation is not a reverse "
                              "foreign key: neither annotate() nor a simple Subquery restates it", root)
    model, fk = rel.related_model, rel.field.name
    outer = "__".join(joined) if joined else "pk"
    base = f'{_fixes.manager_expr(model)}.filter({fk}=OuterRef("{outer}"))'
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
    return _fixes.Fix(text=f"annotate({', '.join(parts)})", root=root, attr=attrs[0], loop=loop,
                      usage="read " + ", ".join(f"row.{a}" for a in attrs) + " instead of calling aggregate()")


def _special_fix(g, step, groups, reg, root, prefix, joined, shape, reason, node_path=(), level=0, nested_src=False,
                 grouped=False):
    """Fixes that are not a plain relation path: counts and aggregates per row, a
    related manager filtered/ordered/sliced per row, a deferred field, get() per id."""
    from . import _fixes, _querysets

    ctx = g.get("ctx") or {}
    loop = dict(ctx.get("qs") or {})
    how = step.how
    if how == "get":
        if loop.get("instance"):
            return _fixes.refused("get() on a related manager per row: no single query returns the same rows")
        model = reg.model((g.get("tables") or [None])[0]) if reg else None
        fld = None
        for table, column, _many in g.get("filters") or []:
            fld = reg.field_by_column(model, column) if model is not None else None
            break
        if model is None or fld is None or not (fld.primary_key or fld.unique) or len(g.get("filters") or []) != 1:
            return _fixes.refused("get() filters on more than one unique field: in_bulk() cannot replace it")
        text = "in_bulk()" if fld.primary_key else f'in_bulk([...], field_name="{fld.name}")'
        src, _ = _best_source(g, groups, reg)
        return _fixes.Fix(text=text, root=model, pattern=True, queries=2 if src is not None else 1,
                          usage=f"{model.__name__}.objects.{text.replace('()', '(ids)')} once, then look rows up by key")
    if reason:
        return _fixes.refused(reason, root)
    if how == "deferred":
        model = root
        fields = _fixes.loaded_fields((_best_source(g, groups, reg)[0] or {}).get("sql"), model) if model else None
        name = (step.relation or "").rsplit(".", 1)[-1]
        if model is None or fields is None or not name:
            return _fixes.refused("the fields the root query loaded are unknown")
        text = f"only({', '.join(json.dumps(n) for n in [*fields, name])})"
        return _fixes.Fix(text=text, root=model)
    if loop.get("error"):
        return _fixes.refused(f"the loop's queryset cannot be restated: {loop['error']}", root)
    if shape & rt.M_VALUES:
        return _fixes.refused("the rows come from values()/values_list(): annotate() or a prefetch would change "
                              "the rows the loop reads", root)
    if not step.name:
        return _fixes.refused("the statement's relation is unknown", root)
    call = loop.get("call")
    if call == "iterate" and step.many and node_path:
        path = "__".join(node_path)
    elif prefix or level or nested_src:
        return _fixes.refused("the rows came from a prefetch or an outer per-row query: the fix belongs in "
                              "that query's own queryset (Prefetch(queryset=...))", root)
    else:
        path = "__".join(joined + [step.name])
    tree = loop.get("filters")
    flt = f", filter={_querysets.q_code(tree, path + '__')}" if tree else ""
    if how in ("count", "exists", "aggregate") and loop.get("slice"):
        return _fixes.refused(f"the loop slices the related manager before {how}(): annotate() cannot slice", root)
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
            return _fixes.Fix(text=f'annotate(Count("{path}"{dist}))', root=root, attr=f"{path}__count", loop=loop,
                              usage=f"read row.{path}__count instead of calling count()")
        attr = f"{step.name}_count"
        return _fixes.Fix(text=f'annotate({attr}=Count("{path}"{dist}{flt}))', root=root, attr=attr, loop=loop,
                          usage=f"read row.{attr} instead of calling count()")
    if how == "exists":
        loop["call"] = "exists"
        if not tree:
            return _fixes.Fix(text=f'prefetch_related("{path}")', root=root, loop=None)
        attr = f"has_{step.name}"
        return _fixes.Fix(text=f'annotate({attr}=Count("{path}"{flt}))', root=root, attr=attr, loop=loop,
                          usage=f"test row.{attr} > 0 instead of calling exists()")
    if how == "aggregate":
        aggs = loop.get("aggregates") or []
        if not aggs or aggs[0][0] == "error":
            return _fixes.refused(f"the aggregate cannot be restated: {aggs[0][1] if aggs else 'unknown'}", root)
        if grouped:
            return _subquery_aggregates(aggs, step, root, joined, tree, loop)
        parts, attrs = [], []
        for alias, fn, fname, distinct in aggs:
            attr = alias.replace("__", "_")
            attrs.append(attr)
            extra = ", distinct=True" if distinct else ""
            parts.append(f'{attr}={fn}("{path}__{fname}"{extra}{flt})')
        return _fixes.Fix(text=f"annotate({', '.join(parts)})", root=root, attr=attrs[0], loop=loop,
                          usage="read " + ", ".join(f"row.{a}" for a in attrs) + " instead of calling aggregate()")
    if call == "iterate" and step.many:
        if loop.get("values"):
            return _fixes.refused("the loop reads the related manager with values(): Prefetch cannot", root)
        target = reg.model((g.get("tables") or [None])[0]) if reg else None
        hops = _fixes.resolve_path(root, path) if root is not None else None
        if isinstance(hops, list) and hops[-1].model is not None:
            target = hops[-1].model
        if target is None:
            return _fixes.refused("the related model is unknown", root)
        qs = _fixes.manager_expr(target)
        if tree:
            qs += f".filter({_querysets.filter_args(tree)})"
        if loop.get("order_by") or loop.get("no_default_ordering"):
            qs += f".order_by({', '.join(json.dumps(o) for o in loop.get('order_by') or [])})"
        if loop.get("slice"):
            lo, hi = loop["slice"]
            qs += f"[{lo or ''}:{'' if hi is None else hi}]"
        attr = f"{step.name}_list"
        return _fixes.Fix(text=f'prefetch_related(Prefetch("{path}", queryset={qs}, to_attr="{attr}"))',
                          root=root, attr=attr, loop=loop,
                          usage=f"read row.{attr} (a list) instead of the filtered/ordered manager")
    return _fixes.refused(f"no fix is known for {how}() per row", root)


def _finding(kind, g, count, total, relation, fix, src, callsite, function, stack, nested, scope_name, *, distinct):
    ctx = g.get("ctx") or {}
    f = Finding(
        kind=kind,
        count=count,
        total_ms=round(total, 3),
        sql=g["sql"],
        fingerprint=g["fingerprint"],
        callsite=callsite,
        relation=relation,
        fix=fix,
        confirmed=src is not None,
        source_callsite=_callsite(src)[0] if src is not None else None,
        distinct_params=distinct,
        source_sql=src["sql"] if src is not None else None,
        stack=stack,
        function=function,
        template=ctx.get("template"),
        nested=nested,
        scope=scope_name,
    )
    f._frames = g.get("frames") or []
    f._ctx = ctx
    if ctx.get("sql") and ctx.get("params") is not None and kind != "unused_eager_load":
        f.explain = {"sql": ctx["sql"], "params": ctx["params"], "alias": ctx.get("alias") or "default"}
        f._raw_params = ctx.get("raw_params")
    return f


WRITE_KINDS = ("insert", "update", "delete")


def _write_findings(groups, reg, threshold, scope_name, test_file=None) -> list:
    """Writes run once per row: ``save()``, ``delete()``, ``QuerySet.update()``... in a
    loop. Repetitions count calls of the Django operation, not statements, so one
    batched ``bulk_create()`` or one cascading ``delete()`` is one. The statements of one
    operation at one call site (a cascade's SELECTs and DELETEs, a multi-table save)
    make one finding. In a test's scope, writes called from the test's own module are
    the test arranging its data and are left out."""
    test_file = os.path.normcase(os.path.abspath(test_file)) if test_file else None
    by_site = {}
    for g in sorted(groups.values(), key=lambda g: g["first_seq"]):
        frames = g.get("frames") or []
        if test_file and frames and os.path.normcase(os.path.abspath(frames[0][0].co_filename)) == test_file:
            continue
        is_operation = g.get("markers", 0) & rt.OPERATION
        if not (is_operation or g.get("kind") in WRITE_KINDS):
            continue
        if g.get("calls", g["count"]) < threshold or g.get("distinct", 0) < 2:
            continue
        ctx = g.get("ctx") or {}
        # Without Django's frames (not captured), the marker bits still name the operation.
        operation = (ctx.get("kind") or _operation_from_markers(g.get("markers", 0))) if is_operation else "sql"
        key = (tuple(frames), operation, ctx.get("model"))  # text only for the findings
        by_site.setdefault(key, []).append(g)
    findings = []
    for (_frames, operation, model_label), members in by_site.items():
        writes = [g for g in members if g.get("kind") in WRITE_KINDS]
        if not writes:
            continue
        own = [g for g in writes if _loaded_model(g, reg) == model_label]
        g = (own or writes)[-1 if operation == "delete" else 0]  # a cascade deletes its root last
        src, _col = _best_source(g, groups, reg)
        callsite, function, stack = _callsite(g)
        ctx = g.get("ctx") or {}
        related = operation.startswith("related_") and model_label and ctx.get("field")
        relation = f"{model_label}.{ctx['field']}" if related else None
        f = _finding(
            "n_plus_one", g, sum(m["count"] for m in members), sum(m["total_ms"] for m in members), relation,
            None, src, callsite, function, stack, [], scope_name, distinct=g["distinct"],
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
    from . import _fixes

    text = _write_fix(g, operation, reg)
    model = reg.model((g.get("tables") or [None])[0]) if reg is not None else None
    if text is None:
        return _fixes.refused(f"no batch operation is known for {operation}() per row")
    return _fixes.Fix(text=text, root=model, pattern=True)


def _write_fix(g, operation, reg) -> str | None:
    kind = g.get("kind")
    model = reg.model((g.get("tables") or [None])[0]) if reg is not None else None
    if kind == "insert" and operation in ("save", "bulk_create"):
        return "bulk_create([...])"
    if kind == "update" and operation in ("save", "bulk_update"):
        fields = ((g.get("ctx") or {}).get("update_fields") if operation == "save" else None) or _set_fields(g, model, reg)
        return f"bulk_update([...], {json.dumps(fields)})" if fields else "bulk_update([...], [...])"
    if operation == "delete":
        return "filter(pk__in=[...]).delete()"
    ctx = g.get("ctx") or {}
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
    m = re.search(r"\bSET\b(.*?)(?:\bWHERE\b|$)", g.get("sql") or "", re.S | re.I)
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
    for _table, column, _many in g.get("filters") or []:
        fld = reg.field_by_column(model, column) if model is not None else None
        if fld is not None:
            return "pk" if fld.primary_key else fld.name
    return None


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
        manager = _manager_expr(steps[last_many + 1].relation)
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


def drop_ignored(findings, rules) -> list:
    return [f for f in findings if not _ignored(f, rules)]


def _ignored(f: Finding, rules) -> bool:
    frames = getattr(f, "_frames", [])
    if frames and _has_ignore_comment(frames[0]):
        return True
    relations = [f.relation] + [n.get("relation") for n in f.nested]
    for rule in rules:
        if rule.kind == "relation" and rule.value in relations:
            return True
        if rule.kind == "model" and any(r and r.rsplit(".", 1)[0] == rule.value for r in relations):
            return True
        if rule.kind == "path" and _path_matches(rule, frames):
            return True
    return False


def _path_matches(rule, frames) -> bool:
    from .settings import base_dir

    want = rule.value if os.path.isabs(rule.value) else os.path.join(base_dir(), rule.value)
    want = os.path.normcase(os.path.abspath(want))
    tail = os.sep + os.path.normcase(rule.value).lstrip(os.sep)
    for code, line in frames:
        path = os.path.normcase(os.path.abspath(code.co_filename))
        if path == want or path.startswith(want.rstrip(os.sep) + os.sep) or path.endswith(tail):
            if rule.line is None or rule.line == line:
                return True
    return False
