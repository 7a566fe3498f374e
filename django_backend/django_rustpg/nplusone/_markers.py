"""Glue between the driver's per-statement recorder (Rust, ``src/nplusone/``) and Python.

- two context variables: the scope statements go to, and the application frames of an
  async caller (set around ``sync_to_async``, whose worker thread has none of its own);
- ``classify(code)``: is this code object application code, and is it one of the Django
  functions whose presence on the stack tells what loaded the rows (the "markers")?
  The driver calls it once per code object and caches the answer;
- ``capture()``: on the second run of a group the driver calls it to read those Django
  frames once (the descriptor, the queryset, the template node) into a small dict.
"""

from __future__ import annotations

import contextvars
import os
import site
import sys
import sysconfig
import threading
import types

from .. import _native

scope_var: contextvars.ContextVar = contextvars.ContextVar("django_rustpg_nplusone_scope", default=None)
origin_var: contextvars.ContextVar = contextvars.ContextVar("django_rustpg_nplusone_origin", default=None)
# The Python-level scope (parent of nested scopes; cleared by ignore()).
pyscope_var: contextvars.ContextVar = contextvars.ContextVar("django_rustpg_nplusone_pyscope", default=None)

# The bits are defined once, in Rust (src/nplusone/mod.rs), and read from there.
_FLAGS = _native.NPLUSONE_FLAGS
_BITS = _native.NPLUSONE_MARKERS
APP = _FLAGS["app"]
M_FORWARD = _BITS["forward"]
M_REVERSE_ONE = _BITS["reverse_one"]
M_DEFERRED = _BITS["deferred"]
M_GFK = _BITS["gfk"]
M_GET = _BITS["get"]
M_COUNT = _BITS["count"]
M_EXISTS = _BITS["exists"]
M_PREFETCH = _BITS["prefetch"]
M_TEMPLATE = _BITS["template"]
M_REFRESH = _BITS["refresh"]
M_SAVE = _BITS["save"]
M_DELETE = _BITS["delete"]
M_QS_UPDATE = _BITS["queryset_update"]
M_QS_DELETE = _BITS["queryset_delete"]
M_BULK_CREATE = _BITS["bulk_create"]
M_BULK_UPDATE = _BITS["bulk_update"]
M_RELATED = _BITS["related"]  # a related manager's add/remove/set/clear/create/...
M_VALUES = _BITS["values"]  # rows read by values()/values_list(): no model instances to attach relations to
M_ITERATOR = _BITS["iterator"]  # rows read by iterator(): prefetch_related() needs chunk_size there
# A Django operation that can run several statements per call: they count as one
# repetition of their group.
OPERATION = _FLAGS["operation"]
BOUNDARY = _FLAGS["boundary"]  # asgiref's SyncToAsync.thread_handler

MARKER_NAMES = {bit: name for name, bit in _BITS.items()}
# Bits that describe how the rows were read, not what loaded them.
SHAPE = M_VALUES | M_ITERATOR

_markers: dict = {}  # code object -> marker bit
# Read by capture() only (never by the per-statement walk): the QuerySet methods whose
# `self` is the queryset the application called (filters, ordering, slicing of a related
# manager), and the cursor frame holding the statement's parameters (EXPLAIN on the page).
_qs_codes: dict = {}
_execute_code = None
_lock = threading.Lock()
_installed = False
_excluded: tuple = ()
_file_is_app: dict = {}


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _compute_excluded() -> tuple:
    import django

    from .. import __file__ as pkg_file

    dirs = {os.path.dirname(django.__file__), os.path.dirname(pkg_file)}
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            dirs.add(paths[key])
    try:
        dirs.update(site.getsitepackages())
    except Exception:
        pass
    try:
        dirs.add(site.getusersitepackages())
    except Exception:
        pass
    out = []
    for d in dirs:
        for p in {d, os.path.realpath(d)}:
            out.append(_norm(p).rstrip(os.sep) + os.sep)
    return tuple(sorted(set(out), key=len, reverse=True))


def is_app_file(filename: str) -> bool:
    """Application code: not Django, not django_rustpg, not the stdlib, not site-packages."""
    known = _file_is_app.get(filename)
    if known is not None:
        return known
    if not filename or filename.startswith("<"):
        result = False
    else:
        norm = _norm(filename)
        result = not (
            "site-packages" in norm
            or "dist-packages" in norm
            or norm.startswith(_excluded)
        )
    if len(_file_is_app) > 50_000:
        _file_is_app.clear()
    _file_is_app[filename] = result
    return result


def classify(code) -> int:
    flags = _markers.get(code, 0)
    if is_app_file(code.co_filename):
        flags |= APP
    return flags


def _label(model) -> str | None:
    try:
        return model._meta.label
    except Exception:
        return None


