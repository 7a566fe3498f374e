"""Benchmark scenarios, raw-driver anchors, and the worker process that runs them.

A worker runs one (engine, scenario) pair: first a verification run (a digest of every
returned value and its Python type, and the number of queries Django sent), then timed
repetitions. It prints one JSON object on its last stdout line. run.py starts workers and
never imports Django itself; the engine comes from BENCH_ENGINE, the server from DATABASE_URL.

    BENCH_ENGINE=rustpg python benches/scenarios.py run get_by_pk --reps 3 --min-time 1
    BENCH_ENGINE=rustpg python benches/scenarios.py run get_by_pk --interleave   # "go" lines on stdin
    python benches/scenarios.py anchor asyncpg --reps 3
"""
import argparse
import gc
import hashlib
import json
import os
import random
import resource
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings")


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Optional[Callable]  # None: run.py drives it (http_list_100)
    # Design target: (reference, factor): django_rustpg should be `factor` times faster
    # than the reference ("best" = the fastest stock configuration).
    target: Optional[tuple]
    setup: Optional[Callable] = None  # untimed, before every repetition; result is run's argument
    doc: str = ""


SCENARIOS = {}


def scenario(target=None, setup=None):
    def register(fn):
        SCENARIOS[fn.__name__] = Scenario(fn.__name__, fn, target, setup, (fn.__doc__ or "").strip())
        return fn
    return register


# Models are bound by load_django(): importing them needs django.setup() first.
Author = Book = Label = Review = Order = connection = None

GET_PKS = random.Random(7).sample(range(1, 20_001), 2_000)
THREAD_PKS = random.Random(8).choices(range(1, 20_001), k=4_000)
RAW_SQL = "SELECT id, book_id, rating, created_at, body FROM shop_review ORDER BY id"
PK_SQL = "SELECT id, book_id, rating, created_at, body FROM shop_review WHERE id = %s"


# ---------------------------------------------------------------- scenarios

@scenario(("best", 1.05))
def get_by_pk():
    """2,000 x Book.objects.get(pk=...)"""
    return [Book.objects.get(pk=pk) for pk in GET_PKS]


@scenario(("best", 1.0))
def list_models_1k():
    """20 x list() of 1,000 books"""
    out = []
    for page in range(20):
        out.extend(Book.objects.filter(id__gt=page * 1_000).order_by("id")[:1_000])
    return out


@scenario(("best", 3.0))
def list_models_20k():
    """list() of all 20,000 books"""
    return list(Book.objects.order_by("id"))


@scenario(("best", 3.0))
def values_20k():
    """.values() of all 20,000 books (every field type)"""
    return list(Book.objects.order_by("id").values())


@scenario(("psycopg2", 2.0))
def values_list_100k():
    """.values_list() of 100,000 reviews, 5 columns"""
    return list(Review.objects.order_by("id").values_list("id", "book_id", "rating", "score", "created_at"))


@scenario(("best", 1.0))
def narrow_ids_100k():
    """.values_list("id", "book_id") of 100,000 reviews (two integers a row: per-row overhead only)"""
    return list(Review.objects.order_by("id").values_list("id", "book_id"))


@scenario(("best", 3.0))
def select_related_5k():
    """5,000 reviews with select_related('book__author')"""
    return list(Review.objects.select_related("book__author").order_by("id")[:5_000])


@scenario(("best", 2.0))
def prefetch_200():
    """200 authors, prefetch books and their labels (3 queries, ~4,000 books)"""
    from django.db.models import Prefetch

    return list(Author.objects.order_by("id").prefetch_related(
        Prefetch("books", Book.objects.order_by("id")),
        Prefetch("books__labels", Label.objects.order_by("id")),
    )[:200])


@scenario(("best", 1.05))
def n_plus_one_200():
    """200 books, then book.author for each: 201 queries"""
    books = list(Book.objects.order_by("id")[:200])
    for book in books:
        book.author  # one query per book: the pattern under test
    return books


