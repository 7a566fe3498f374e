"""The Django half of the fingerprint golden corpus: SQL produced by Django's compiler,
schema editor, introspection and transaction code for real querysets on the ``shop`` app.

    python tests/nplusone/corpus.py          # rewrites src/sql/testdata/corpus_django.jsonl
    python tests/nplusone/corpus.py --check  # exit 1 if Django now emits other shapes

(it creates and drops its own test database). Each entry is
``{"id", "class", "sql"}`` with Django's ``%s`` placeholders; entries sharing a
``class`` must share a fingerprint, entries of different classes must not (the Rust test
``sql::fingerprint::tests::golden_corpus`` and ``test_fingerprint.py`` check both).
Parameter values are never stored: only SQL text, so the file is deterministic.
"""

import datetime
import json
import os
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "src", "sql", "testdata", "corpus_django.jsonl")


class Recorder:
    """Collects (sql) of every statement Django sends while active."""

    def __init__(self):
        self.sql = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(sql)
        return execute(sql, params, many, context)


def generate():
    from django.contrib.contenttypes.models import ContentType
    from django.contrib.postgres.aggregates import ArrayAgg, StringAgg
    from django.db import connection, models, transaction
    from django.db.models import (
        Avg, Case, Count, Exists, ExpressionWrapper, F, FilteredRelation, Max, OuterRef, Prefetch, Q, Subquery, Sum,
        Value, When, Window,
    )
    from django.db.models.functions import Coalesce, Concat, ExtractYear, Lower, RowNumber, TruncMonth, Upper
    from django.core.management.color import no_style
    from shop.models import Author, Book, Document, Label, Profile, Publisher, Review, Tag

    entries = []
    seen = set()

    def run(cls, fn, *, as_class=None):
        rec = Recorder()
        with connection.execute_wrapper(rec):
            try:
                with transaction.atomic():
                    fn()
                    transaction.set_rollback(True)
            except Exception as e:  # a case that fails on this Django: keep what ran
                print(f"corpus: {cls}: {type(e).__name__}: {e}", file=sys.stderr)
        n = 0
        for sql in rec.sql:
            key = (cls, sql)
            if key in seen:
                continue
            seen.add(key)
            n += 1
            klass = f"django/{as_class or cls}" + (f"#{n}" if n > 1 else "")
            verb = sql.split(" ", 2)[:2]
            # Savepoint statements are one shape each, whatever case ran them.
            if verb[0] in ("SAVEPOINT", "RELEASE"):
                klass = f"django/{verb[0].lower()}"
            elif verb == ["ROLLBACK", "TO"]:
                klass = "django/rollback_to"
            entries.append({"id": f"django/{cls}/{n}", "class": klass, "sql": sql})

    def same(cls, *fns):
        """Several querysets that must share one fingerprint (first statement of each)."""
        for i, fn in enumerate(fns, 1):
            rec = Recorder()
            with connection.execute_wrapper(rec):
                with transaction.atomic():
                    fn()
                    transaction.set_rollback(True)
            entries.append({"id": f"django/{cls}/v{i}", "class": f"django/{cls}", "sql": rec.sql[0]})

    # Data the queries can run against.
    pub = Publisher.objects.create(name="p")
    a = Author.objects.create(name="a", publisher=pub)
    Profile.objects.create(author=a)
    b = Book.objects.create(title="t", author=a, published=datetime.date(2020, 1, 2))
    label = Label.objects.create(name="l")
    b.labels.add(label)
    Review.objects.create(book=b, rating=4)
    ct = ContentType.objects.get_for_model(Book)
    Tag.objects.create(name="x", content_type=ct, object_id=b.pk)
    Document.objects.create(data={"k": 1}, tags=["a"])

    L = list  # evaluate a queryset

    # -- SELECT shapes
    run("all", lambda: L(Book.objects.all()))
    same("filter_pk", lambda: L(Book.objects.filter(pk=1)), lambda: L(Book.objects.filter(pk=999)))
    same("in_list", lambda: L(Book.objects.filter(pk__in=[1])), lambda: L(Book.objects.filter(pk__in=[1, 2, 3])),
         lambda: L(Book.objects.filter(pk__in=list(range(1, 40)))))
    run("exclude", lambda: L(Book.objects.exclude(title="x")))
    run("q_or", lambda: L(Book.objects.filter(Q(title="x") | Q(isbn="y"))))
    run("q_and_not", lambda: L(Book.objects.filter(Q(title="x") & ~Q(isbn="y"))))
    run("order_by", lambda: L(Book.objects.order_by("-title", "pk")))
    run("order_nulls", lambda: L(Book.objects.order_by(F("published").desc(nulls_last=True))))
    run("order_random", lambda: L(Book.objects.order_by("?")))
    run("distinct", lambda: L(Book.objects.distinct()))
    run("distinct_on", lambda: L(Book.objects.order_by("author_id", "pk").distinct("author_id")))
    run("values", lambda: L(Book.objects.values("title", "author__name")))
    run("values_list_flat", lambda: L(Book.objects.values_list("pk", flat=True)))
    run("only", lambda: L(Book.objects.only("title")))
    run("only_two", lambda: L(Book.objects.only("title", "isbn")))
    run("defer", lambda: L(Book.objects.defer("isbn")))
    run("select_related", lambda: L(Book.objects.select_related("author")))
    run("select_related_nested", lambda: L(Book.objects.select_related("author__publisher", "editor")))
    run("select_related_o2o", lambda: L(Author.objects.select_related("profile")))
    run("prefetch_reverse_fk", lambda: L(Book.objects.prefetch_related("reviews")))
    run("prefetch_m2m", lambda: L(Book.objects.prefetch_related("labels")))
    run("prefetch_reverse_m2m", lambda: L(Label.objects.prefetch_related("books")))
    run("prefetch_nested", lambda: L(Author.objects.prefetch_related("books__labels")))
    run("prefetch_object", lambda: L(Author.objects.prefetch_related(
        Prefetch("books", queryset=Book.objects.filter(price__gte=0).select_related("editor")))))
    run("prefetch_gfk", lambda: L(Tag.objects.prefetch_related("content_object")))
    run("annotate_count", lambda: L(Book.objects.annotate(Count("reviews"))))
    run("annotate_count_distinct", lambda: L(Author.objects.annotate(n=Count("books", distinct=True))))
    run("aggregate", lambda: Book.objects.aggregate(Sum("price"), Avg("price"), Max("published")))
    run("group_by", lambda: L(Book.objects.values("author").annotate(n=Count("pk")).order_by()))
    run("having", lambda: L(Author.objects.annotate(n=Count("books")).filter(n__gt=1)))
    run("subquery", lambda: L(Author.objects.annotate(
        last=Subquery(Book.objects.filter(author=OuterRef("pk")).order_by("-pk").values("title")[:1]))))
    run("exists_expr", lambda: L(Book.objects.filter(Exists(Review.objects.filter(book=OuterRef("pk"), rating__gte=4)))))
    run("f_expr", lambda: L(Book.objects.filter(price__gt=F("price") * 2)))
    run("case_when", lambda: L(Book.objects.annotate(
        grade=Case(When(price__gt=10, then=Value("high")), default=Value("low"), output_field=models.CharField()))))
    run("coalesce", lambda: L(Book.objects.annotate(d=Coalesce("published", Value(datetime.date(2000, 1, 1))))))
    run("lower_upper", lambda: L(Book.objects.annotate(l=Lower("title"), u=Upper("isbn"))))
    run("concat", lambda: L(Book.objects.annotate(full=Concat("title", Value(" - "), "isbn"))))
    run("extract_year", lambda: L(Book.objects.annotate(y=ExtractYear("published")).filter(y=2020)))
    run("trunc_month", lambda: L(Book.objects.annotate(m=TruncMonth("published")).values("m").annotate(n=Count("pk"))))
    run("dates", lambda: L(Book.objects.dates("published", "year")))
    run("datetimes", lambda: L(Document.objects.datetimes("created", "month")))
    run("window", lambda: L(Book.objects.annotate(
        rn=Window(RowNumber(), partition_by=[F("author_id")], order_by=F("price").desc()))))
    run("union", lambda: L(Book.objects.filter(pk=1).union(Book.objects.filter(title="x"))))
    run("intersection", lambda: L(Book.objects.filter(pk=1).intersection(Book.objects.filter(title="x"))))
    run("difference", lambda: L(Book.objects.filter(pk=1).difference(Book.objects.filter(title="x"))))
    run("select_for_update", lambda: L(Book.objects.select_for_update()))
    run("select_for_update_nowait", lambda: L(Book.objects.select_for_update(nowait=True)))
    run("select_for_update_skip", lambda: L(Book.objects.select_for_update(skip_locked=True, of=("self",))))
    same("get", lambda: Book.objects.get(pk=b.pk), lambda: Book.objects.get(pk=b.pk))
    run("first", lambda: Book.objects.first())
    run("last", lambda: Book.objects.last())
    run("exists", lambda: Book.objects.filter(title="t").exists())
    run("count", lambda: Book.objects.count())
    run("count_filtered", lambda: Book.objects.filter(author_id=1).count())
    run("in_bulk", lambda: Book.objects.in_bulk([1, 2]), as_class="in_list")
    same("slice", lambda: L(Book.objects.all()[5:10]), lambda: L(Book.objects.all()[10:15]))
    run("slice_head", lambda: L(Book.objects.all()[:5]))
    run("contains", lambda: L(Book.objects.filter(title__contains="x")))
    run("icontains", lambda: L(Book.objects.filter(title__icontains="x")))
    run("startswith", lambda: L(Book.objects.filter(title__startswith="x")))
    run("iexact", lambda: L(Book.objects.filter(title__iexact="x")))
    run("regex", lambda: L(Book.objects.filter(title__regex=r"^x+")))
    run("isnull", lambda: L(Book.objects.filter(published__isnull=True)))
    run("range", lambda: L(Book.objects.filter(price__range=(1, 5))))
    run("date_lookup", lambda: L(Book.objects.filter(published__year=2020, published__month__gte=1)))
    run("json_key", lambda: L(Document.objects.filter(data__k=1)))
    run("json_contains", lambda: L(Document.objects.filter(data__contains={"k": 1})))
    run("json_has_key", lambda: L(Document.objects.filter(data__has_key="k")))
    run("array_contains", lambda: L(Document.objects.filter(tags__contains=["a"])))
    run("array_overlap", lambda: L(Document.objects.filter(tags__overlap=["a", "b"])))
    run("array_len", lambda: L(Document.objects.filter(tags__len=1)))
    run("uuid", lambda: L(Document.objects.filter(uuid=uuid.UUID(int=1))))
    run("raw", lambda: L(Book.objects.raw("SELECT id, title FROM shop_book WHERE title = %s", ["t"])))
    run("extra", lambda: L(Book.objects.extra(select={"one": "1"}, where=["shop_book.price >= %s"], params=[0])))
    run("reverse_fk_filter", lambda: L(Author.objects.filter(books__title="t")))
    run("m2m_filter", lambda: L(Book.objects.filter(labels__name="l")))
    run("filtered_relation", lambda: L(Author.objects.annotate(
        cheap=FilteredRelation("books", condition=Q(books__price__lt=5))).filter(cheap__isnull=False)))
    run("expression_wrapper", lambda: L(Book.objects.annotate(
        double=ExpressionWrapper(F("price") * 2, output_field=models.DecimalField()))))
    run("array_agg", lambda: L(Author.objects.annotate(titles=ArrayAgg("books__title"))))
    run("string_agg", lambda: L(Author.objects.annotate(titles=StringAgg("books__title", delimiter=","))))
    run("alias", lambda: L(Book.objects.alias(n=Count("reviews")).filter(n__gte=1)))
    run("explain", lambda: Book.objects.filter(pk=1).explain())
    run("iterator", lambda: L(Book.objects.iterator(chunk_size=50)))
    # Relation loads: the statements the N+1 detector sees in loops.
    fresh = lambda: Book.objects.get(pk=b.pk)  # noqa: E731
    run("forward_fk_load", lambda: fresh().author)
    run("reverse_fk_load", lambda: L(fresh().reviews.all()))
    run("m2m_load", lambda: L(fresh().labels.all()))
    run("reverse_o2o_load", lambda: Author.objects.get(pk=a.pk).profile)
    run("deferred_load", lambda: Book.objects.only("title").get(pk=b.pk).isbn)
    run("gfk_load", lambda: Tag.objects.get(name="x").content_object)
    run("related_count", lambda: fresh().reviews.count())
    run("related_exists", lambda: fresh().reviews.exists())

    # -- writes
    run("create", lambda: Label.objects.create(name="n"))
    run("save_update", lambda: fresh().save())
    run("update", lambda: Book.objects.filter(pk=1).update(title="z"))
    run("update_f", lambda: Book.objects.filter(author_id=1).update(price=F("price") + 1))
    run("update_related_filter", lambda: Book.objects.filter(author__name="a").update(isbn="q"))
    run("delete_fast", lambda: Review.objects.filter(rating=0).delete())
    run("delete_cascade", lambda: Author.objects.filter(pk=a.pk).delete())
    run("bulk_create", lambda: Label.objects.bulk_create([Label(name="x"), Label(name="y"), Label(name="z")]))
    run("bulk_create_ignore", lambda: Label.objects.bulk_create([Label(name="x")], ignore_conflicts=True))
    run("bulk_update", lambda: Book.objects.bulk_update([fresh()], ["title", "price"]))
    run("get_or_create", lambda: Label.objects.get_or_create(name="new"))
    run("update_or_create", lambda: Label.objects.update_or_create(name="l", defaults={"name": "l2"}))
    run("m2m_add", lambda: fresh().labels.add(Label.objects.create(name="m")))
    run("m2m_remove", lambda: fresh().labels.remove(label))
    run("m2m_clear", lambda: fresh().labels.clear())
    run("m2m_set", lambda: fresh().labels.set([label]))
    run("refresh", lambda: fresh().refresh_from_db())

    def nested_atomic():
        with transaction.atomic():
            Label.objects.create(name="s1")
            try:
                with transaction.atomic():
                    Label.objects.create(name="s2")
                    raise ValueError
            except ValueError:
                pass

    run("savepoints", nested_atomic)

    # -- schema editor (migrations), introspection, flush
    def ddl():
        class Shelf(models.Model):
            name = models.CharField(max_length=30, db_index=True)
            book = models.ForeignKey(Book, on_delete=models.CASCADE)
            size = models.PositiveIntegerField(default=1)

            class Meta:
                app_label = "shop"
                unique_together = [("name", "book")]

        with connection.schema_editor(collect_sql=True) as editor:
            editor.create_model(Shelf)
            field = models.IntegerField(null=True)
            field.set_attributes_from_name("height")
            editor.add_field(Shelf, field)
            editor.alter_db_table(Shelf, "shop_shelf", "shop_shelves")
            editor.delete_model(Shelf)
        from django.apps import apps

        apps.all_models["shop"].pop("shelf", None)
        apps.clear_cache()
        return editor.collected_sql

    collected = []
    with transaction.atomic():
        collected = ddl()
        transaction.set_rollback(True)
    for i, sql in enumerate(collected, 1):
        entries.append({"id": f"django/ddl/{i}", "class": f"django/ddl#{i}", "sql": sql.rstrip(";")})

    def introspection():
        with connection.cursor() as cursor:
            connection.introspection.get_table_list(cursor)
            connection.introspection.get_table_description(cursor, "shop_book")
            connection.introspection.get_constraints(cursor, "shop_book")
            connection.introspection.get_sequences(cursor, "shop_book")
            connection.introspection.get_relations(cursor, "shop_book")

    run("introspection", introspection)
    for i, sql in enumerate(connection.ops.sql_flush(no_style(), ["shop_review", "shop_book"], reset_sequences=True), 1):
        entries.append({"id": f"django/flush/{i}", "class": f"django/flush#{i}", "sql": sql.rstrip(";")})
    for i, sql in enumerate(connection.ops.sequence_reset_sql(no_style(), [Book, Label]), 1):
        entries.append({"id": f"django/sequence_reset/{i}", "class": f"django/sequence_reset#{i}", "sql": sql.rstrip(";")})
    return entries


