"""Run by tests/test_pgvector.py in a process of its own (it configures Django).

pgvector's Django fields on the stock backend and on django_rustpg against the same
database: bulk_create, nearest neighbours (L2Distance, CosineDistance, MaxInnerProduct),
values read, saved back and read again, raw cursor reads. Prints the differences as JSON.

argv: dbname host port user with_halfvec(0/1)
"""
import json
import random
import sys

import django
from django.conf import settings

DB, HOST, PORT, USER, HALF = sys.argv[1:6]
common = {"NAME": DB, "HOST": HOST, "PORT": PORT, "USER": USER}
settings.configure(
    DATABASES={
        "default": {"ENGINE": "django.db.backends.postgresql", **common},
        "ours": {"ENGINE": "django_rustpg", **common},
    },
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.db import connections, models  # noqa: E402
from pgvector.django import (  # noqa: E402
    CosineDistance, HalfVectorField, L2Distance, MaxInnerProduct, SparseVectorField, VectorField,
)
from pgvector import SparseVector  # noqa: E402


class Item(models.Model):
    embedding = VectorField(dimensions=3, null=True)

    class Meta:
        app_label = "pv"
        db_table = "pv_item"


class HalfItem(models.Model):
    half = HalfVectorField(dimensions=3, null=True)
    sparse = SparseVectorField(dimensions=10, null=True)

    class Meta:
        app_label = "pv"
        db_table = "pv_halfitem"


def recreate(alias, model):
    with connections[alias].cursor() as c:
        c.execute(f"DROP TABLE IF EXISTS {model._meta.db_table}")
    with connections[alias].schema_editor() as editor:
        editor.create_model(model)


def vectors(alias):
    out = {}
    recreate(alias, Item)
    rng = random.Random(5)
    data = [[round(rng.uniform(-1, 1), 6) for _ in range(3)] for _ in range(300)] + [None]
    objs = Item.objects.using(alias)
    objs.bulk_create([Item(id=i + 1, embedding=v) for i, v in enumerate(data)], batch_size=100)
    q = [0.1, 0.2, 0.3]
    out["l2"] = list(objs.order_by(L2Distance("embedding", q), "id").values_list("id", flat=True)[:10])
    out["cosine"] = list(objs.order_by(CosineDistance("embedding", q), "id").values_list("id", flat=True)[:10])
    out["inner"] = list(objs.order_by(MaxInnerProduct("embedding", q), "id").values_list("id", flat=True)[:10])
    out["annotated"] = [(i.id, i.embedding, i.d) for i in objs.annotate(d=L2Distance("embedding", q)).order_by("d", "id")[:5]]
    out["within"] = sorted(objs.alias(d=CosineDistance("embedding", q)).filter(d__lt=0.2).values_list("id", flat=True))
    out["all"] = [(i.id, i.embedding) for i in objs.order_by("id")]
    out["values"] = list(objs.filter(id__lte=3).values("id", "embedding"))
    it = objs.get(id=1)
    it.save()  # read -> write -> read
    out["saved"] = objs.get(id=1).embedding
    objs.filter(id=2).update(embedding=[1, 2, 3])
    out["exact"] = list(objs.filter(embedding=[1, 2, 3]).values_list("id", flat=True))
    out["nulls"] = list(objs.filter(embedding__isnull=True).values_list("id", flat=True))
    with connections[alias].cursor() as c:
        c.execute("SELECT embedding, ARRAY[embedding, NULL] FROM pv_item ORDER BY id LIMIT 3")
        out["raw"] = [tuple((type(v).__name__, v) for v in row) for row in c.fetchall()]
    return out


def half_and_sparse(alias):
    out = {}
    recreate(alias, HalfItem)
    rng = random.Random(6)
    objs = HalfItem.objects.using(alias)
    rows = []
    for i in range(200):
        sparse = SparseVector({j: round(rng.uniform(-5, 5), 3) for j in rng.sample(range(10), rng.randint(1, 4))}, 10)
        rows.append(HalfItem(id=i + 1, half=[round(rng.uniform(-1, 1), 3) for _ in range(3)], sparse=sparse))
    rows.append(HalfItem(id=1000, half=None, sparse=None))
    objs.bulk_create(rows)
    q = [0.1, 0.2, 0.3]
    out["half_l2"] = list(objs.order_by(L2Distance("half", q), "id").values_list("id", flat=True)[:10])
    out["half_cosine"] = list(objs.order_by(CosineDistance("half", q), "id").values_list("id", flat=True)[:10])
    sq = SparseVector({0: 1.0, 3: 2.0}, 10)
    out["sparse_l2"] = list(objs.order_by(L2Distance("sparse", sq), "id").values_list("id", flat=True)[:10])
    out["all"] = [(i.id, i.half, repr(i.sparse)) for i in objs.order_by("id")]
    it = objs.get(id=1)
    it.save()
    got = objs.get(id=1)
    out["saved"] = (got.half, repr(got.sparse))
    return out


def compare(name, fn):
    global checked
    a, b = fn("ours"), fn("default")
    for key in b:
        checked += 1
        if repr(a.get(key)) != repr(b[key]):
            diffs.append({"case": f"{name}.{key}", "ours": repr(a.get(key))[:600], "stock": repr(b[key])[:600]})


checked = 0
diffs = []
compare("vector", vectors)
if HALF == "1":
    compare("halfvec", half_and_sparse)
print(json.dumps({"checked": checked, "diffs": diffs}))