@scenario(("psycopg2", 2.0))
def raw_fetch_100k():
    """connection.cursor(): execute + fetchall of 100,000 rows x 5 columns"""
    with connection.cursor() as cursor:
        cursor.execute(RAW_SQL)
        return cursor.fetchall()


@scenario(("best", 2.0))
def iterator_100k():
    """.iterator(chunk_size=2000) over 100,000 reviews (server-side cursor)"""
    return Review.objects.order_by("id").iterator(chunk_size=2_000)


@scenario(("best", 1.05))
def threads_8x500():
    """8 threads x 500 get(pk=), each closing its connection at the end"""
    results, errors = [None] * 8, []
    barrier = threading.Barrier(8)

    def work(i):
        try:
            barrier.wait()
            with counted():
                results[i] = [Book.objects.get(pk=pk) for pk in THREAD_PKS[i::8]]
        except BaseException as e:  # re-raised below, in the main thread
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [book for chunk in results for book in chunk]


def _order_fields(n):
    from djbench.seed import EPOCH

    rng = random.Random(99)
    return [dict(book_id=rng.randint(1, 20_000), quantity=rng.randint(1, 9),
                 total=Decimal(rng.randint(100, 999_999)).scaleb(-2),
                 placed_at=EPOCH + timedelta(microseconds=rng.randrange(10**14)),
                 ref=uuid.UUID(int=rng.getrandbits(128), version=4),
                 note={"channel": rng.choice(["web", "app", "shop"]), "items": [rng.randint(1, 99) for _ in range(3)]},
                 gift=rng.random() < 0.1)
            for _ in range(n)]


def _empty_orders():
    # RESTART IDENTITY: every engine gets the same primary keys back.
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE shop_order RESTART IDENTITY")


def _orders_10k():
    _empty_orders()
    return [Order(**f) for f in _order_fields(10_000)]


def _order_kwargs_1k():
    _empty_orders()
    return _order_fields(1_000)


@scenario(("best", 3.0), setup=_orders_10k)
def bulk_create_10k(orders):
    """bulk_create() of 10,000 orders (instances built untimed)"""
    return Order.objects.bulk_create(orders)


def _orders_saved_10k():
    """10,000 stored orders, loaded, with new quantity/total/note/gift values to write back."""
    Order.objects.bulk_create(_orders_10k())
    orders = list(Order.objects.order_by("id"))
    rng = random.Random(5)
    for o in orders:
        o.quantity = rng.randint(1, 9)
        o.total = Decimal(rng.randint(100, 999_999)).scaleb(-2)
        o.note = {"channel": "bulk", "n": rng.randint(1, 99)}
        o.gift = not o.gift
    return orders


# batch_size=1000: in one batch (Django's default on PostgreSQL) stock's statement takes
# minutes, as PostgreSQL tries up to 10,000 WHEN branches per row and column.
@scenario(("best", 2.0), setup=_orders_saved_10k)
def bulk_update_10k(orders):
    """bulk_update() of 10,000 orders, 4 fields, batch_size=1000 (instances loaded and changed untimed)"""
    from django.db.models import Count, Q, Sum

    updated = Order.objects.bulk_update(orders, ["quantity", "total", "note", "gift"], batch_size=1000)
    # What was written, in one cheap query: the verification digest compares it across engines.
    return [updated, Order.objects.aggregate(q=Sum("quantity"), t=Sum("total"), g=Count("id", filter=Q(gift=True)),
                                             n=Count("id", filter=Q(note__channel="bulk")))]


@scenario(("best", 1.05), setup=_order_kwargs_1k)
def create_1k(kwargs_list):
    """1,000 x Order.objects.create()"""
    return [Order.objects.create(**kw) for kw in kwargs_list]


def _vacuum_books():
    # Each update leaves ~900 dead row versions, and autovacuum may be off (it is on these
    # machines): without this the table and its indexes grew by 900 rows a repetition,
    # so later repetitions and engines (and every read of books) met a larger table.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM shop_book")


