"""The end of `make demo`: stock psycopg 3 and django_rustpg side by side, in this process.

Both aliases point at the same database: "default" (ENGINE django_rustpg) and "stock"
(Django's own PostgreSQL backend on psycopg 3). Each shape runs on both, alternating, and
the table shows medians. A few seconds in all; the machine's load moves the numbers, so
read ratios near 1 as "the same".
"""

import datetime
import statistics
import time
from decimal import Decimal

from django.db import connections, transaction

from demoapp.models import Author, Book

ROWS = 10_000
REPS = 5
SAME = 0.05  # ratios within 5% of 1 are reported as a tie


def _seed():
    if Book.objects.count() >= ROWS:
        return
    authors = list(Author.objects.order_by("id"))
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    with transaction.atomic():
        Book.objects.bulk_create(
            Book(title=f"Extra {i}", author=authors[i % len(authors)], price=Decimal(i % 90) + Decimal("0.5"),
                 published=start + datetime.timedelta(minutes=i), tags={"n": i, "even": i % 2 == 0})
            for i in range(ROWS - Book.objects.count())
        )


def shapes(pks):
    return [
        (f"model list ({ROWS:,} rows)", lambda db: list(Book.objects.using(db).order_by("id"))),
        (f"values() ({ROWS:,} rows)", lambda db: list(Book.objects.using(db).order_by("id").values())),
        ("select_related page (100 rows)",
         lambda db: [list(Book.objects.using(db).select_related("author").order_by("id")[o:o + 100])
                     for o in range(0, 2_000, 100)]),
        (f"get() loop ({len(pks)} x get(pk=))", lambda db: [Book.objects.using(db).get(pk=pk) for pk in pks]),
    ]


def run():
    _seed()
    ids = list(Book.objects.order_by("id").values_list("id", flat=True))
    pks = ids[:: max(1, len(ids) // 300)][:300]
    rows = []
    for name, fn in shapes(pks):
        times = {"stock": [], "default": []}
        for rep in range(REPS):
            for db in ("stock", "default") if rep % 2 else ("default", "stock"):
                t0 = time.perf_counter()
                fn(db)
                times[db].append(time.perf_counter() - t0)
        # the first repetition warms both up (connections, caches): not counted
        stock, ours = (statistics.median(times[db][1:]) for db in ("stock", "default"))
        rows.append((name, stock, ours, stock / ours))
    print(f"\n{'shape':34} {'psycopg 3':>11} {'django_rustpg':>14} {'speed-up':>9}")
    for name, stock, ours, x in rows:
        print(f"{name:34} {stock * 1e3:9.1f} ms {ours * 1e3:11.1f} ms {x:8.2f}x")
    wins = [n for n, _, _, x in rows if x > 1 + SAME]
    ties = [n for n, _, _, x in rows if abs(x - 1) <= SAME]
    losses = [n for n, _, _, x in rows if x < 1 - SAME]
    print()
    if wins:
        print("Where django_rustpg wins: " + "; ".join(wins) + ".")
    if ties:
        print("Where it is about the same (within 5%): " + "; ".join(ties)
              + " (one small query at a time: Django's own Python and the round trip dominate).")
    if losses:
        print("Where it loses: " + "; ".join(losses) + ".")
    print(f"(median of {REPS - 1} alternating runs each, same process and database; "
          f"{connections['default'].settings_dict['ENGINE']} vs {connections['stock'].settings_dict['ENGINE']})")
    connections["stock"].close()
