"""Django setup for the native-materialization equivalence tests (issue #5).

This suite configures Django with its own settings, which cannot share a process with
another suite that does the same (tests/nplusone). So it runs in-process only when every
path pytest was given lies inside tests/materialize (or MATERIALIZE_IN_PROCESS is set);
otherwise (e.g. ``pytest tests``) only test_isolated_run.py is collected here, and it runs
this directory in a pytest subprocess.

Settings ``mat_settings`` (aliases ``default`` = native path, ``plain`` = Django's path on the
same driver, ``stock`` = Django's psycopg backend), fixture app ``mat_app``, database
``django_rustpg_materialize`` (re-created once per session, with hstore, dropped after
unless MATERIALIZE_KEEP_DB is set).
The data is committed once per session and only read by the tests, so that all three
connections see it; tests that write do so inside a rolled-back transaction.
"""
import datetime
import decimal
import os
import sys
import uuid
from pathlib import Path

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


ISOLATED_RUNNER = "test_isolated_run.py"
MODE = {"alone": False, "django_ok": False}


def _setup_django():
    import django
    from django.conf import settings

    if settings.configured:
        return "mat_app" in settings.INSTALLED_APPS
    os.environ["DJANGO_SETTINGS_MODULE"] = "mat_settings"
    django.setup()
    return True


def _runs_alone(config):
    if os.environ.get("MATERIALIZE_IN_PROCESS"):
        return True
    here = Path(HERE).resolve()
    args = [a.split("::")[0] for a in config.args]
    if not args:
        return False
    for a in args:
        p = (Path(config.invocation_params.dir) / a).resolve()
        if p != here and here not in p.parents:
            return False
    return True


def pytest_configure(config):
    MODE["alone"] = _runs_alone(config)
    if MODE["alone"]:
        MODE["django_ok"] = _setup_django()


def pytest_ignore_collect(collection_path, config):
    path = Path(collection_path)
    if path.parent.resolve() != Path(HERE).resolve() or path.suffix != ".py":
        return None
    if MODE["alone"]:
        return True if path.name == ISOLATED_RUNNER else None
    return None if path.name == ISOLATED_RUNNER else True

ALIASES = ("default", "plain", "stock")


def _admin_connection():
    import psycopg
    import mat_settings

    s = mat_settings.server()
    return psycopg.connect(
        dbname="postgres", user=s["USER"], password=s["PASSWORD"] or None, host=s["HOST"],
        port=s["PORT"], autocommit=True,
    )


def _close_all():
    from django.db import connections

    for alias in ALIASES:
        connections[alias].close()
    try:
        from django_rustpg import dbapi

        dbapi.close_all_pools()
    except Exception:
        pass