@scenario(("best", 1.05), setup=_vacuum_books)
def update_filter(_=None):
    """filter(recent, out of stock).update(updated_at=...) on ~900 books"""
    from djbench.seed import RESTOCK_SINCE, RESTOCK_STAMP

    # The seed already holds this stamp there: the data stays the same for other scenarios.
    return [Book.objects.filter(published__gte=RESTOCK_SINCE, in_stock=False).update(updated_at=RESTOCK_STAMP)]


# Loops of small queries: seconds per worker, and the ratios that noise moves most, so
# run.py gives them more rounds than the large reads (benches/latency.py's default set).
SINGLE_ROW = ["get_by_pk", "n_plus_one_200", "update_filter", "create_1k", "threads_8x500"]
# Scenarios whose ratio sits near 1 because Django's own Python (or the server) is nearly all
# of their time, the same for every engine: run.py gives them the single-row group's rounds.
# prefetch_200: ~85% is Django's prefetch machinery (a manager and a queryset clone per book).
NEAR_PARITY = [*SINGLE_ROW, "prefetch_200"]

SCENARIOS["http_list_100"] = Scenario(
    "http_list_100", None, ("best", 1.5),
    doc="GET /books/ (100 books + author + labels as JSON) under gunicorn, loaded by wrk")


# ---------------------------------------------------------------- verification

_query_count = None  # [n] while the verification run counts queries
_count_lock = threading.Lock()


@contextmanager
def counted():
    """Counts the queries this thread's connection sends, during verification only."""
    if _query_count is None:
        yield
        return

    def count(execute, sql, params, many, context):
        with _count_lock:
            _query_count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield


class Digest:
    """sha256 over a canonical rendering of values *and* their types (plus cached relations)."""

    def __init__(self):
        self.h = hashlib.sha256()
        self.types = set()
        self.items = 0
        self.sample = None

    def feed(self, iterable):
        from django.db.models import Model

        self._model = Model
        for item in iterable:
            out = []
            self._canon(item, out, ())
            text = "".join(out)
            if self.sample is None:
                self.sample = text[:700]
            self.h.update(text.encode("utf-8", "surrogatepass") + b"\n")
            self.items += 1

    def _canon(self, v, out, path):
        t = type(v)
        self.types.add(t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}")
        if isinstance(v, self._model):
            if id(v) in path:  # prefetch links children back to their parent
                out.append(f"<{t.__name__}#{v.pk}>")
                return
            path += (id(v),)
            # Loaded instances must look loaded (db set, not adding), however they were built.
            out.append(f"{t.__name__}@{v._state.db},adding={v._state.adding}(")
            for f in v._meta.concrete_fields:
                out.append(f.attname + "=")
                self._canon(getattr(v, f.attname), out, path)
                out.append(",")
            for name, rel in sorted(v._state.fields_cache.items()):
                out.append(name + "->")
                self._canon(rel, out, path)
                out.append(",")
            for name, qs in sorted(getattr(v, "_prefetched_objects_cache", {}).items()):
                out.append(name + "=>")
                self._canon(list(qs), out, path)
                out.append(",")
            out.append(")")
        elif t is list or t is tuple:
            out.append(t.__name__ + "[")
            for x in v:
                self._canon(x, out, path)
                out.append(",")
            out.append("]")
        elif t is dict:
            out.append("{")
            for k, x in v.items():
                self._canon(k, out, path)
                out.append(":")
                self._canon(x, out, path)
                out.append(",")
            out.append("}")
        else:
            if getattr(v, "tzinfo", None) is not None:
                self.types.add(f"tzinfo:{type(v.tzinfo).__module__}.{type(v.tzinfo).__qualname__}")
            out.append(f"{t.__qualname__}:{v!r}")


# ---------------------------------------------------------------- worker

EXPECTED_DRIVER = {"rustpg": "django_rustpg.dbapi", "psycopg3": "psycopg",
                   "psycopg3_pool": "psycopg", "psycopg2": "psycopg2",
                   "rustpg_prep5": "django_rustpg.dbapi", "psycopg3_prep5": "psycopg"}


