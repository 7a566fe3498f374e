"""Strict comparison of what the native path and Django's path build.

``assert_same_objects(native, django)`` walks both structures in step and collects every
difference, each with the path to it (``[3]._state.fields_cache['author'].rating``):

* values must have the same type (``type(a) is type(b)``: 1 vs 1.0 vs True differ) and be
  equal; Decimals must have the same digits and exponent (``str``), floats the same
  ``repr`` (-0.0, nan), datetimes and times the same tzinfo (class, name and offset) and
  fold, ranges the same bounds and endpoints (compared by these rules);
* lists, tuples (named tuples by their class), dicts (also their key order), sets recurse;
* model instances: same class, same ``__dict__`` keys in the same order, every value by
  these rules; ``_state`` by ``db``, ``adding`` and the contents of ``fields_cache``
  (missing == empty: the cache is created lazily); same ``get_deferred_fields()``;
* QuerySets (prefetch caches): same model and ``_result_cache``;
* other objects with a ``__dict__`` (custom field values, FieldFile): same class and
  ``__dict__``; anything else: ``==``.

Cycles (a select_related child pointing back at its parent) are followed once.
``db_map`` maps the alias names found in ``_state.db`` on the Django side (``plain``,
``stock``) to the native side's (``default``).
"""
import datetime
import decimal
import math

from django.db.models import Model, QuerySet
from django.db.models.base import ModelState

try:
    from psycopg.types.range import Range
except ImportError:  # pragma: no cover
    Range = ()

MAX_REPORTED = 25