def _describe(bit, frame) -> dict | None:
    loc = frame.f_locals
    this = loc.get("self")
    try:
        if bit == M_FORWARD:
            return {"kind": "forward", "model": _label(type(loc.get("instance"))), "field": this.field.name}
        if bit == M_REVERSE_ONE:
            return {
                "kind": "reverse_one",
                "model": _label(type(loc.get("instance"))),
                "field": this.related.get_accessor_name(),
            }
        if bit == M_DEFERRED:
            return {"kind": "deferred", "model": _label(type(loc.get("instance"))), "field": this.field.name}
        if bit == M_GFK:
            name = this.field.name if hasattr(this, "field") and not hasattr(this, "fk_field") else this.name
            return {"kind": "gfk", "model": _label(type(loc.get("instance"))), "field": name}
        if bit in (M_GET, M_COUNT, M_EXISTS):
            info = {"kind": MARKER_NAMES[bit], "model": _label(this.model)}
            hints = getattr(this, "_hints", None) or {}
            inst = hints.get("instance")
            if inst is not None:
                info["instance"] = _label(type(inst))
            return info
        if bit == M_REFRESH:
            return {"kind": "refresh", "model": _label(type(this))}
        if bit == M_PREFETCH:
            return {"kind": "prefetch"}
        if bit == M_SAVE:
            fields = loc.get("update_fields")
            info = {"kind": "save", "model": _label(type(this))}
            if fields is not None:
                info["update_fields"] = sorted(fields)  # type: ignore[assignment]
            return info
        if bit == M_DELETE:
            return {"kind": "delete", "model": _label(type(this))}
        if bit in (M_QS_UPDATE, M_QS_DELETE, M_BULK_CREATE, M_BULK_UPDATE):
            return {"kind": MARKER_NAMES[bit], "model": _label(this.model)}
        if bit == M_RELATED:
            many_to_many = hasattr(this, "through")
            accessor = this.prefetch_cache_name if many_to_many else this.field.remote_field.get_accessor_name()
            return {
                "kind": f"related_{frame.f_code.co_name}",
                "model": _label(type(this.instance)),
                "field": accessor,
                "many_to_many": many_to_many,
            }
    except Exception:
        return None
    return None


def _template_location(frame) -> str | None:
    try:
        node = frame.f_locals.get("self")
        origin = getattr(node, "origin", None)
        name = getattr(origin, "template_name", None) or getattr(origin, "name", None) or "<template>"
        line = getattr(getattr(node, "token", None), "lineno", None)
        return f"{name}:{line}" if line else str(name)
    except Exception:
        return None


def capture():
    """Reads the Django frames between the database call and the application frame."""
    try:
        frame = sys._getframe(1)
    except ValueError:
        return None
    ctx = {}
    try:
        while frame is not None:
            code = frame.f_code
            if is_app_file(code.co_filename):
                break
            bit = _markers.get(code, 0) & ~(OPERATION | SHAPE)
            if bit == BOUNDARY:
                break
            if code is _execute_code and "params" not in ctx:
                _capture_params(frame, ctx)
            if "django_frame" not in ctx:
                where = _framework_frame(code, frame)
                if where:
                    ctx["django_frame"] = where
            qs_kind = _qs_codes.get(code)
            if qs_kind is not None:
                # Outermost wins: the queryset the application itself called.
                _capture_queryset(qs_kind, frame, ctx)
            if bit == M_TEMPLATE:
                if "template" not in ctx:
                    loc = _template_location(frame)
                    if loc:
                        ctx["template"] = loc
            elif bit:
                info = _describe(bit, frame)
                if info:
                    # Outermost wins: the call the application made (a descriptor), not
                    # what Django does inside it (a .get()).
                    ctx.update(info)
            frame = frame.f_back
    finally:
        del frame
    return ctx or None


_django_root = None
# Django's plumbing between the application and a statement: never "the caller".
_PLUMBING = ("db", "utils", "template", "templatetags", "dispatch")


def _framework_frame(code, frame) -> str | None:
    """``django/contrib/admin/views/main.py:291`` when Django's own code (not its ORM or
    template plumbing) issued the statement: the caller a framework finding names."""
    global _django_root
    if _django_root is None:
        import django

        _django_root = os.path.dirname(os.path.abspath(django.__file__))
    path = os.path.abspath(code.co_filename)
    if not path.startswith(_django_root + os.sep):
        return None
    rel = os.path.relpath(path, os.path.dirname(_django_root))
    if rel.split(os.sep)[1] in _PLUMBING:
        return None
    return f"{rel}:{frame.f_lineno}"


def _capture_params(frame, ctx):
    """The statement in Django's form and its parameters, as JSON-safe values (for the
    report page's EXPLAIN; never logged)."""
    try:
        loc = frame.f_locals
        sql, params = loc.get("sql"), loc.get("params")
        if not isinstance(sql, str):
            return
        ctx["sql"] = sql
        ctx["params"] = [_json_safe(p) for p in params] if isinstance(params, (list, tuple)) else None
        if isinstance(params, (list, tuple)):
            ctx["raw_params"] = tuple(params)
        db = getattr(loc.get("self"), "db", None)
        ctx["alias"] = getattr(db, "alias", None)
    except Exception:
        pass


