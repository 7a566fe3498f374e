"""`make demo`: a short walk through the ORM on django_rustpg, an N+1 finding and its fix, then
stock psycopg 3 and django_rustpg side by side."""

import datetime
import os
import sys
import time
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

from django.db import connection, connections, transaction  # noqa: E402
from django.db.models import Avg, Count  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from demoapp.models import Author, Book  # noqa: E402


def ensure_database():
    name = connection.settings_dict["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    connections.close_all()


def step(title):
    print(f"\n== {title}")


def main():
    ensure_database()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    Book.objects.all().delete()
    Author.objects.all().delete()

    info = connection.cursor().connection.info
    step(f"Connected through the Rust driver (server {info.server_version}, backend pid {info.backend_pid})")
    print(f"ENGINE={connection.settings_dict['ENGINE']!r} vendor={connection.vendor!r}")

    step("bulk_create 50 authors and 1,000 books in a transaction")
    with transaction.atomic():
        authors = Author.objects.bulk_create(
            Author(name=f"Author {i}", born=datetime.date(1950, 1, 1) + datetime.timedelta(days=i * 97))
            for i in range(50)
        )
        now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        Book.objects.bulk_create(
            Book(
                title=f"Book {i}",
                author=authors[i % 50],
                price=Decimal(i % 40) + Decimal("0.99"),
                published=now + datetime.timedelta(hours=i),
                tags=["fiction"] if i % 3 else ["fiction", "award"],
            )
            for i in range(1000)
        )
    print(Author.objects.count(), "authors,", Book.objects.count(), "books")

    step("Filters, JSON lookups, aggregates")
    print("award winners:", Book.objects.filter(tags__contains=["award"]).count())
    print("average price:", Book.objects.aggregate(avg=Avg("price"))["avg"])
    top = Author.objects.annotate(n=Count("books")).order_by("-n", "name").first()
    print("most books:", top.name, top.n)

    step("Model instances, values() and values_list(), built natively from the wire")
    t = time.perf_counter()
    books = list(Book.objects.select_related("author").order_by("id"))
    print(f"{len(books)} books with select_related in {(time.perf_counter() - t) * 1000:.1f} ms;",
          f"first: {books[0].title!r} by {books[0].author.name!r}, published {books[0].published.isoformat()}")
    print("values():", Book.objects.values("title", "price").order_by("id")[0])
    print("values_list(flat=True):", list(Book.objects.values_list("id", flat=True).order_by("id")[:5]))

    step("iterator() streams through a server-side cursor")
    total = sum(1 for _ in Book.objects.iterator(chunk_size=200))
    print("streamed", total, "books")

    step("Transactions roll back on errors")
    try:
        with transaction.atomic():
            Author.objects.create(name="Temporary", born=datetime.date(2000, 1, 1))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    print("Temporary author exists:", Author.objects.filter(name="Temporary").exists())

    step("Debug cursor: connection.queries / assertNumQueries work as usual")
    with CaptureQueriesContext(connection) as ctx:
        Book.objects.filter(price__gt=10).exists()
    print(ctx.captured_queries[0]["sql"])

    try:
        from nplusone_demo import run as run_nplusone
    except ImportError:
        run_nplusone = None
    if run_nplusone is not None:
        step("N+1 detection: a finding, then its fix")
        run_nplusone()
    step("Side by side: stock psycopg 3 vs django_rustpg, same process, same database")
    from compare import run as run_compare

    run_compare()
    print("\nDemo finished.")


if __name__ == "__main__":
    main()
