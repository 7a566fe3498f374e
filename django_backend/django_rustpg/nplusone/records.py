"""The N+1 export as typed records: ``from_native`` is the one place that reads the dict
``NPlusOneScope.export`` returns (src/nplusone/scope.rs); everything else reads attributes.

Built once per scope end, so plain frozen dataclasses cost nothing that matters."""

from __future__ import annotations

from dataclasses import dataclass
from types import CodeType
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from .._native import Export as RawExport


@dataclass(frozen=True, slots=True)
class Group:
    """Statements with one fingerprint from one call site (``ExportedGroup`` in _native.pyi)."""

    id: int
    kind: str | None
    fingerprint: str
    normalized: str
    sql: str
    count: int
    calls: int
    reached: bool  # calls reached the scope's threshold
    total_ms: float
    distinct: int
    distinct_saturated: bool
    first_seq: int
    frames: list[tuple[CodeType, int]]
    markers: int
    ctx: dict[str, Any] | None
    sources: list[tuple[int, str | None, int]]  # (group id, column, hits)
    tables: list[str]
    filters: list[tuple[str | None, str, bool]]  # (table, column, many)
    count_only: bool
    method: str | None


@dataclass(frozen=True, slots=True)
class Duplicate:
    """One (fingerprint, parameters) pair run at least threshold times."""

    fingerprint: str
    count: int
    total_ms: float
    groups: list[int]


@dataclass(frozen=True, slots=True)
class Export:
    statements: int
    reads: int  # reads and writes that were grouped
    total_ms: float
    groups: list[Group]
    duplicates: list[Duplicate]
    ungrouped: int
    values_full: bool
    dups_full: bool


def _group(g: Mapping[str, Any]) -> Group:
    return Group(
        id=g["id"],
        kind=g.get("kind"),
        fingerprint=g["fingerprint"],
        normalized=g.get("normalized", ""),
        sql=g["sql"],
        count=g["count"],
        calls=g.get("calls", 0),
        reached=bool(g.get("reached")),
        total_ms=g["total_ms"],
        distinct=g.get("distinct", 0),
        distinct_saturated=bool(g.get("distinct_saturated")),
        first_seq=g["first_seq"],
        frames=g.get("frames") or [],
        markers=g.get("markers") or 0,
        ctx=g.get("ctx"),
        sources=g.get("sources") or [],
        tables=g.get("tables") or [],
        filters=g.get("filters") or [],
        count_only=bool(g.get("count_only")),
        method=g.get("method"),
    )


def from_native(raw: RawExport | Mapping[str, Any]) -> Export:
    """The export dict (or a partial one built by hand) as records."""
    return Export(
        statements=raw.get("statements", 0),
        reads=raw.get("reads", 0),
        total_ms=raw.get("total_ms", 0.0),
        groups=[_group(g) for g in raw.get("groups", [])],
        duplicates=[Duplicate(d["fingerprint"], d["count"], d["total_ms"], d["groups"]) for d in raw.get("duplicates", [])],
        ungrouped=raw.get("ungrouped", 0),
        values_full=bool(raw.get("values_full")),
        dups_full=bool(raw.get("dups_full")),
    )