def _json_safe(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


def _capture_queryset(qs_kind, frame, ctx):
    try:
        this = frame.f_locals.get("self")
        if this is None:
            return
        from . import _querysets

        info = _querysets.describe(this)
        if info is None:
            return
        info["call"] = qs_kind
        if qs_kind == "aggregate":
            info["aggregates"] = _querysets.describe_aggregates(frame.f_locals.get("kwargs") or {})
        ctx["qs"] = info
    except Exception as e:  # never break the user's query
        ctx["qs"] = {"error": f"could not read the queryset ({type(e).__name__})"}


def _register_markers():
    from django.db.models.base import Model
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )
    from django.db.models import query as query_mod
    from django.db.models.query import QuerySet
    from django.db.models.query_utils import DeferredAttribute
    from django.template.base import Node

    pairs = [
        (ForwardManyToOneDescriptor.__get__, M_FORWARD),
        (ReverseOneToOneDescriptor.__get__, M_REVERSE_ONE),
        (DeferredAttribute.__get__, M_DEFERRED),
        (QuerySet.get, M_GET),
        (QuerySet.count, M_COUNT),
        (QuerySet.exists, M_EXISTS),
        (query_mod.prefetch_related_objects, M_PREFETCH),
        (query_mod.prefetch_one_level, M_PREFETCH),
        (Model.refresh_from_db, M_REFRESH),
        (Node.render_annotated, M_TEMPLATE),
        (Model.save_base, M_SAVE | OPERATION),
        (Model.delete, M_DELETE | OPERATION),
        (QuerySet.update, M_QS_UPDATE | OPERATION),
        (QuerySet.delete, M_QS_DELETE | OPERATION),
        (QuerySet.bulk_create, M_BULK_CREATE | OPERATION),
        (QuerySet.bulk_update, M_BULK_UPDATE | OPERATION),
    ]
    try:
        from django.apps import apps

        if apps.ready:
            from django.contrib.contenttypes import fields as ct_fields

            # Django >= 6.1 moved the accessor to a descriptor class of its own.
            gfk = getattr(ct_fields, "GenericForeignKeyDescriptor", None) or ct_fields.GenericForeignKey
            pairs.append((gfk.__get__, M_GFK))
    except Exception:
        pass
    try:
        from asgiref.sync import SyncToAsync

        pairs.append((SyncToAsync.thread_handler, BOUNDARY))
    except Exception:  # pragma: no cover
        pass
    # materialize.py wraps the iterables' __iter__ in one shared function: mark the
    # originals and its values builder instead.
    from .. import materialize

    for cls in (query_mod.ValuesIterable, query_mod.ValuesListIterable, query_mod.NamedValuesListIterable,
                query_mod.FlatValuesListIterable):
        it = cls.__dict__.get("__iter__")
        pairs.append((getattr(it, "__wrapped__", it), M_VALUES))
    pairs += [(materialize._value_rows, M_VALUES), (QuerySet._iterator, M_ITERATOR)]
    for func, bit in pairs:
        code = getattr(func, "__code__", None)
        if code is not None:
            _markers[code] = bit
    global _execute_code
    from django.db.backends.utils import CursorWrapper

    _execute_code = CursorWrapper._execute.__code__
    for name, kind in (("_fetch_all", "iterate"), ("count", "count"), ("exists", "exists"),
                       ("aggregate", "aggregate"), ("get", "get")):
        _qs_codes[QuerySet.__dict__[name].__code__] = kind
    # Related managers are classes built per relation; their methods' code objects are
    # constants of the factory functions, shared by every relation.
    from django.db.models.fields import related_descriptors

    mutators = {"add", "remove", "set", "clear", "create", "get_or_create", "update_or_create"}
    for factory in (related_descriptors.create_forward_many_to_many_manager,
                    related_descriptors.create_reverse_many_to_one_manager):
        for code in _nested_codes(factory.__code__):
            if code.co_name in mutators:
                _markers[code] = M_RELATED | OPERATION


def _nested_codes(code):
    stack, out = [code], []
    while stack:
        for const in stack.pop().co_consts:
            if isinstance(const, types.CodeType):
                out.append(const)
                stack.append(const)
    return out


def _patch_asgiref():
    try:
        from asgiref.sync import SyncToAsync
    except ImportError:  # pragma: no cover
        return
    original = SyncToAsync.__call__
    if getattr(original, "_rustpg_nplusone", False):
        return

    async def __call__(self, *args, **kwargs):
        if _native.nplusone_active() and scope_var.get() is not None:
            token = origin_var.set(_native.capture_origin())
            try:
                return await original(self, *args, **kwargs)
            finally:
                try:
                    origin_var.reset(token)
                except ValueError:  # pragma: no cover
                    origin_var.set(None)
        return await original(self, *args, **kwargs)

    __call__._rustpg_nplusone = True
    __call__.__wrapped__ = original
    SyncToAsync.__call__ = __call__


def install():
    """Idempotent: registers the callbacks with the driver on first use."""
    global _installed, _excluded
    if _installed:
        return
    with _lock:
        if _installed:
            return
        _excluded = _compute_excluded()
        _register_markers()
        _patch_asgiref()
        _native.nplusone_install(scope_var, origin_var, classify, capture)
        _installed = True
