"""How a select_related object is linked to its parent: Django's setters, or the same
stores done by the native builder.

Django's compiler links them with ``field.set_cached_value`` (``instance._state.fields_cache
[cache_name] = value``) and, for a non-unique foreign key, a ``lambda x, y: None`` back link.
Called per row, those are three Python frames (with the ``fields_cache`` descriptor's).
Where a setter is exactly one of those, the plan carries its cache key (or "no-op") and
src/materialize.rs stores the value itself, creating ``fields_cache`` as Django's descriptor
does; any other setter (a FilteredRelation's partial, a user's field) is called as given."""

from types import FunctionType

from django.db.models.base import ModelState
from django.db.models.fields.mixins import FieldCacheMixin

_SET_CACHED_VALUE = FieldCacheMixin.set_cached_value
_NOOP_CODE = (lambda obj, from_obj: None).__code__


def _fields_cache_is_djangos():
    """ModelState.fields_cache is Django's non-data descriptor and attribute stores are plain:
    the builder's store then leaves the state exactly as the descriptor's first get would."""
    descriptor = vars(ModelState).get("fields_cache")
    return (
        type(descriptor).__name__ == "ModelStateFieldsCacheDescriptor"
        and not hasattr(type(descriptor), "__set__")
        and ModelState.__setattr__ is object.__setattr__
    )


_NATIVE_STORES = _fields_cache_is_djangos()


def cache_key(setter):
    """The ``fields_cache`` key when ``setter`` is Django's ``set_cached_value`` bound to a
    field or relation whose cached ``cache_name`` is a str (computed by an earlier call:
    computing it here could run a user's ``get_cache_name`` Django would not run); else None."""
    if not _NATIVE_STORES or getattr(setter, "__func__", None) is not _SET_CACHED_VALUE:
        return None
    name = vars(setter.__self__).get("cache_name")
    return name if type(name) is str else None


def is_noop(setter):
    """A plain two-argument function whose body is ``return None`` (the compiler's lambda)."""
    if type(setter) is not FunctionType or setter.__closure__ or setter.__defaults__ or setter.__kwdefaults__:
        return False
    code = setter.__code__
    return (
        code.co_argcount == 2
        and code.co_kwonlyargcount == 0
        and not code.co_flags & 0x0C  # CO_VARARGS | CO_VARKEYWORDS
        and code.co_code == _NOOP_CODE.co_code
        and code.co_consts == _NOOP_CODE.co_consts
    )


def links(siblings):
    """Per related klass_info of one parent, given with its nested specs:
    ``(local_cache_name, remote_cache_name, remote_noop)``.

    The parent's ``fields_cache`` is created by whichever store comes first: its local
    stores are native for all siblings or for none, so a Python setter never creates a
    dict the builder would then replace. Likewise a child's back link is stored natively
    only when every one of the child's own local stores is."""
    local_keys = [cache_key(rel["local_setter"]) for rel, _ in siblings]
    native_local = all(local_keys)
    out = []
    for (rel, nested), local in zip(siblings, local_keys):
        noop = is_noop(rel["remote_setter"])
        remote = None
        if not noop and all(n.local_cache_name for n in nested):
            remote = cache_key(rel["remote_setter"])
        out.append((local if native_local else None, remote, noop))
    return out
