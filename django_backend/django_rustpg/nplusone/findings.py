"""The finding record (``Finding``), ``make_finding`` (the one place one is made, for every
kind), and how a group's frames become its call-site text."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from .records import Group

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
    # The fix, validated (see fix_check): queries the loop runs once fixed, the attribute
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


def _callsite(g) -> tuple:
    frames = g.frames or []
    if not frames:
        return "<unknown>", "", []
    return frame_text(frames[0]), frame_function(frames[0]), [frame_text(f) for f in frames]


def make_finding(kind, *, sql, fingerprint, frames, ctx, count, total, callsite, function, stack, relation, fix,
                 src=None, confirmed=None, nested=None, scope_name=None, distinct=0, framework=False,
                 eager=None) -> Finding:
    """The one place a ``Finding`` is made, for every kind: N+1 reads and writes and
    duplicates (from an exported group, via ``_finding``) and unused eager loads
    (``_eager.findings``; ``eager`` is its (path, call, rows))."""
    f = Finding(
        kind=kind,
        count=count,
        total_ms=round(total, 3),
        sql=sql,
        fingerprint=fingerprint,
        callsite=callsite,
        relation=relation,
        fix=fix,
        confirmed=src is not None if confirmed is None else confirmed,
        source_callsite=_callsite(src)[0] if src is not None else None,
        distinct_params=distinct,
        source_sql=src.sql if src is not None else None,
        stack=stack,
        function=function,
        template=ctx.get("template"),
        nested=[] if nested is None else nested,
        scope=scope_name,
        framework=framework,
    )
    f._frames = frames  # type: ignore[attr-defined]
    f._ctx = ctx  # type: ignore[attr-defined]
    if eager is not None:
        f.eager_path, f.eager_call, f.eager_rows = eager  # type: ignore[attr-defined]
    if ctx.get("sql") and ctx.get("params") is not None and kind != "unused_eager_load":
        f.explain = {"sql": ctx["sql"], "params": ctx["params"], "alias": ctx.get("alias") or "default"}
        f._raw_params = ctx.get("raw_params")  # type: ignore[attr-defined]
    return f


def _finding(kind, g: Group, count, total, relation, fix, src, callsite, function, stack, nested, scope_name, *,
             distinct) -> Finding:
    """A finding about exported group ``g`` (``src``: the group its parameter values came from)."""
    return make_finding(kind, sql=g.sql, fingerprint=g.fingerprint, frames=g.frames or [], ctx=g.ctx or {},
                        count=count, total=total, callsite=callsite, function=function, stack=stack,
                        relation=relation, fix=fix, src=src, nested=nested, scope_name=scope_name, distinct=distinct)