def dedupe_classes(entries):
    """Distinct classes whose statements are textually identical (Django emitting the same
    statement for two cases, e.g. a savepoint) are merged under the first class."""
    by_sql = {}
    for e in entries:
        first = by_sql.setdefault(e["sql"], e["class"])
        e["class"] = first
    return entries


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    sys.path.insert(0, HERE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "np_settings")
    if check:
        os.environ.setdefault("NPLUSONE_TEST_DB", "django_rustpg_nplusone_corpus")
    import django

    django.setup()
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        entries = dedupe_classes(generate())
    finally:
        from django.db import connections

        connections.close_all()
        teardown_databases(old, verbosity=0)
    if check:
        from django_rustpg import _native

        with open(OUT, encoding="utf-8") as fh:
            stored = {e["id"]: e for e in map(json.loads, fh) if "sql" in e}
        fp = lambda sql: _native.fingerprint_sql(sql)[0]  # noqa: E731
        fresh = {e["id"]: fp(e["sql"]) for e in entries}
        old = {i: fp(e["sql"]) for i, e in stored.items()}
        diff = sorted(i for i in set(fresh) | set(old) if fresh.get(i) != old.get(i))
        for i in diff:
            print(f"differs: {i}", file=sys.stderr)
        print(f"{len(entries)} statements, {len(diff)} differ from {OUT}")
        sys.exit(1 if diff else 0)
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"comment": f"generated by tests/nplusone/corpus.py with Django {django.get_version()}"}) + "\n")
        for e in entries:
            fh.write(json.dumps(e, ensure_ascii=False) + "\n")
    print(f"{len(entries)} statements -> {OUT}")


if __name__ == "__main__":
    main()
