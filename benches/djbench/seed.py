"""(Re)create the bench database and fill it deterministically with COPY.

    BENCH_ENGINE=psycopg3 python -m djbench.seed      (run.py does this once per run)

1,000 authors, 50 labels, 20,000 books with ~3 labels each, 100,000 reviews.
"""
import os
import random
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings")

N_AUTHORS, N_LABELS, N_BOOKS, N_REVIEWS = 1_000, 50, 20_000, 100_000
SEED = 20240601

WORDS = ("the of and a to in is you that it he was for on are as with his they at be this "
         "from have or one had by word but not what all were we when your can said there use "
         "an each which she do how their if will up other about out many then them these so "
         "some her would make like him into time has look two more write go see number no way "
         "could people my than first water been call who oil its now find long down day did "
         "café naïve façade 東京 Ångström smörgåsbord").split()
FIRST = "Ada Alan Barbara Claude Donald Edsger Frances Grace Guido Ken Linus Margaret Niklaus Radia Tim".split()
LAST = "Lovelace Turing Liskov Shannon Knuth Dijkstra Allen Hopper Rossum Thompson Torvalds Hamilton Wirth Perlman Berners-Lee".split()
TAGS = "new classic bestseller signed rare hardcover paperback ebook illustrated annotated".split()
LANGS = ("en", "fr", "de", "ja", "sv")
EPOCH = datetime(2015, 1, 1, tzinfo=timezone.utc)
# update_filter writes this stamp on recent out-of-stock books; the seed already holds it
# there, so the data every other scenario reads is the same before and after it runs.
RESTOCK_SINCE = date(2018, 1, 1)
RESTOCK_STAMP = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
TEN_YEARS_US = 10 * 365 * 86_400 * 1_000_000


def words(rng, lo, hi):
    return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi)))


def moment(rng):
    return EPOCH + timedelta(microseconds=rng.randrange(TEN_YEARS_US))


def uid(rng):
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def generate():
    """Rows per table, in COPY column order; ids are explicit so every run is identical."""
    rng = random.Random(SEED)
    authors = [
        (i, f"{rng.choice(FIRST)} {rng.choice(LAST)}", f"author{i}@example.com",
         date(1940, 1, 1) + timedelta(days=rng.randrange(22_000)), rng.random() < 0.8,
         rng.random() * 5, uid(rng))
        for i in range(1, N_AUTHORS + 1)
    ]
    labels = [(i, f"label-{i:02d}") for i in range(1, N_LABELS + 1)]
    books, book_labels = [], []
    for i in range(1, N_BOOKS + 1):
        meta = {"pages": rng.randint(50, 900), "lang": rng.choice(LANGS), "edition": rng.randint(1, 5),
                "awards": rng.sample(TAGS, rng.randint(0, 2)), "ebook": rng.random() < 0.3,
                "dims": {"w": round(rng.uniform(10, 30), 1), "h": round(rng.uniform(15, 40), 1)},
                "isbn": None if rng.random() < 0.1 else f"978{rng.randrange(10**10):010d}"}
        published = date(1990, 1, 1) + timedelta(days=rng.randrange(12_000))
        updated_at = moment(rng) if rng.random() < 0.3 else None
        in_stock = rng.random() < 0.7
        if published >= RESTOCK_SINCE and not in_stock:
            updated_at = RESTOCK_STAMP
        books.append((
            i, rng.randint(1, N_AUTHORS), words(rng, 2, 6).title(), Decimal(rng.randint(100, 99_999)).scaleb(-2),
            published, moment(rng), updated_at, uid(rng), meta, rng.sample(TAGS, rng.randint(0, 4)),
            words(rng, 20, 60), in_stock, rng.random() * 5,
        ))
        book_labels.extend((i, label) for label in rng.sample(range(1, N_LABELS + 1), rng.randint(2, 4)))
    reviews = [
        (i, rng.randint(1, N_BOOKS), rng.randint(1, 5), Decimal(rng.randint(0, 10_000)).scaleb(-2),
         moment(rng), words(rng, 5, 25))
        for i in range(1, N_REVIEWS + 1)
    ]
    return {
        "shop_author": (("id", "name", "email", "birth_date", "is_active", "rating", "uid"), authors),
        "shop_label": (("id", "name"), labels),
        "shop_book": (("id", "author_id", "title", "price", "published", "created_at", "updated_at", "uid",
                       "metadata", "tags", "summary", "in_stock", "rating"), books),
        "shop_book_labels": (("book_id", "label_id"), book_labels),
        "shop_review": (("id", "book_id", "rating", "score", "created_at", "body"), reviews),
    }


def recreate_database():
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"] or None,
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
        # Commits then measure the client and server, not this machine's fsync latency
        # (create_1k commits 1,000 times). Only this database is affected.
        conn.execute(f'ALTER DATABASE "{db["NAME"]}" SET synchronous_commit = off')


def main():
    import django

    django.setup()
    from django.apps import apps
    from django.db import connection
    from psycopg.types.json import Jsonb

    if connection.vendor != "postgresql" or connection.Database.__name__ != "psycopg":
        sys.exit("seed: run with BENCH_ENGINE=psycopg3 (COPY goes through psycopg 3)")
    recreate_database()
    with connection.schema_editor() as editor:
        for model in apps.get_app_config("shop").get_models():
            editor.create_model(model)
    tables = generate()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        for table, (cols, rows) in tables.items():
            jsonish = [i for i, c in enumerate(cols) if c in ("metadata", "note")]
            with raw.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    if jsonish:
                        row = list(row)
                        for i in jsonish:
                            row[i] = Jsonb(row[i])
                    copy.write_row(row)
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")
    connection.close()
    import psycopg
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"] or None,
                         dbname=db["NAME"], autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")
    print(f"seeded {db['NAME']}: " + ", ".join(f"{len(rows)} {t}" for t, (_, rows) in tables.items()))


if __name__ == "__main__":
    main()
