"""Unused eager loading: a ``select_related()``/``prefetch_related()`` path whose related
objects nothing in the scope read.

Reading a related object that was loaded eagerly runs no statement, so the driver cannot
see it: this is the one part of the detector that hooks Python. While a scope that wants
it is open (``_active`` > 0), evaluating a queryset with eager paths records a *request*
(model, paths, rows, application call site), and the relation descriptors record which
(model, relation) pairs were read. A path is unused only if no instance of its model had
that relation read anywhere in the scope (by the application, a template, a serializer
or Django itself): a relation read for some rows only is used. Nothing here runs while
no such scope is open beyond one integer test per queryset evaluation and per relation
access.
"""

from __future__ import annotations

import contextvars
import sys
import threading

from . import _markers as rt

_trackers: contextvars.ContextVar = contextvars.ContextVar("django_rustpg_nplusone_eager", default=())
_active = 0  # open tracking scopes in the process (a cheap first test for the hooks)
_lock = threading.Lock()
_installed = False


class Tracker:
    def __init__(self):
        self.requests = {}  # (frames, model, path, call) -> [count, rows]
        self.accessed = set()  # (model class, relation name)


def start():
    global _active
    install()
    tracker = Tracker()
    token = _trackers.set(_trackers.get() + (tracker,))
    with _lock:
        _active += 1
    return tracker, token


def stop(token):
    global _active
    with _lock:
        _active -= 1
    try:
        _trackers.reset(token)
    except ValueError:
        _trackers.set(())


def _app_frames():
    frame = sys._getframe(2)
    frames = []
    while frame is not None and len(frames) < 3:
        code = frame.f_code
        if rt.is_app_file(code.co_filename):
            frames.append((code, frame.f_lineno))
        elif frames:
            break
        frame = frame.f_back
    return tuple(frames)


def _record_request(qs, rows):
    from django.db.models import Prefetch

    query = qs.query
    paths = []
    sr = query.select_related
    if isinstance(sr, dict):
        def leaves(tree, prefix):
            for name, sub in tree.items():
                if isinstance(sub, dict) and sub:
                    leaves(sub, prefix + [name])
                else:
                    paths.append(("select_related", "__".join(prefix + [name])))
        leaves(sr, [])
    for lookup in qs._prefetch_related_lookups:
        if isinstance(lookup, Prefetch):
            if lookup.to_attr:
                continue  # read as a plain attribute: not observable
            lookup = lookup.prefetch_to
        paths.append(("prefetch_related", lookup))
    if not paths:
        return
    frames = _app_frames()
    for tracker in _trackers.get():
        for call, path in paths:
            entry = tracker.requests.setdefault((frames, qs.model, path, call), [0, 0])
            entry[0] += 1
            entry[1] += rows


def install():
    """Wraps QuerySet._fetch_all and the relation descriptors' __get__ (once)."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        from django.db.models.fields import related_descriptors as rd
        from django.db.models.query import ModelIterable, QuerySet

        from django.db.models import query as query_mod

        fetch_all = QuerySet._fetch_all
        # Django's prefetch machinery reads the descriptors itself (to store what it
        # fetched): those reads are not uses.
        internal = {query_mod.prefetch_one_level.__code__, query_mod.prefetch_related_objects.__code__,
                    query_mod.get_prefetcher.__code__}

        def _fetch_all(self):
            if not _active or self._result_cache is not None or not _trackers.get():
                return fetch_all(self)
            fetch_all(self)
            if (self.query.select_related or self._prefetch_related_lookups) and self._iterable_class is ModelIterable:
                _record_request(self, len(self._result_cache))

        QuerySet._fetch_all = _fetch_all

        def wrap(cls, name_of):
            original = cls.__get__

            def __get__(self, instance, cls=None):
                if _active and instance is not None:
                    trackers = _trackers.get()
                    # Once per descriptor and set of open trackers: the first read is
                    # all the report needs, and relation reads are hot in loops.
                    if trackers and self.__dict__.get("_np_seen") is not trackers:
                        if sys._getframe(1).f_code not in internal:
                            try:
                                key = (type(instance), name_of(self))
                                for tracker in trackers:
                                    tracker.accessed.add(key)
                                self.__dict__["_np_seen"] = trackers
                            except Exception:
                                pass
                return original(self, instance, cls)

            __get__.__wrapped__ = original
            cls.__get__ = __get__

        wrap(rd.ForwardManyToOneDescriptor, lambda d: d.field.name)
        wrap(rd.ReverseOneToOneDescriptor, lambda d: d.related.get_accessor_name())
        wrap(rd.ReverseManyToOneDescriptor,
             lambda d: d.field.name if getattr(d, "reverse", True) is False else d.rel.get_accessor_name())
        try:
            from django.contrib.contenttypes import fields as ct_fields

            if hasattr(ct_fields, "GenericForeignKeyDescriptor"):  # Django >= 6.1
                wrap(ct_fields.GenericForeignKeyDescriptor, lambda d: d.field.name)
            else:
                wrap(ct_fields.GenericForeignKey, lambda d: d.name)
        except Exception:  # contenttypes not installed
            pass
        _installed = True


def findings(tracker, *, min_rows=0, scope_name=None) -> list:
    """One ``unused_eager_load`` finding per (call site, model, path) none of whose
    related objects was read in the scope."""
    from . import fix_check
    from .findings import frame_function, frame_text, make_finding

    out = []
    for (frames, model, path, call), (count, rows) in tracker.requests.items():
        if rows <= 0 or rows < min_rows:
            continue
        hops = fix_check.resolve_path(model, path)
        if isinstance(hops, str):
            continue
        owner, unused = model, None
        for i, hop in enumerate(hops):
            if not _read(tracker.accessed, owner, hop.name):
                unused = (i, owner, hop)
                break
            owner = hop.model
            if owner is None:
                break
        if unused is None:
            continue
        i, owner, hop = unused
        names = [h.name for h in hops]
        fix = (f'remove "{path}" from {call}()' if i == 0
               else f'shorten "{path}" to "{"__".join(names[:i])}" in {call}()')
        # Without an application frame Django asked for it (admin list_select_related...).
        callsite = frame_text(frames[0]) if frames else "django code (no application frame)"
        out.append(make_finding(
            "unused_eager_load", sql="", fingerprint=f"{model._meta.label}:{call}:{path}", frames=list(frames), ctx={},
            count=count, total=0.0, callsite=callsite, function=frame_function(frames[0]) if frames else "",
            stack=[frame_text(fr) for fr in frames], relation=f"{owner._meta.label}.{hop.name}", fix=fix,
            confirmed=True, scope_name=scope_name, distinct=0, framework=not frames, eager=(path, call, rows),
        ))
    return out


def _read(accessed, owner, name) -> bool:
    for cls, n in accessed:
        if n == name and (issubclass(cls, owner) or issubclass(owner, cls)):
            return True
    return False
