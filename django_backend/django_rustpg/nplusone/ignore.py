"""Ignore rules: ``# nplusone: ignore`` on the call-site line, and the relation, model
and path rules of ``NPLUSONE["ignore"]``."""

from __future__ import annotations

import linecache
import os
from .findings import Finding

IGNORE_COMMENT = "nplusone: ignore"


def _has_ignore_comment(frame) -> bool:
    code, line = frame
    return IGNORE_COMMENT in linecache.getline(code.co_filename, line)


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