@pytest.fixture(scope="session", autouse=True)
def materialize_db():
    if not MODE["alone"]:  # only test_isolated_run.py is collected: it needs nothing here
        yield
        return
    if not MODE["django_ok"]:
        pytest.skip("Django is configured with other settings in this process (run tests/materialize on its own)")
    import mat_settings
    from psycopg import sql

    name = mat_settings.DB_NAME
    try:
        admin = _admin_connection()
    except Exception as e:  # pragma: no cover
        if os.environ.get("CI"):
            pytest.exit(f"no PostgreSQL server for tests/materialize: {e}", returncode=3)
        pytest.skip(f"no PostgreSQL server: {e}")
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    import psycopg

    s = mat_settings.server()
    with psycopg.connect(dbname=name, user=s["USER"], password=s["PASSWORD"] or None, host=s["HOST"],
                         port=s["PORT"], autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS hstore")

    from django.core.management import call_command

    # Unmigrated apps (mat_app) cannot depend on migrated ones: contenttypes first.
    call_command("migrate", "contenttypes", database="default", verbosity=0)
    call_command("migrate", run_syncdb=True, database="default", verbosity=0)
    _close_all()  # reconnect: every alias now sees hstore and the tables
    # Written through the stock backend, so the data does not depend on the driver's
    # parameter binding (identical values sharing one placeholder once broke some INSERTs:
    # see test_findings.py::test_driver_shared_placeholder_*).
    mat_settings.WriteRouter.WRITE_ALIAS = "stock"
    try:
        _create_data()
    finally:
        mat_settings.WriteRouter.WRITE_ALIAS = None
    yield
    _close_all()
    if os.environ.get("MATERIALIZE_KEEP_DB"):  # for repros and profile_rows.py
        return
    with _admin_connection() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def aware(*args):
    return datetime.datetime(*args, tzinfo=datetime.timezone.utc)


def _create_data():
    from django.contrib.contenttypes.models import ContentType
    from django.db import connections
    from django.db.backends.postgresql.psycopg_any import DateRange, DateTimeTZRange, NumericRange
    from mat_app import models as m

    D = decimal.Decimal
    fr = m.Country.objects.create(code="fr", name="France")
    jp = m.Country.objects.create(code="jp", name="Japan")
    p1 = m.Publisher.objects.create(name="Gallimard", country=fr, founded=datetime.date(1911, 5, 31))
    p2 = m.Publisher.objects.create(name="Nowhere", country=None, founded=datetime.date(2001, 1, 1))
    p3 = m.Publisher.objects.create(name="Kodansha", country=jp, founded=None)
    a1 = m.Author.objects.create(name="Ann", publisher=p1, born=datetime.date(1950, 2, 3), rating=D("4.50"),
                                 uid=uuid.UUID("11111111-2222-3333-4444-555555555555"))
    a2 = m.Author.objects.create(name="Bob", publisher=p2, mentor=a1, rating=None)
    a3 = m.Author.objects.create(name="Cid", publisher=None, mentor=a2, born=datetime.date(1999, 12, 31),
                                 rating=D("0.10"))
    a4 = m.Author.objects.create(name="Dee", publisher=p3, rating=D("3.00"))
    m.AuthorProfile.objects.create(author=a1, bio="Ann's bio", homepage="https://ann.example")
    m.AuthorProfile.objects.create(author=a3, bio="", homepage="")
    tags = [m.Tag.objects.create(name=f"tag-{i}") for i in range(4)]
    authors = [a1, a2, a3, a4, None]
    metadata = [
        {"a": 1, "b": [1, 2.5, None, True], "c": {"d": "é"}},
        [1, 2, 3],
        "just a string",
        42,
        1.5,
        None,
        True,
        {"big": 12345678901234567890, "neg": -0.5, "f": 1.0},
        {},
        [],
        {"nested": {"deeper": [{"x": "y"}]}},
        {"key": "value", "n": 7},
    ]
    books = []
    for i in range(12):
        b = m.Book.objects.create(
            title=f"Book {i:02d}",
            author=authors[i % 5],
            editor=authors[(i + 2) % 5],
            price=D(f"{i * 3 + 1}.{i % 10}5") if i % 4 else D("10"),
            pages=None if i % 6 == 5 else 100 + 17 * i,
            published=None if i % 3 == 2 else datetime.date(2000 + i, (i % 12) + 1, (i % 27) + 1),
            created=aware(2020, (i % 12) + 1, (i % 27) + 1, i, 30, 15, 1000 * i),
            isbn=uuid.UUID(int=i + 1),
            metadata=metadata[i],
            in_print=i % 2 == 0,
        )
        b.tags.set(tags[: i % 4])
        books.append(b)
    # JSON null (not SQL NULL) for one book: metadata=Value(None, JSONField()) would be SQL NULL.
    from django.db.models import Value
    from django.db.models import JSONField

    m.Book.objects.filter(pk=books[5].pk).update(metadata=Value("null", JSONField()))
    for i, b in enumerate(books[:8]):
        for j in range(i % 3 + 1):
            m.Review.objects.create(
                id=uuid.UUID(int=1000 + 10 * i + j), book=b, stars=(i + j) % 5 + 1, body=f"review {i}/{j}",
                posted=aware(2021, 1, 1 + i, j, 0, 0),
            )
    for i, b in enumerate(books[:4]):
        for line in range(1, 3):
            m.OrderLine.objects.create(book=b, line_no=line, qty=i * 10 + line)
    ct_book = ContentType.objects.get_for_model(m.Book)
    ct_author = ContentType.objects.get_for_model(m.Author)
    m.TaggedItem.objects.create(label="classic", content_type=ct_book, object_id=books[0].pk)
    m.TaggedItem.objects.create(label="signed", content_type=ct_book, object_id=books[0].pk)
    m.TaggedItem.objects.create(label="rare", content_type=ct_book, object_id=books[3].pk)
    m.TaggedItem.objects.create(label="famous", content_type=ct_author, object_id=a1.pk)
    m.TaggedItem.objects.create(label="gone", content_type=ct_book, object_id=999999)  # dangling

    m.AllTypes.objects.create(
        label="full",
        big=-(2**62), small=-32768, pos=2**31 - 1, flag=True, text="héllo\nwörld ✓", email="a@b.example",
        slug="a-slug", fl=1.0, dec=D("-1234567890.1234"), dec0=D("42"),
        day=datetime.date(1, 1, 1), moment=aware(1999, 12, 31, 23, 59, 59, 999999),
        clock=datetime.time(23, 59, 59, 123456), span=datetime.timedelta(days=-1, seconds=5, microseconds=7),
        uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        data={"k": [1, "2", 3.25, None, False, {"x": []}]},
        tagged={"price": D("1.50"), "when": datetime.date(2024, 2, 29), "plain": 1},
        ints=[1, -2, 2**31 - 1], texts=["a", "", "ü", "with,comma", 'q"uote'],
        grid=[[1, 2], [3, 4]], decs=[D("1.500"), D("-0.001")],
        moments=[aware(2020, 1, 1, 12), None],
        uids=[uuid.UUID(int=7)], jsons=[{"a": 1}, [1, 2]],
        store={"a": "1", "b": None, "ü": "ß", "": "empty key"},
        irange=NumericRange(1, 10), brange=NumericRange(-(2**40), None),
        drange=NumericRange(D("1.5"), D("2.25"), "[]"),
        dayrange=DateRange(datetime.date(2020, 1, 1), datetime.date(2020, 2, 1)),
        momentrange=DateTimeTZRange(aware(2020, 1, 1), aware(2020, 1, 2, 6)),
        blob=b"\x00\x01binary\xff", ip="2001:db8::1", ip4="192.168.0.1", attachment="x/file.txt",
        money=m.Money(D("12.50"), "EUR"),
    )
    m.AllTypes.objects.create(label="nulls")
    m.AllTypes.objects.create(
        label="edges",
        big=0, small=0, pos=0, flag=False, text="", email="", slug="", fl=float("-inf"), dec=D("0.0000"),
        dec0=D("-0"), day=datetime.date(9999, 12, 31), moment=aware(1, 1, 1, 0, 0, 0),
        clock=datetime.time(0, 0), span=datetime.timedelta(0),
        uid=uuid.UUID(int=0), data=[], tagged=[], ints=[], texts=[], grid=[], decs=[], moments=[],
        uids=[], jsons=[], store={}, irange=NumericRange(empty=True), brange=NumericRange(None, None),
        drange=NumericRange(D("-1"), D("1"), "(]"),
        dayrange=DateRange(None, datetime.date(2020, 1, 1)),
        momentrange=DateTimeTZRange(aware(2020, 1, 1), None, "[]"),
        blob=b"", ip="::ffff:10.0.0.1", ip4="0.0.0.0", attachment="", money=m.Money(D("0"), "JPY"),
    )
    nan = m.AllTypes.objects.create(label="nan", fl=float("nan"), data="null-ish")

    with connections["stock"].cursor() as c:  # DecimalField refuses NaN; numeric takes it
        c.execute("UPDATE mat_app_alltypes SET dec = 'NaN', dec0 = 'NaN' WHERE id = %s", [nan.pk])

    m.Event.objects.create(name="e1", starts=aware(2024, 3, 10, 7, 30), ends=aware(2024, 3, 10, 9),
                           day=datetime.date(2024, 3, 10), clock=datetime.time(7, 30),
                           span=DateTimeTZRange(aware(2024, 3, 10, 7, 30), aware(2024, 3, 10, 9)),
                           moments=[aware(2024, 3, 10, 8), aware(2024, 11, 3, 6, 30)])
    m.Event.objects.create(name="e2 (dst fold)", starts=aware(2024, 11, 3, 6, 30), ends=None,
                           day=datetime.date(2024, 11, 3))
    m.Event.objects.create(name="e3 (old)", starts=aware(1850, 6, 1, 12), day=datetime.date(1850, 6, 1))

    m.Place.objects.create(name="Just a place", address="1 Road")
    m.Restaurant.objects.create(name="Pizzeria", address="2 Road", serves_pizza=True, rating=D("4.5"), chef=a1)
    m.Restaurant.objects.create(name="Diner", serves_pizza=False, rating=None, chef=None)
    m.ItalianRestaurant.objects.create(name="Trattoria", address="3 Road", serves_pizza=True, rating=D("3.0"),
                                       chef=a2, has_oven=False, opened=aware(2010, 5, 5, 18))
    m.ItalianRestaurant.objects.create(name="Osteria", chef=None, opened=None)

    for i in range(3):
        snap = m.Snapshot.objects.create(name=f"snap{i}", value=i * 10)
        m.SnapshotKw.objects.create(name=f"kw{i}", snap=snap if i else None)
        m.Tracked.objects.create(name=f"tracked{i}", count=i, owner=[a1, None, a2][i])
        m.Shouty.objects.create(name=f"shout{i}")
        m.Photo.objects.create(title=f"photo{i}")
        m.MixinInit.objects.create(name=f"mixin{i}")
        m.SetattrModel.objects.create(name=f"set{i}")
        m.NewModel.objects.create(name=f"new{i}")
        m.MetaCallModel.objects.create(name=f"meta{i}")
    m.Shouty.objects.update(name="lower-case in the database")  # bypasses the descriptor
    m.SetattrModel.objects.update(name="  padded  ")
    snaps, shouts = list(m.Snapshot.objects.using("stock")), list(m.Shouty.objects.using("stock"))
    ann = m.ProxyAuthor.objects.using("stock").get(name="Ann")
    blank = m.Country.objects.create(code="", name="Blank-code land")  # a falsy, non-NULL primary key
    all_types = list(m.AllTypes.objects.using("stock").order_by("id"))
    reviews = list(m.Review.objects.using("stock").order_by("id"))
    for i in range(4):
        m.Holder.objects.create(
            name=f"typed{i}", all_types=all_types[i], review=reviews[i] if i % 2 else None,
            country=blank if i == 0 else None,
        )
    for i in range(4):
        m.Holder.objects.create(
            name=f"holder{i}", snap=snaps[i] if i < 3 else None, shouty=shouts[i] if i < 2 else None,
            proxy_author=ann if i % 2 else None, country=[fr, jp, None, fr][i], tag=tags[i] if i != 2 else None,
        )
    with connections["stock"].cursor() as c:  # 2500 rows: many fetch chunks
        c.execute(
            "INSERT INTO mat_app_profilerow (name, number, big, amount, ratio, flag, day, moment, uid, note) "
            "SELECT 'row ' || g, g, g::bigint * 1000003, (g % 1000) / 7.0, g / 3.0, g % 2 = 0, "
            "DATE '2000-01-01' + g, TIMESTAMPTZ '2020-01-01 00:00+00' + g * INTERVAL '1 minute 1.5 second', "
            "md5(g::text)::uuid, CASE WHEN g % 10 = 0 THEN NULL ELSE repeat('x', g % 50) END "
            "FROM generate_series(1, 2500) g"
        )
    for name in ("ok", "boom", "fine"):
        m.Fragile.objects.create(name=name)
    _close_all()


# --------------------------------------------------------------------------- plan spy
class PlanSpy:
    """Stands in for ``_native.MaterializePlan``: records (kind, alias) of each Plan, builds the real one."""

    def __init__(self, real):
        self.real = real
        self.calls = []

    def __call__(self, kind, width, converters, connection, **kwargs):
        self.calls.append((kind, connection.alias))
        return self.real(kind, width, converters, connection, **kwargs)

    def kinds(self, alias="default"):
        return {k for k, a in self.calls if a == alias}

    def clear(self):
        self.calls.clear()


class _NoPlanCache(dict):
    def get(self, key, default=None):
        return default


@pytest.fixture(autouse=True)
def plan_spy(monkeypatch):
    if not MODE["alone"]:
        yield None
        return
    from django_rustpg import _native, materialize, materialize_cache

    spy = PlanSpy(_native.MaterializePlan)
    monkeypatch.setattr(materialize._native, "MaterializePlan", spy)
    # Every native run builds its plan, so the spy sees which path ran (test_plan_cache.py
    # turns the reuse of plain plans back on).
    monkeypatch.setattr(materialize_cache, "plain_plans", _NoPlanCache())
    executed = []
    real_execute = materialize._execute

    def spy_execute(compiler, iterable, plan_for_rows):
        executed.append(compiler.using)
        return real_execute(compiler, iterable, plan_for_rows)

    monkeypatch.setattr(materialize, "_execute", spy_execute)
    spy.executed = executed
    yield spy


@pytest.fixture
def counting_signals():
    """Counts pre_init/post_init per sender while connected (only in the signal tests)."""
    from collections import Counter

    from django.db.models.signals import post_init, pre_init

    counts = {"pre_init": Counter(), "post_init": Counter()}
    receivers = []

    def connect(sender=None):
        def on_pre(sender, **kw):
            counts["pre_init"][sender.__name__] += 1

        def on_post(sender, **kw):
            counts["post_init"][sender.__name__] += 1

        pre_init.connect(on_pre, sender=sender, weak=False)
        post_init.connect(on_post, sender=sender, weak=False)
        receivers.append((on_pre, on_post, sender))

    def snapshot_and_reset():
        snap = {k: dict(v) for k, v in counts.items()}
        for v in counts.values():
            v.clear()
        return snap

    yield connect, snapshot_and_reset
    for on_pre, on_post, sender in receivers:
        pre_init.disconnect(on_pre, sender=sender)
        post_init.disconnect(on_post, sender=sender)
