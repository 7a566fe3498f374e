"""Read replicas with read-your-writes.

    DATABASE_ROUTERS = ["django_rustpg.routers.ReplicaRouter"]
    MIDDLEWARE = ["django_rustpg.routers.ReadYourWritesMiddleware", ...]
    RUSTPG_REPLICAS = {"default": ["replica1", "replica2"]}      # primary alias -> its replicas
    RUSTPG_READ_YOUR_WRITES = {"MAX_PIN": 15.0, "CHECK_EVERY": 0.005, "COOKIE": "rustpg_lsn"}

Reads go to a replica, writes and every query inside ``atomic`` to the primary. After a scope
(a request, a task: a ``contextvars`` context) routes a write, its reads stay on the primary
until a replica has replayed past the write (its ``pg_last_wal_replay_lsn()`` reaches the
primary's WAL position taken after the write committed), or ``MAX_PIN`` seconds have passed.
Only SQL functions and Django's connection API are used: any PostgreSQL ENGINE works on the
primary and the replicas, through PgBouncer too. See docs/replicas.md.
"""

import random
import threading
import time
from contextvars import ContextVar
from functools import wraps
from inspect import iscoroutinefunction

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from asgiref.sync import markcoroutinefunction

DEFAULTS = {"MAX_PIN": 15.0, "CHECK_EVERY": 0.005, "COOKIE": "rustpg_lsn"}

# Taken after the commit: the insert position is past the commit record even under
# synchronous_commit=off, where pg_current_wal_lsn() may not be yet.
PRIMARY_LSN_SQL = "SELECT pg_current_wal_insert_lsn()::text"
REPLAY_LSN_SQL = "SELECT pg_last_wal_replay_lsn()::text"
FAILED_CHECK_BACKOFF = 1.0  # seconds before a replica that could not be asked is asked again


def parse_lsn(text):
    """'16/B374D848' -> an int that orders like pg_lsn."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value):
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


class Topology:
    """RUSTPG_REPLICAS and RUSTPG_READ_YOUR_WRITES, validated once."""

    def __init__(self):
        replicas = getattr(settings, "RUSTPG_REPLICAS", None)
        if not isinstance(replicas, dict) or not replicas:
            raise ImproperlyConfigured(
                "RUSTPG_REPLICAS must map a primary alias to a list of replica aliases, "
                'e.g. {"default": ["replica1"]}')
        options = {**DEFAULTS, **getattr(settings, "RUSTPG_READ_YOUR_WRITES", {})}
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ImproperlyConfigured(
                f"RUSTPG_READ_YOUR_WRITES: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        for key in ("MAX_PIN", "CHECK_EVERY"):
            if not isinstance(options[key], (int, float)) or options[key] < 0:
                raise ImproperlyConfigured(f"RUSTPG_READ_YOUR_WRITES[{key!r}] must be a number of seconds >= 0")
        if options["COOKIE"] is not None and not isinstance(options["COOKIE"], str):
            raise ImproperlyConfigured("RUSTPG_READ_YOUR_WRITES['COOKIE'] must be a cookie name or None")
        self.replicas = {}
        self.primary_of = {}
        for primary, aliases in replicas.items():
            if primary not in settings.DATABASES:
                raise ImproperlyConfigured(f"RUSTPG_REPLICAS: primary {primary!r} is not in DATABASES")
            if isinstance(aliases, str) or not all(isinstance(a, str) for a in aliases):
                raise ImproperlyConfigured(f"RUSTPG_REPLICAS[{primary!r}] must be a list of aliases")
            for alias in aliases:
                if alias not in settings.DATABASES:
                    raise ImproperlyConfigured(f"RUSTPG_REPLICAS[{primary!r}]: {alias!r} is not in DATABASES")
                if alias in replicas or alias in self.primary_of:
                    raise ImproperlyConfigured(f"RUSTPG_REPLICAS: {alias!r} is listed twice")
                self.primary_of[alias] = primary
            self.replicas[primary] = tuple(aliases)
        self.default_primary = DEFAULT_DB_ALIAS if DEFAULT_DB_ALIAS in replicas else next(iter(replicas))
        self.max_pin = float(options["MAX_PIN"])
        self.check_every = float(options["CHECK_EVERY"])
        self.cookie = options["COOKIE"]


class Scope:
    """What one request or task wrote: per primary, the WAL position its reads must see."""

    __slots__ = ("lock", "pending", "pins")

    def __init__(self):
        self.lock = threading.Lock()
        self.pending = {}  # primary -> deadline: written, position not taken yet
        self.pins = {}  # primary -> (lsn, deadline)

    def wrote(self, primary, max_pin):
        with self.lock:
            self.pending[primary] = time.monotonic() + max_pin

    def pin(self, primary, lsn, deadline):
        with self.lock:
            old = self.pins.get(primary)
            if old is None or old[0] < lsn:
                self.pins[primary] = (lsn, max(deadline, old[1] if old else deadline))


_scope = ContextVar("django_rustpg_read_your_writes", default=None)


def current_scope():
    """This context's scope; a thread or task without one gets one of its own on first use,
    so reads after writes are never stale even outside the middleware."""
    scope = _scope.get()
    if scope is None:
        scope = Scope()
        _scope.set(scope)
    return scope


def mark_written(using=None):
    """Pins this scope's reads after a write the router did not see (raw SQL on the primary)."""
    router = next(iter(_routers()), None) or ReplicaRouter()
    t = router.topology
    current_scope().wrote(using or t.default_primary, t.max_pin)


