"""The model records of a materialization plan: how to build one model instance (and its
select_related chain) from a row. ``materialize`` builds them once per queryset;
``MaterializePlan`` (src/materialize.rs) reads them by attribute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import _native


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model of the plan (the queryset's own, or a select_related one)."""

    cls: type
    state_cls: type  # ModelState
    fetch_mode: Any  # Django 6.1: set on _state after adding and db, as from_db sets it; None: not set
    db: str
    fields: list[tuple[str, int, bool]]  # (attname, column, set through __dict__)
    fields_cache_columns: list[int]  # FK ids: a non-None one makes __init__ create _state.fields_cache
    pk_column: int | None  # a related row whose primary key is NULL is no object
    annotations: list[tuple[str, int]]
    related: list[RelatedModelSpec]


@dataclass(frozen=True, slots=True)
class RelatedModelSpec(ModelSpec):
    """A select_related model, linked to its parent by Django's setters."""

    local_setter: Callable[[Any, Any], None]
    remote_setter: Callable[[Any, Any], None]
    # materialize_links: the key local_setter / remote_setter store under in fields_cache,
    # which the builder then stores itself (None: call the setter); remote_noop: skip it.
    local_cache_name: str | None = None
    remote_cache_name: str | None = None
    remote_noop: bool = False


if TYPE_CHECKING:  # mypy: the records are what MaterializePlan's stub asks for

    def _as_native(spec: ModelSpec, related: RelatedModelSpec) -> tuple[_native.ModelSpec, _native.RelatedModelSpec]:
        return spec, related
