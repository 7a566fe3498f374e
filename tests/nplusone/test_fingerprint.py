"""The golden fingerprint corpus, from Python (the Rust test `golden_corpus` checks the
same files), and the Django half of the corpus against what Django emits today."""
import json
import os
import re
from collections import defaultdict

import pytest

from django_rustpg import _native

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "src", "sql", "testdata")


def load(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as fh:
        return [e for e in map(json.loads, fh) if "sql" in e]


CORPUS = {"manual": load("corpus_manual.jsonl"), "django": load("corpus_django.jsonl")}
GOLDEN = {}
with open(os.path.join(DATA, "corpus.golden.jsonl"), encoding="utf-8") as fh:
    for line in fh:
        v = json.loads(line)
        GOLDEN[v["id"]] = v


def test_corpus_size():
    assert sum(map(len, CORPUS.values())) >= 200
    assert len(CORPUS["django"]) >= 150


@pytest.mark.parametrize("part", ["manual", "django"])
def test_golden(part):
    for e in CORPUS[part]:
        fp, normalized = _native.fingerprint_sql(e["sql"])
        info = _native.analyze_sql(e["sql"])
        g = GOLDEN[e["id"]]
        assert (fp, normalized, info["method"], info["kind"]) == (
            g["fingerprint"], g["normalized"], g["method"], g["kind"]), e["id"]


@pytest.mark.parametrize("part", ["manual", "django"])
def test_classes(part):
    fps = defaultdict(set)
    for e in CORPUS[part]:
        fps[e["class"]].add(_native.fingerprint_sql(e["sql"])[0])
    for cls, s in fps.items():
        assert len(s) == 1, f"class {cls} has {len(s)} fingerprints"
    owners = defaultdict(list)
    for cls, s in fps.items():
        owners[next(iter(s))].append(cls)
    shared = {fp: c for fp, c in owners.items() if len(c) > 1}
    assert not shared, shared


def test_every_fallback_path_is_covered():
    methods = {GOLDEN[e["id"]]["method"] for e in CORPUS["manual"]}
    assert methods == {"parsed", "tokens", "chars"}


def test_driver_form_matches_django_form():
    """The driver sees `$n` SQL (the hook) where Django wrote `%s`: same fingerprint."""
    for e in CORPUS["django"]:
        sql = e["sql"]
        if "%s" not in sql:
            continue
        n = iter(range(1, 10_000))
        driver = re.sub(r"%s", lambda m: f"${next(n)}", sql.replace("%%", "%"))
        assert _native.fingerprint_sql(driver)[0] == _native.fingerprint_sql(sql)[0], e["id"]


def test_django_corpus_is_current():
    """Django's compiler still emits the statements stored in corpus_django.jsonl (run in
    a subprocess: the generator needs a database of its own)."""
    import subprocess
    import sys

    import django

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "src", "sql", "testdata", "corpus_django.jsonl"), encoding="utf-8") as fh:
        generated_with = json.loads(fh.readline())["comment"].rsplit(" ", 1)[-1]
    if generated_with.rsplit(".", 1)[0] != django.get_version().rsplit(".", 1)[0]:
        pytest.skip(f"the corpus was generated with Django {generated_with}; this is {django.get_version()}")
    from django_rustpg import bulk_update, compiler

    if not (bulk_update.verified_django() and compiler._verified_django()):
        # Its bulk writes then take Django's own statements, not the ones the corpus holds.
        pytest.skip(f"Django {django.get_version()} is not verified for the native bulk statements")
    proc = subprocess.run([sys.executable, os.path.join(here, "corpus.py"), "--check"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