def _pick(aliases):
    return aliases[0] if len(aliases) == 1 else random.choice(aliases)


class _NewScope:
    def __init__(self):
        self._tokens = []

    def __enter__(self):
        scope = Scope()
        self._tokens.append(_scope.set(scope))
        return scope

    def __exit__(self, *exc):
        _scope.reset(self._tokens.pop())

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, *exc):
        self.__exit__(*exc)

    def __call__(self, func):
        if iscoroutinefunction(func):
            @wraps(func)
            async def run_async(*args, **kwargs):
                with _NewScope():
                    return await func(*args, **kwargs)
            return run_async

        @wraps(func)
        def run(*args, **kwargs):
            with _NewScope():
                return func(*args, **kwargs)
        return run


def read_your_writes(func=None):
    """A fresh scope: ``with read_your_writes():``, ``async with read_your_writes():``, or
    ``@read_your_writes`` on a sync or async function (a task). Writes routed inside pin only
    reads routed inside (including threads and tasks started inside, which copy the context)."""
    return _NewScope() if func is None else _NewScope()(func)


class ReplicaCheck:
    """Each replica's replay position, shared by the process, asked at most every CHECK_EVERY s."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = {}  # alias -> (lsn or None when not a standby, monotonic time asked)

    def replayed(self, alias, check_every):
        """The replica's replay position, or None when it cannot be asked (then it is not used)."""
        now = time.monotonic()
        cached = self.seen.get(alias)
        if cached is not None and now - cached[1] < (check_every if cached[0] is not None else FAILED_CHECK_BACKOFF):
            return cached[0]
        try:
            with connections[alias].cursor() as cur:
                cur.execute(REPLAY_LSN_SQL)
                text = cur.fetchone()[0]
        except DatabaseError:
            with self.lock:
                self.seen[alias] = (None, now)
            return None
        # NULL: not in recovery (a replica alias pointing at a primary, as in development).
        lsn = parse_lsn(text) if text is not None else float("inf")
        with self.lock:
            self.seen[alias] = (lsn, now)
        return lsn


REPLICA_CHECK = ReplicaCheck()


def primary_position(alias):
    """The primary's WAL position now; taken after a write committed, it is past that write."""
    with connections[alias].cursor() as cur:
        cur.execute(PRIMARY_LSN_SQL)
        return parse_lsn(cur.fetchone()[0])


def in_transaction(alias):
    """True inside atomic, or with autocommit turned off on an open connection."""
    conn = connections[alias]
    return conn.in_atomic_block or (conn.connection is not None and not conn.autocommit)


def target(scope, primary):
    """(lsn, deadline) this scope's reads from `primary`'s group must see, or None. Called
    outside a transaction on `primary`, so a write routed before has committed by now."""
    with scope.lock:
        deadline = scope.pending.pop(primary, None)
    if deadline is not None:
        scope.pin(primary, primary_position(primary), deadline)
    return scope.pins.get(primary)


