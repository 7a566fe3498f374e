"""The N+1 export as records (django_rustpg/nplusone/records.py): ``from_native`` turns
every key of ``NPlusOneScope.export()`` into an equal attribute of a frozen dataclass, and the
records carry exactly the keys _native.pyi declares for the export."""
import ast
import dataclasses
from pathlib import Path

import pytest

from django_rustpg import nplusone
from django_rustpg.nplusone import _markers, records
from shop.models import Book

STUB = Path(records.__file__).resolve().parent.parent / "_native.pyi"


def _typeddict_keys(name):
    classes = {n.name: n for n in ast.parse(STUB.read_text()).body if isinstance(n, ast.ClassDef)}
    keys, node = set(), classes[name]
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            keys |= _typeddict_keys(base.id)
    return keys | {i.target.id for i in node.body if isinstance(i, ast.AnnAssign)}


def _names(cls):
    return {f.name for f in dataclasses.fields(cls)}


def test_records_carry_the_stubs_keys():
    assert _names(records.Export) == _typeddict_keys("Export")
    assert _names(records.Group) == _typeddict_keys("ExportedGroup")
    assert _names(records.Duplicate) == _typeddict_keys("ExportedDuplicate")


def test_every_exported_key_becomes_an_equal_attribute(data):
    with nplusone.scope(mode="collect"):
        for _ in range(2):
            names = [b.author.name for b in Book.objects.all()]
        raw = _markers.scope_var.get().export(2)
    assert names and raw["groups"] and raw["duplicates"]
    export = records.from_native(raw)
    for key, value in raw.items():
        if key not in ("groups", "duplicates"):
            assert getattr(export, key) == value, key
    assert len(export.groups) == len(raw["groups"]) and len(export.duplicates) == len(raw["duplicates"])
    for record, group in zip(export.groups + export.duplicates, raw["groups"] + raw["duplicates"]):
        assert _names(type(record)) == set(group)
        for key, value in group.items():
            assert getattr(record, key) == value, key
    with pytest.raises(dataclasses.FrozenInstanceError):
        export.groups[0].count = 0  # type: ignore[misc]
