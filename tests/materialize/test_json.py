"""JSONField values parsed natively from the jsonb text must be exactly what Django's
``JSONField.from_db_value`` (``json.loads``) builds: types, dict order, big integers,
floats, unicode, nesting; custom decoders and NULLs keep Django's own path."""
import decimal

import pytest
from django.db.models import F, Value
from django.db.models.fields.json import KT

from mat_app import models as m
from mat_helpers import compare

DOCUMENTS = [
    {"b": 1, "a": [1, 2.5, None, True, False], "c": {"z": "é ☃ 𝄞", "y": ""}},
    {"big": 123456789012345678901234567890, "neg": -9223372036854775809, "edge": 9223372036854775807},
    {"floats": [0.1, 1e-7, 1.5e300, -0.0, 3.0, 2.5e-320, 123456789.123456789]},
    {"ints": [0, -0, 18446744073709551615, -1]},
    [[[[["deep"]]]], {"": {"": []}}],
    "just a string with \"quotes\" and \\ backslash and \n newline \u0001",
    12,
    -0.5,
    True,
    None,  # JSON null (not SQL NULL): stored below as Value("null")
    {"nested": {"k": [{"k": [{"k": "v" * 300}]}]}},
    {str(i): i for i in range(100)},
    # Keys the per-batch key cache must get right: long (not cached), escaped, repeated.
    {"k" * 80: 1, "esc\"aped é": 2, "b": {"b": {"k" * 80: "b"}}},
]


@pytest.fixture
def json_rows():
    rows = []
    for i, doc in enumerate(DOCUMENTS):
        rows.append(m.AllTypes.objects.create(small=30000 + i, data=doc, tagged={"__decimal__": f"{i}.5"}))
    m.AllTypes.objects.filter(small=30000 + DOCUMENTS.index(None)).update(data=Value("null", m.AllTypes._meta.get_field("data")))
    rows.append(m.AllTypes.objects.create(small=30000 + len(DOCUMENTS), data=None, tagged=None))  # SQL NULL
    yield rows
    m.AllTypes.objects.filter(small__gte=30000).delete()


def qs(alias):
    return m.AllTypes.objects.using(alias).filter(small__gte=30000).order_by("small")


def test_models(plan_spy, json_rows):
    native, _ = compare(plan_spy, lambda a: qs(a), {"models"})
    assert native[1].data["big"] == 123456789012345678901234567890 and type(native[1].data["big"]) is int
    assert native[len(DOCUMENTS)].data is None


def test_values_and_flat(plan_spy, json_rows):
    compare(plan_spy, lambda a: qs(a).values("small", "data", "tagged"), {"dicts"})
    compare(plan_spy, lambda a: qs(a).values_list("data", flat=True), {"flat"})


def test_key_transforms_and_expressions(plan_spy, json_rows):
    compare(plan_spy, lambda a: qs(a).values("data__a", "data__c__z", "data__floats__1"), {"dicts"})
    compare(plan_spy, lambda a: qs(a).annotate(kt=KT("data__b"), whole=F("data")).values_list("kt", "whole"), {"tuples"})


def test_custom_decoder_keeps_djangos_converter(plan_spy, json_rows):
    native, _ = compare(plan_spy, lambda a: qs(a).values_list("tagged", flat=True), {"flat"})
    assert native[0] == decimal.Decimal("0.5")  # TaggedDecoder ran


def test_json_loads_runs_only_for_documents_the_native_parser_declines(plan_spy, json_rows, monkeypatch):
    import json

    calls = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda s, *a, **k: calls.append(s) or real(s, *a, **k))
    list(qs("default").values_list("data", flat=True))
    # Three documents hold integers beyond 18 digits (jsonb prints 1.5e300 as one).
    assert len(calls) == 3, calls
    calls.clear()
    list(qs("plain").values_list("data", flat=True))
    assert len(calls) == len(DOCUMENTS)  # Django's path: every non-NULL document
