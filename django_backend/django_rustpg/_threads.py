"""Sessions of threads that end without closing their connection go back to the pool.

Django keeps one DatabaseWrapper per thread and never closes it when the thread ends;
the wrapper sits in reference cycles, so only the cyclic GC would free its session.
Each thread's connections are noted in a thread-local whose finalizer runs as the thread
ends; the next connect (from any thread) closes them, which returns their sessions to
the pool. Connections shared with other threads (``inc_thread_sharing``) are left alone,
and so are those a thread opened for a wrapper created in another thread.
"""

import threading
import weakref

_local = threading.local()
_orphans = []
_orphans_lock = threading.Lock()


class _ThreadConnections:
    __slots__ = ("entries",)

    def __init__(self):
        self.entries = []

    def __del__(self):
        for wrapper_ref, native in self.entries:
            wrapper = wrapper_ref()
            if wrapper is not None and (
                getattr(wrapper, "_thread_sharing_count", 0) or wrapper.connection is not native
            ):
                continue
            if not native.closed:
                with _orphans_lock:
                    _orphans.append(native)


def track(wrapper, native):
    """Notes that the current thread opened ``native`` for ``wrapper``."""
    if getattr(wrapper, "_thread_ident", None) != threading.get_ident():
        # Another thread's wrapper (shared, or misused and refused by Django): its owner
        # may keep using this session after this thread ends, so only it may close it.
        return
    owned = getattr(_local, "owned", None)
    if owned is None:
        owned = _local.owned = _ThreadConnections()
    owned.entries = [(w, n) for w, n in owned.entries if not n.closed and w() is not None]
    owned.entries.append((weakref.ref(wrapper), native))


def close_orphans():
    """Closes connections whose thread ended without closing them."""
    if not _orphans:
        return
    with _orphans_lock:
        pending = _orphans[:]
        _orphans.clear()
    for native in pending:
        try:
            native.close()
        except Exception:  # a dead session is discarded by close() itself
            pass