class ReplicaRouter:
    """Reads to replicas, writes to their primary, read-your-writes per scope (module docstring)."""

    def __init__(self):
        self._topology = None

    @property
    def topology(self):
        if self._topology is None:
            self._topology = Topology()
        return self._topology

    def _primary(self, hints):
        """The primary of the group the hinted instance came from, the default primary without
        a hint, None (no opinion) for an instance of an alias outside RUSTPG_REPLICAS."""
        t = self.topology
        instance = hints.get("instance")
        db = getattr(getattr(instance, "_state", None), "db", None)
        if db is None:
            return t.default_primary
        if db in t.replicas:
            return db
        return t.primary_of.get(db)

    def db_for_write(self, model, **hints):
        t = self.topology
        primary = self._primary(hints)
        if primary is not None:
            current_scope().wrote(primary, t.max_pin)
        return primary

    def db_for_read(self, model, **hints):
        t = self.topology
        primary = self._primary(hints)
        if primary is None:
            return None
        replicas = t.replicas[primary]
        if not replicas:
            return primary
        if in_transaction(primary):
            return primary
        scope = _scope.get()
        if scope is None or not (scope.pending or scope.pins):
            return _pick(replicas)
        pin = target(scope, primary)
        if pin is None:
            return _pick(replicas)
        lsn, deadline = pin
        if time.monotonic() >= deadline:
            with scope.lock:
                scope.pins.pop(primary, None)
            return _pick(replicas)
        caught_up = [r for r in replicas if (REPLICA_CHECK.replayed(r, t.check_every) or -1) >= lsn]
        if len(caught_up) == len(replicas):
            with scope.lock:
                if scope.pins.get(primary, (None,))[0] == lsn:
                    del scope.pins[primary]
        if not caught_up:
            return primary
        return _pick(caught_up)

    def allow_relation(self, obj1, obj2, **hints):
        t = self.topology
        group = lambda db: t.primary_of.get(db, db)  # noqa: E731
        if obj1._state.db in t.primary_of or obj1._state.db in t.replicas:
            return group(obj1._state.db) == group(obj2._state.db)
        return None

    def allow_migrate(self, db, app_label, **hints):
        return False if db in self.topology.primary_of else None


class ReadYourWritesMiddleware:
    """One scope per request; with COOKIE set, a request that wrote hands its WAL position to
    the same client's next requests (a POST's redirect sees the POST's writes)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        with read_your_writes() as scope:
            self._load(request, scope)
            response = self.get_response(request)
            self._store(response, scope)
            return response

    async def __acall__(self, request):
        from asgiref.sync import sync_to_async

        with read_your_writes() as scope:
            self._load(request, scope)
            response = await self.get_response(request)
            if scope.pending:
                await sync_to_async(self._store)(response, scope)
            else:
                self._store(response, scope)
            return response

    @staticmethod
    def _topology():
        for router in _routers():
            return router.topology
        return Topology()

    def _load(self, request, scope):
        t = self._topology()
        value = request.COOKIES.get(t.cookie) if t.cookie else None
        if not value:
            return
        for item in value.split(","):
            try:
                primary, lsn, deadline = item.split(":")
                remaining = float(deadline) - time.time()
                if primary in t.replicas and remaining > 0:
                    scope.pin(primary, parse_lsn(lsn), time.monotonic() + min(remaining, t.max_pin))
            except ValueError:
                continue  # a tampered or old cookie only loses its pin

    def _store(self, response, scope):
        t = self._topology()
        if not t.cookie:
            return
        for primary in list(scope.pending):
            if not in_transaction(primary):
                target(scope, primary)
        now, mono = time.time(), time.monotonic()
        items = [f"{p}:{format_lsn(lsn)}:{now + (d - mono):.3f}" for p, (lsn, d) in scope.pins.items() if d > mono]
        if items:
            response.set_cookie(t.cookie, ",".join(items), max_age=int(t.max_pin) + 1, httponly=True,
                                samesite="Lax")


def _routers():
    from django.db import router

    return [r for r in router.routers if isinstance(r, ReplicaRouter)]