def load_django():
    import django

    django.setup()
    global Author, Book, Label, Review, Order, connection
    from django.db import connection
    from djbench.shop.models import Author, Book, Label, Order, Review

    engine = os.environ.get("BENCH_ENGINE", "psycopg3")
    driver = connection.Database.__name__
    if driver != EXPECTED_DRIVER[engine]:
        raise RuntimeError(f"engine {engine} expects driver {EXPECTED_DRIVER[engine]}, Django loaded {driver}")
    if (connection.pool is not None) != (engine == "psycopg3_pool"):
        raise RuntimeError(f"engine {engine}: unexpected pool {connection.pool!r}")
    connection.ensure_connection()
    return driver_version(driver)


def driver_version(driver):
    mod = sys.modules[driver]
    # django_rustpg's dbapi reports the psycopg API level it implements; show its own version.
    version = mod._native.__version__ if driver == "django_rustpg.dbapi" else mod.__version__.split()[0]
    return f"{driver.split('.')[0]} {version}"


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_scenario(name, reps, min_time, verify):
    out, sc = prepare_scenario(name, verify)
    times, max_reps = [], max(reps, 1) * 10
    while len(times) < reps or (sum(times) < min_time and len(times) < max_reps):
        times.append(timed_repetition(sc))
    out.update(times=times, rss_peak_kb=maxrss_kb())
    return out


def serve_interleaved(name, verify):
    """Lockstep mode (run.py --interleave): after the verification run, prints {"ready": ...}
    and times one repetition per "go" line on stdin, answering {"t": seconds}, until "done".
    run.py lets one engine's worker run at a time, rotating, so a burst of load on the
    machine lands on every engine alike instead of on whichever worker was running."""
    out, sc = prepare_scenario(name, verify)
    print(json.dumps({"ready": True}), flush=True)
    times = []
    for line in sys.stdin:
        command = line.strip()
        if command == "done":
            break
        if command != "go":
            raise ValueError(f"interleaved worker: unknown command {command!r}")
        times.append(timed_repetition(sc))
        print(json.dumps({"t": times[-1]}), flush=True)
    out.update(times=times, rss_peak_kb=maxrss_kb())
    return out


def prepare_scenario(name, verify):
    global _query_count
    driver = load_django()
    sc = SCENARIOS[name]
    base = maxrss_kb()
    out = {"scenario": name, "engine": os.environ.get("BENCH_ENGINE"), "driver": driver, "rss_base_kb": base}

    # Verification run, which is also the warm-up.
    arg = sc.setup() if sc.setup else None
    digest = Digest()
    _query_count = [0] if verify else None
    with counted():
        digest.feed(sc.run(arg) if sc.setup else sc.run())
    if verify:
        out.update(queries=_query_count[0], digest=digest.h.hexdigest(), items=digest.items,
                   types=sorted(digest.types), sample=digest.sample)
    _query_count = None
    return out, sc


# benches/sustained.py: repetitions back to back, as a long-lived worker runs them, so
# collections of earlier repetitions' cyclic garbage land on the clock.
SUSTAINED = os.environ.get("BENCH_SUSTAINED") == "1"
# What runs between a repetition's setup and its clock (benches/parity_check.py varies it):
# "collect" (the default): a full collection; "frozen": the same, with the heap as it was
# after the first one frozen (gc.freeze), so later ones walk only what the repetitions
# made; "pause": no collection, a 40 ms sleep instead. The full collection walks the whole
# heap and leaves the caches cold for the statement timed next, the server's included, the
# more so the larger the worker's heap (README, "update_filter").
BEFORE_CLOCK = os.environ.get("BENCH_BEFORE_CLOCK", "collect")


def timed_repetition(sc):
    arg = sc.setup() if sc.setup else None
    if SUSTAINED:
        pass
    elif BEFORE_CLOCK == "pause":
        time.sleep(0.04)
    else:
        gc.collect()
        if BEFORE_CLOCK == "frozen" and not gc.get_freeze_count():
            gc.freeze()
    t0 = time.perf_counter()
    result = sc.run(arg) if sc.setup else sc.run()
    if not isinstance(result, list):
        deque(result, maxlen=0)  # lazy results (iterator_100k) are consumed on the clock
    del result, arg  # freeing is part of the cost
    return time.perf_counter() - t0


