"""The model records of a materialization plan (django_rustpg/materialize_spec.py): frozen
dataclasses built once per queryset, read by attribute in src/materialize.rs, shaped as the
``ModelSpec`` / ``RelatedModelSpec`` protocols of _native.pyi."""
import ast
import dataclasses
from pathlib import Path

import pytest

from django_rustpg import materialize
from django_rustpg.materialize_spec import ModelSpec, RelatedModelSpec
from mat_app import models as m
from mat_helpers import compare

STUB = Path(materialize.__file__).with_name("_native.pyi")


def _protocol_members(name):
    tree = ast.parse(STUB.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    return {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}


def test_records_have_exactly_the_stub_protocols_members():
    base = {f.name for f in dataclasses.fields(ModelSpec)}
    assert base == _protocol_members("ModelSpec")
    assert {f.name for f in dataclasses.fields(RelatedModelSpec)} - base == _protocol_members("RelatedModelSpec")


def test_select_related_chain_is_planned_from_frozen_records(plan_spy, monkeypatch):
    specs = []
    planned = materialize._native.MaterializePlan

    def recording(kind, width, converters, connection, **kwargs):
        specs.append(kwargs.get("model"))
        return planned(kind, width, converters, connection, **kwargs)

    monkeypatch.setattr(materialize._native, "MaterializePlan", recording)
    native, _ = compare(plan_spy, lambda a: m.Author.objects.using(a).select_related("publisher__country").order_by("pk"),
                        {"models"})
    assert any(a.publisher is not None and a.publisher.country is not None for a in native)
    (spec,) = [s for s in specs if s is not None]
    assert type(spec) is ModelSpec and spec.cls is m.Author and spec.pk_column is None
    (publisher,) = spec.related
    assert type(publisher) is RelatedModelSpec and publisher.cls is m.Publisher
    (country,) = publisher.related
    assert country.cls is m.Country and country.related == [] and isinstance(country.pk_column, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.db = "other"  # type: ignore[misc]


def test_a_dict_is_no_model_spec(plan_spy):
    from django.db import connections

    with pytest.raises(AttributeError, match="cls"):
        materialize._native.MaterializePlan("models", 1, [], connections["default"], model={"cls": m.Author})
