"""Runs one read-your-writes scenario in a Django process of its own (settings are
per process) against a primary and a standby; prints a JSON object of counts.

    python router_probe.py PRIMARY_PORT STANDBY_PORT SCENARIO [ENGINE] [MAX_PIN]

The standby replays with a delay (recovery_min_apply_delay), so a read the router sent to it
right after a write would miss the write: the scenarios count such misses.
"""

import asyncio
import json
import os
import sys
import time

import django
from django.conf import settings

PRIMARY, STANDBY, SCENARIO = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ENGINE = sys.argv[4] if len(sys.argv) > 4 else "django_rustpg"
MAX_PIN = float(sys.argv[5]) if len(sys.argv) > 5 else 15.0
RUN = str(os.getpid())  # rows of earlier runs on the same pair never count


def database(port):
    return {"ENGINE": ENGINE, "NAME": "postgres", "USER": "postgres", "HOST": "127.0.0.1", "PORT": str(port)}


DATABASES = {"default": database(PRIMARY), "replica1": database(STANDBY)}
REPLICAS = ["replica1"]
if SCENARIO == "replica_down":
    # A second standby that is not there (nothing listens on port 9).
    DATABASES["replica2"] = {**database(9), "OPTIONS": {"connect_timeout": 2}}
    REPLICAS.append("replica2")

