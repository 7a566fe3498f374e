"""What a group loads: its table and filtered column mapped through the app registry
(table → model, column → field), or the Django frames captured on its second run."""

from __future__ import annotations

from dataclasses import dataclass


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
    tables = g.tables or []
    primary = tables[0] if tables else None
    for table, column, _many in g.filters or []:
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
                smodel = reg.model((source_group.tables or [None])[0])
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
    model = reg.model((g.tables or [None])[0])
    return model._meta.label if model is not None else None
