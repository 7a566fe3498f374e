"""``DJANGO_RUSTPG_NPLUSONE``: every N+1 detector setting, in one dict.

    DJANGO_RUSTPG_NPLUSONE = {
        "MODE": "warn",            # "off" | "warn" | "raise"
        "THRESHOLD": 2,            # repeats (per call site, per scope) that make a finding
        "IGNORE": [],              # "app.Model.field", "app.Model", "path/file.py[:LINE]"
        "REPORT_PATH": None,       # JSON report of the pytest plugin (a file path)
        "BASELINE_PATH": None,     # pytest: known findings that do not fail (JSON file)
        "REPORT_URL": "/__nplusone__/",  # the HTML page (DEBUG only; None: not served)
        "HISTORY": 100,            # requests the HTML page remembers (per process)
        "DUPLICATES": True,        # report identical statements (same SQL and parameters)
        "PYTEST": False,           # pytest: check every test, not only marked ones
        "CELERY": True,            # open a scope per Celery task (when Celery is installed)
        "UNUSED_EAGER_LOAD": None, # unused select_related/prefetch_related paths: None = reported in
                                   # "warn" mode and explicit scopes, not where findings fail (raise
                                   # mode, pytest, NPlusOneMixin); N = everywhere, for eager loads of >= N rows
    }

Unknown keys, bad values, and ``IGNORE`` entries naming an unknown model, field or file
raise ``ImproperlyConfigured`` when the settings are first loaded (at startup: the
middleware, the app config and the pytest plugin load them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MODES = ("off", "warn", "raise")

DEFAULTS = {
    "MODE": "warn",
    "THRESHOLD": 2,
    "IGNORE": [],
    "REPORT_PATH": None,
    "BASELINE_PATH": None,
    "REPORT_URL": "/__nplusone__/",
    "HISTORY": 100,
    "DUPLICATES": True,
    "PYTEST": False,
    "CELERY": True,
    "UNUSED_EAGER_LOAD": None,
}


@dataclass(frozen=True)
class IgnoreRule:
    """One ``IGNORE`` entry. ``kind`` is "relation", "model" or "path"."""

    kind: str
    value: str
    line: int | None = None
    raw: str = ""


@dataclass(frozen=True)
class Config:
    mode: str = "warn"
    threshold: int = 2
    ignore: tuple = ()
    report_path: str | None = None
    baseline_path: str | None = None
    report_url: str | None = "/__nplusone__/"
    history: int = 100
    duplicates: bool = True
    pytest: bool = False
    celery: bool = True
    unused_eager_load: int | None = None
    raw: dict = field(default_factory=dict, compare=False)


_cached: Config | None = None


def _improper(msg):
    from django.core.exceptions import ImproperlyConfigured

    return ImproperlyConfigured(f"DJANGO_RUSTPG_NPLUSONE: {msg}")


def base_dir() -> str:
    """Where relative paths (IGNORE entries, call sites) are resolved: BASE_DIR, else cwd."""
    try:
        from django.conf import settings

        if settings.configured and getattr(settings, "BASE_DIR", None):
            return os.fspath(settings.BASE_DIR)
    except Exception:
        pass
    return os.getcwd()


def parse_ignore(entry, *, check=True) -> IgnoreRule:
    """Parses (and, with ``check``, validates against the app registry / file system)."""
    if not isinstance(entry, str) or not entry.strip():
        raise _improper(f"IGNORE entries must be non-empty strings, not {entry!r}")
    text = entry.strip()
    path, sep, line = text.rpartition(":")
    if sep and line.isdigit() and path.endswith(".py"):
        rule = IgnoreRule("path", path, int(line), text)
    elif text.endswith(".py") or "/" in text or os.sep in text:
        rule = IgnoreRule("path", text, None, text)
    else:
        parts = text.split(".")
        if len(parts) == 2:
            rule = IgnoreRule("model", text, None, text)
        elif len(parts) == 3:
            rule = IgnoreRule("relation", text, None, text)
        else:
            raise _improper(
                f"IGNORE entry {text!r} is neither 'app_label.Model', 'app_label.Model.field' "
                f"nor a path to a .py file"
            )
    if check:
        _check_rule(rule)
    return rule


def _check_rule(rule: IgnoreRule):
    if rule.kind == "path":
        candidates = [rule.value] if os.path.isabs(rule.value) else [
            os.path.join(base_dir(), rule.value),
            os.path.join(os.getcwd(), rule.value),
        ]
        if not any(os.path.exists(c) for c in candidates):
            raise _improper(f"IGNORE path {rule.value!r} does not exist (relative to {base_dir()})")
        if rule.line is not None:
            existing = next(c for c in candidates if os.path.exists(c))
            if os.path.isfile(existing):
                with open(existing, "rb") as fh:
                    n = sum(1 for _ in fh)
                if not 1 <= rule.line <= n:
                    raise _improper(f"IGNORE {rule.raw!r}: the file has {n} lines")
        return
    from django.apps import apps

    label = rule.value if rule.kind == "model" else rule.value.rsplit(".", 1)[0]
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise _improper(f"IGNORE entry {rule.raw!r}: unknown model {label!r}") from None
    if rule.kind == "relation":
        name = rule.value.rsplit(".", 1)[1]
        if not _has_attribute_field(model, name):
            raise _improper(f"IGNORE entry {rule.raw!r}: {label} has no field or relation {name!r}")


def _has_attribute_field(model, name) -> bool:
    from django.core.exceptions import FieldDoesNotExist

    try:
        model._meta.get_field(name)
        return True
    except FieldDoesNotExist:
        pass
    for rel in model._meta.related_objects:
        if rel.get_accessor_name() == name:
            return True
    return any(getattr(f, "name", None) == name for f in model._meta.private_fields)


def load(*, check=True) -> Config:
    """Reads and validates the settings (cached until ``reset()``)."""
    global _cached
    if _cached is not None:
        return _cached
    raw = {}
    try:
        from django.conf import settings

        if settings.configured:
            raw = getattr(settings, "DJANGO_RUSTPG_NPLUSONE", None) or {}
    except Exception:
        raw = {}
    if not isinstance(raw, dict):
        raise _improper("must be a dict")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise _improper(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    values = {**DEFAULTS, **raw}
    mode = values["MODE"]
    if mode not in MODES:
        raise _improper(f"MODE must be one of {', '.join(MODES)}, not {mode!r}")
    threshold = values["THRESHOLD"]
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 2:
        raise _improper(f"THRESHOLD must be an integer >= 2, not {threshold!r}")
    history = values["HISTORY"]
    if not isinstance(history, int) or history < 0:
        raise _improper(f"HISTORY must be a non-negative integer, not {history!r}")
    unused = values["UNUSED_EAGER_LOAD"]
    if unused is not None and (not isinstance(unused, int) or isinstance(unused, bool) or unused < 1):
        raise _improper(f"UNUSED_EAGER_LOAD must be None or an integer >= 1 (rows), not {unused!r}")
    ignore = values["IGNORE"]
    if isinstance(ignore, str) or not isinstance(ignore, (list, tuple)):
        raise _improper("IGNORE must be a list of strings")
    rules = tuple(parse_ignore(e, check=check) for e in ignore)
    for key in ("REPORT_PATH", "BASELINE_PATH", "REPORT_URL"):
        if values[key] is not None and not isinstance(values[key], (str, os.PathLike)):
            raise _improper(f"{key} must be a string or None")
    cfg = Config(
        mode=mode,
        threshold=threshold,
        ignore=rules,
        report_path=os.fspath(values["REPORT_PATH"]) if values["REPORT_PATH"] else None,
        baseline_path=os.fspath(values["BASELINE_PATH"]) if values["BASELINE_PATH"] else None,
        report_url=values["REPORT_URL"],
        history=history,
        duplicates=bool(values["DUPLICATES"]),
        pytest=bool(values["PYTEST"]),
        celery=bool(values["CELERY"]),
        unused_eager_load=unused,
        raw=dict(raw),
    )
    if check:
        _cached = cfg
    return cfg


def reset(**kwargs):
    """Forgets the cached settings (connected to Django's ``setting_changed``)."""
    global _cached
    if kwargs.get("setting") in (None, "DJANGO_RUSTPG_NPLUSONE", "BASE_DIR"):
        _cached = None


def _connect_signal():
    try:
        from django.core.signals import setting_changed

        setting_changed.connect(reset, dispatch_uid="django_rustpg_nplusone_settings")
    except Exception:  # pragma: no cover
        pass


_connect_signal()