# ---------------------------------------------------------------- raw-driver anchors

def _server():
    from djbench.settings import BENCH_DB, server_params

    p = server_params()
    return dict(host=p["HOST"], port=int(p["PORT"]), user=p["USER"], password=p["PASSWORD"] or None, dbname=BENCH_DB)


def _dbapi_anchor(conn, binary=None):
    """fetch(): 100k rows; pk(): 2,000 single-row queries. Autocommit, default settings otherwise."""
    cursor_kw = {} if binary is None else {"binary": binary}

    def fetch():
        with conn.cursor(**cursor_kw) as c:
            c.execute(RAW_SQL)
            return len(c.fetchall())

    def pk():
        with conn.cursor(**cursor_kw) as c:
            for i in GET_PKS:
                c.execute(PK_SQL, (i,))
                c.fetchone()
        return len(GET_PKS)

    return fetch, pk


def anchor_psycopg3(binary):
    import psycopg

    s = _server()
    conn = psycopg.connect(autocommit=True, **s)
    return f"psycopg {psycopg.__version__}", *_dbapi_anchor(conn, binary)


def anchor_rustpg():
    from django_rustpg import dbapi

    s = {k: v for k, v in _server().items() if v is not None}
    conn = dbapi.connect(autocommit=True, **{k: str(v) for k, v in s.items()})
    return f"django_rustpg {dbapi._native.__version__}", *_dbapi_anchor(conn)


def anchor_psycopg2():
    import psycopg2

    conn = psycopg2.connect(**_server())
    conn.autocommit = True
    return f"psycopg2 {psycopg2.__version__.split()[0]}", *_dbapi_anchor(conn)


def anchor_asyncpg():
    import asyncio

    import asyncpg

    s = _server()
    s["database"] = s.pop("dbname")
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(**s))
    pk_sql = PK_SQL.replace("%s", "$1")

    async def fetch():
        return len(await conn.fetch(RAW_SQL))

    async def pk():
        for i in GET_PKS:
            await conn.fetchrow(pk_sql, i)
        return len(GET_PKS)

    return (f"asyncpg {asyncpg.__version__}",
            lambda: loop.run_until_complete(fetch()), lambda: loop.run_until_complete(pk()))


ANCHORS = {
    "psycopg3_text": lambda: anchor_psycopg3(False),
    "psycopg3_binary": lambda: anchor_psycopg3(True),
    "asyncpg": anchor_asyncpg,
    "rustpg": anchor_rustpg,
    "psycopg2": anchor_psycopg2,  # from the psycopg2 venv
}


def run_anchor(name, reps):
    version, fetch, pk = ANCHORS[name]()
    assert fetch() == 100_000 and pk() == 2_000  # warm-up and sanity check
    out = {"anchor": name, "driver": version, "fetch_times": [], "pk_times": []}
    for _ in range(reps):
        for key, fn in (("fetch_times", fetch), ("pk_times", pk)):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            out[key].append(time.perf_counter() - t0)
    out["rss_peak_kb"] = maxrss_kb()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("scenario", choices=[n for n, s in SCENARIOS.items() if s.run])
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--min-time", type=float, default=0.0, help="repeat until this many seconds were timed")
    r.add_argument("--no-verify", dest="verify", action="store_false")
    r.add_argument("--interleave", action="store_true", help="lockstep with other workers: one repetition per stdin line")
    a = sub.add_parser("anchor")
    a.add_argument("driver", choices=ANCHORS)
    a.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "run" and args.interleave:
            out = serve_interleaved(args.scenario, args.verify)
        elif args.cmd == "run":
            out = run_scenario(args.scenario, args.reps, args.min_time, args.verify)
        else:
            out = run_anchor(args.driver, args.reps)
    except BaseException:
        out = {"error": traceback.format_exc()}
    sys.stdout.flush()
    print(json.dumps(out, default=str))
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())