class _Walker:
    def __init__(self, db_map, ordered_dicts):
        self.diffs = []
        self.seen = set()
        self.db_map = db_map or {}
        self.ordered_dicts = ordered_dicts

    def add(self, path, msg):
        self.diffs.append(f"{path or '<root>'}: {msg}")

    def walk(self, a, b, path):
        if len(self.diffs) > MAX_REPORTED:
            return
        if type(a) is not type(b):
            self.add(path, f"type {type(a).__qualname__} != {type(b).__qualname__}  (native {a!r:.120}, django {b!r:.120})")
            return
        if isinstance(a, Model):
            return self.model(a, b, path)
        if isinstance(a, ModelState):
            return self.state(a, b, path)
        if isinstance(a, QuerySet):
            key = (id(a), id(b))
            if key in self.seen:
                return
            self.seen.add(key)
            if a.model is not b.model:
                self.add(path, f"queryset model {a.model} != {b.model}")
            ra, rb = a._result_cache, b._result_cache
            if (ra is None) != (rb is None):
                self.add(path, f"queryset evaluated: native {ra is not None}, django {rb is not None}")
                return
            if ra is not None:
                self.walk(list(ra), list(rb), path + "._result_cache")
            return
        if isinstance(a, dict):
            return self.mapping(a, b, path)
        if isinstance(a, (list, tuple)):
            if len(a) != len(b):
                self.add(path, f"length {len(a)} != {len(b)}")
            for i, (x, y) in enumerate(zip(a, b)):
                self.walk(x, y, f"{path}[{i}]")
            return
        if isinstance(a, (set, frozenset)):
            if a != b:
                self.add(path, f"{a!r} != {b!r}")
            return
        if isinstance(a, float):
            if not (repr(a) == repr(b) or (math.isnan(a) and math.isnan(b))):
                self.add(path, f"{a!r} != {b!r}")
            return
        if isinstance(a, decimal.Decimal):
            if str(a) != str(b):
                self.add(path, f"Decimal {str(a)!r} != {str(b)!r}")
            return
        if isinstance(a, (datetime.datetime, datetime.time)):
            if a != b or a.fold != b.fold:
                self.add(path, f"{a!r} != {b!r}")
                return
            self.tz(a, b, path)
            return
        if Range and isinstance(a, Range):
            if a.isempty != b.isempty or a._bounds != b._bounds:
                self.add(path, f"{a!r} != {b!r}")
            self.walk(a.lower, b.lower, path + ".lower")
            self.walk(a.upper, b.upper, path + ".upper")
            return
        if isinstance(a, memoryview):
            if a.tobytes() != b.tobytes():
                self.add(path, f"{a.tobytes()!r} != {b.tobytes()!r}")
            return
        if isinstance(a, (str, bytes, int, bool, type(None), datetime.date, datetime.timedelta)):
            if a != b:
                self.add(path, f"{a!r:.200} != {b!r:.200}")
            return
        if hasattr(a, "__dict__") and not isinstance(a, type):
            key = (id(a), id(b))
            if key in self.seen:
                return
            self.seen.add(key)
            self.mapping(vars(a), vars(b), path, ordered=False, attrs=True)
            return
        if a != b:
            self.add(path, f"{a!r:.200} != {b!r:.200}")

    def tz(self, a, b, path):
        ta, tb = a.tzinfo, b.tzinfo
        if (ta is None) != (tb is None):
            self.add(path, f"tzinfo {ta!r} != {tb!r}")
            return
        if ta is None:
            return
        if type(ta) is not type(tb) or str(ta) != str(tb) or a.utcoffset() != b.utcoffset():
            self.add(path, f"tzinfo {ta!r} ({a.utcoffset()}) != {tb!r} ({b.utcoffset()})")

    def mapping(self, a, b, path, ordered=None, attrs=False):
        ordered = self.ordered_dicts if ordered is None else ordered
        ka, kb = list(a), list(b)
        if set(ka) != set(kb):
            missing = [k for k in kb if k not in a]
            extra = [k for k in ka if k not in b]
            if missing:
                self.add(path, f"keys missing on the native side: {missing}")
            if extra:
                self.add(path, f"keys only on the native side: {extra}")
        elif ordered and ka != kb:
            self.add(path, f"key order {ka} != {kb}")
        b_keys = {k: k for k in kb}
        for k in ka:
            if k in b:
                if type(k) is not type(b_keys[k]):
                    self.add(path, f"key {k!r} type {type(k).__name__} != {type(b_keys[k]).__name__}")
                sub = f"{path}.{k}" if attrs and isinstance(k, str) else f"{path}[{k!r}]"
                self.walk(a[k], b[k], sub)

    def model(self, a, b, path):
        key = (id(a), id(b))
        if key in self.seen:
            return
        self.seen.add(key)
        da, db = vars(a), vars(b)
        self.mapping(da, db, path, ordered=self.ordered_dicts, attrs=True)
        fa, fb = a.get_deferred_fields(), b.get_deferred_fields()
        if fa != fb:
            self.add(path, f"get_deferred_fields() {sorted(fa)} != {sorted(fb)}")

    def state(self, a, b, path):
        db_b = self.db_map.get(b.db, b.db)
        if a.db != db_b:
            self.add(path + ".db", f"{a.db!r} != {b.db!r}")
        if a.adding is not b.adding:
            self.add(path + ".adding", f"{a.adding!r} != {b.adding!r}")
        # from_db's stores and the related setters' fields_cache, in their order (vars(),
        # pickling and copy show it), and the cached objects in the order they were set.
        oa, ob = list(vars(a)), list(vars(b))
        if oa != ob:
            self.add(path, f"_state attribute order {oa} != {ob}")
        ca = vars(a).get("fields_cache", {})
        cb = vars(b).get("fields_cache", {})
        if list(ca) != list(cb):
            self.add(path + ".fields_cache", f"key order {list(ca)} != {list(cb)}")
        self.mapping(ca, cb, path + ".fields_cache", ordered=False)
        # Django 6.1: peers are weak references to the instances loaded with this one.
        pa, pb = vars(a).get("peers"), vars(b).get("peers")
        if (pa is None) != (pb is None):
            self.add(path + ".peers", f"set on native {pa is not None}, on django {pb is not None}")
        elif pa is not None:
            ka = [_peer_key(r) for r in pa]
            kb = [_peer_key(r) for r in pb]
            if ka != kb:
                self.add(path + ".peers", f"{ka[:10]} != {kb[:10]}")
        skip = ("db", "adding", "fields_cache", "peers")
        other_a = {k: v for k, v in vars(a).items() if k not in skip}
        other_b = {k: v for k, v in vars(b).items() if k not in skip}
        self.mapping(other_a, other_b, path, ordered=False, attrs=True)



def _peer_key(ref):
    obj = ref()
    return None if obj is None else (type(obj).__name__, obj.pk)


def differences(native, django, db_map=None, ordered_dicts=True):
    """Every difference between the two structures, as 'path: what' strings."""
    w = _Walker(db_map, ordered_dicts)
    w.walk(native, django, "")
    return w.diffs


def assert_same_objects(native, django, db_map=None, ordered_dicts=True, what=""):
    """Fails with every difference (up to MAX_REPORTED) between native and Django results."""
    diffs = differences(native, django, db_map=db_map, ordered_dicts=ordered_dicts)
    if diffs:
        head = f"native and Django results differ{' for ' + what if what else ''} ({len(diffs)} difference(s)):"
        shown = diffs[:MAX_REPORTED]
        more = "" if len(diffs) <= MAX_REPORTED else f"\n  ... and more"
        raise AssertionError("\n  ".join([head, *shown]) + more)


assert_same_rows = assert_same_objects