settings.configure(
    DATABASES=DATABASES,
    DATABASE_ROUTERS=["django_rustpg.routers.ReplicaRouter"],
    RUSTPG_REPLICAS={"default": REPLICAS},
    RUSTPG_READ_YOUR_WRITES={"MAX_PIN": MAX_PIN},
    INSTALLED_APPS=["django.contrib.contenttypes"],
    MIDDLEWARE=["django_rustpg.routers.ReadYourWritesMiddleware"],
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="router-probe",
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from django.db import connections, models, transaction  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from django_rustpg.routers import read_your_writes  # noqa: E402


class Item(models.Model):
    n = models.IntegerField()
    tag = models.TextField(default="")

    class Meta:
        app_label = "router_probe"
        db_table = "router_probe_item"


def write_view(request):
    Item.objects.create(n=int(request.GET["n"]), tag=RUN + "web")
    return HttpResponse("ok")


def read_view(request):
    qs = Item.objects.filter(n=int(request.GET["n"]), tag=RUN + "web")
    return HttpResponse(f"{qs.db}:{int(qs.exists())}")


async def async_write_view(request):
    await Item.objects.acreate(n=int(request.GET["n"]), tag=RUN + "web")
    return HttpResponse("ok")


async def async_read_view(request):
    from asgiref.sync import sync_to_async

    qs = Item.objects.filter(n=int(request.GET["n"]), tag=RUN + "web")
    db = await sync_to_async(lambda: qs.db)()
    return HttpResponse(f"{db}:{int(await qs.aexists())}")


urlpatterns = [path("write", write_view), path("read", read_view),
               path("awrite", async_write_view), path("aread", async_read_view)]


def on_standby(alias):
    with connections[alias].cursor() as cur:
        cur.execute("SELECT pg_is_in_recovery()")
        return cur.fetchone()[0]


def wait_replayed():
    with connections["default"].cursor() as cur:
        cur.execute("SELECT pg_current_wal_insert_lsn()")
        target = cur.fetchone()[0]
    while True:
        with connections["replica1"].cursor() as cur:
            cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
            if cur.fetchone()[0]:
                return
        time.sleep(0.02)


def read_after_write(n):
    """1,000 writes, each followed at once by a read through the router; and the same reads
    made on the replica directly (the control: they must miss, or this test could not fail)."""
    out = {"found": 0, "missed": 0, "read_on": {}, "control_missed": 0}
    with read_your_writes():
        for i in range(n):
            Item.objects.create(n=i, tag=RUN + "ryw")
            qs = Item.objects.filter(n=i, tag=RUN + "ryw")
            out["read_on"][qs.db] = out["read_on"].get(qs.db, 0) + 1
            out["found" if qs.exists() else "missed"] += 1
            if not Item.objects.using("replica1").filter(n=i, tag=RUN + "ryw").exists():
                out["control_missed"] += 1
    return out


def scenario(name):
    if name == "ryw":
        start = time.perf_counter()
        out = read_after_write(int(os.environ.get("RUSTPG_RYW_WRITES", "1000")))
        out["seconds"] = round(time.perf_counter() - start, 2)
        return out
    if name == "no_write":
        with read_your_writes():
            qs = Item.objects.all()
            return {"db": qs.db, "standby": on_standby(qs.db)}
    if name == "caught_up":
        with read_your_writes():
            Item.objects.create(n=-1, tag=RUN + "caught")
            right_after = Item.objects.filter(tag=RUN + "caught").db
            wait_replayed()
            time.sleep(0.02)  # past CHECK_EVERY: the replica is asked again
            qs = Item.objects.filter(tag=RUN + "caught")
            return {"right_after": right_after, "after_replay": qs.db, "found": qs.exists()}
    if name == "atomic":
        with read_your_writes():
            with transaction.atomic():
                inside = Item.objects.all().db
                count_inside = Item.objects.count()
            outside = Item.objects.all().db
        return {"inside": inside, "outside": outside, "count_inside_ok": count_inside >= 0}
    if name == "save_from_replica":
        # An object read from the standby is saved on the primary (a write there would fail:
        # the standby is read-only).
        Item.objects.using("default").create(n=-3, tag=RUN + "to-save")
        wait_replayed()
        with read_your_writes():
            obj = Item.objects.filter(tag=RUN + "to-save").first()
            read_from = obj._state.db
            obj.tag = RUN + "saved"
            obj.save()
            return {"read_from": read_from, "saved_to": obj._state.db,
                    "on_primary": Item.objects.using("default").filter(tag=RUN + "saved").count()}
    if name == "replica_down":
        with read_your_writes():
            Item.objects.create(n=-4, tag=RUN + "down")
            qs = Item.objects.filter(tag=RUN + "down")
            right_after = [qs.db, qs.exists()]
            wait_replayed()
            time.sleep(0.02)
            qs = Item.objects.filter(tag=RUN + "down")
            return {"right_after": right_after, "after_replay": [qs.db, qs.exists()]}
    if name == "raw_sql":
        from django_rustpg.routers import mark_written

        out = {}
        for marked in (False, True):
            with read_your_writes():
                with connections["default"].cursor() as cur:
                    cur.execute("INSERT INTO router_probe_item (n, tag) VALUES (%s, %s)", [int(marked), RUN + "raw"])
                if marked:
                    mark_written()
                qs = Item.objects.filter(n=int(marked), tag=RUN + "raw")
                out[f"marked={marked}"] = [qs.db, qs.exists()]
        return out
    if name == "config_errors":
        from django.core.exceptions import ImproperlyConfigured
        from django.test import override_settings

        from django_rustpg.routers import Topology

        messages = []
        for bad in ({"RUSTPG_REPLICAS": {}}, {"RUSTPG_REPLICAS": {"default": ["nope"]}},
                    {"RUSTPG_REPLICAS": {"nope": ["replica1"]}}, {"RUSTPG_REPLICAS": {"default": "replica1"}},
                    {"RUSTPG_READ_YOUR_WRITES": {"MAX_PINN": 1}}, {"RUSTPG_READ_YOUR_WRITES": {"MAX_PIN": -1}}):
            try:
                with override_settings(**bad):
                    Topology()
                messages.append(None)
            except ImproperlyConfigured as e:
                messages.append(str(e))
        return messages
    if name == "async":
        return asyncio.run(async_scopes())
    if name == "middleware":
        return middleware()
    if name == "async_middleware":
        return asyncio.run(async_middleware())
    if name == "cap":
        with read_your_writes():
            Item.objects.create(n=-2, tag=RUN + "cap")
            first = Item.objects.filter(tag=RUN + "cap").db
            time.sleep(MAX_PIN + 0.01)
            return {"first": first, "after_cap": Item.objects.filter(tag=RUN + "cap").db}
    raise SystemExit(f"unknown scenario {name}")


async def async_scopes():
    from asgiref.sync import sync_to_async

    async def writer(k):
        async with read_your_writes():
            await Item.objects.acreate(n=1000 + k, tag=RUN + "async")
            qs = Item.objects.filter(n=1000 + k, tag=RUN + "async")
            db = await sync_to_async(lambda: qs.db)()
            return {"db": db, "found": await qs.aexists()}

    async def reader():
        async with read_your_writes():
            await asyncio.sleep(0.05)  # the writers have written by now
            return {"db": await sync_to_async(lambda: Item.objects.all().db)()}

    @read_your_writes
    async def task():
        await Item.objects.acreate(n=2000, tag=RUN + "task")
        return await sync_to_async(lambda: Item.objects.filter(tag=RUN + "task").db)()

    results = await asyncio.gather(writer(1), writer(2), reader(), task())
    return {"writers": results[:2], "reader": results[2], "task": results[3]}


def middleware():
    from django.test import Client

    client, stranger = Client(), Client()
    out = {"same_client": {}, "other_client": {}, "cookie": None}
    for i in range(20):
        client.get(f"/write?n={3000 + i}")
        out["cookie"] = "rustpg_lsn" in client.cookies
        for who, c in (("same_client", client), ("other_client", stranger)):
            body = c.get(f"/read?n={3000 + i}").content.decode()
            out[who][body] = out[who].get(body, 0) + 1
    return out


async def async_middleware():
    """The same through ASGI: async views, the middleware's async path."""
    from django.test import AsyncClient

    client, stranger = AsyncClient(), AsyncClient()
    out = {"same_client": {}, "other_client": {}, "cookie": None}
    for i in range(20):
        await client.get(f"/awrite?n={4000 + i}")
        out["cookie"] = "rustpg_lsn" in client.cookies
        for who, c in (("same_client", client), ("other_client", stranger)):
            body = (await c.get(f"/aread?n={4000 + i}")).content.decode()
            out[who][body] = out[who].get(body, 0) + 1
    return out


if __name__ == "__main__":
    with connections["default"].cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS router_probe_item (id bigserial PRIMARY KEY, n int NOT NULL, "
                    "tag text NOT NULL DEFAULT '')")
    wait_replayed()
    print(json.dumps(scenario(SCENARIO)))
