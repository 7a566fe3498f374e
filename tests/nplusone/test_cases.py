"""One case per N+1 kind: exactly one finding with the right relation, and the reported
fix, applied to the loop's queryset, leaves no finding and at most 2 queries (3 for the
two-level nested loop over two many-valued relations, books then labels: Django needs one
query per many-valued level there; with a foreign key as the inner level the fix joins it
into the prefetch query and 2 queries remain)."""
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_rustpg import nplusone
from shop import scenarios


def run(fn, *args, **kwargs):
    with nplusone.scope(mode="collect") as report, CaptureQueriesContext(connection) as queries:
        fn(*args, **kwargs)
    return report, len(queries)


@pytest.mark.parametrize("name", list(scenarios.CASES))
def test_case_yields_one_finding_and_its_fix_works(data, name):
    fn, relation, fix = scenarios.CASES[name]
    report, n_before = run(fn)
    # Nested loops: one finding per level; the deepest one names the combined fix.
    assert len(report.findings) == (2 if name.startswith("nested") else 1), [f.describe() for f in report.findings]
    f = max(report.findings, key=lambda x: x.level)
    assert f.kind == "n_plus_one"
    assert f.relation == relation
    assert f.fix == fix
    assert f.confirmed is True
    assert f.source_callsite and f.source_callsite.startswith("shop/scenarios.py:")
    assert f.callsite.startswith("shop/scenarios.py:")
    assert f.count >= 5 and f.total_ms > 0
    assert f.fingerprint == nplusone.fingerprint(f.sql)

    fixed, n_after = run(fn, fix=f.fix)
    assert fixed.findings == []
    assert n_after <= (3 if name == "nested_loop" else 2), n_after
    assert n_after < n_before
    same = lambda r: sorted(r) if isinstance(r, list) else r  # noqa: E731
    assert same(fn(fix=f.fix)) == same(fn())  # same result


def test_template_loop_names_the_template(data):
    report, _ = run(scenarios.template_loop)
    (f,) = report.findings
    assert f.template == "shop/books.html:3"


def test_nested_loop_lists_both_levels(data):
    report, _ = run(scenarios.nested_loop)
    outer, inner = report.findings
    assert (outer.count, inner.count) == (5, 10)  # books per author, labels per book
    assert [n["path"] for n in outer.nested] == ["books__labels"]
    assert outer.nested[0]["relation"] == inner.relation == "shop.Book.labels"


def test_nested_loop_with_a_foreign_key_inside_joins_it_into_the_prefetch(data):
    report, n_before = run(scenarios.nested_loop_fk)
    outer, f = report.findings
    assert (outer.count, f.count) == (5, 10)  # books per author, editor per book
    assert [(n["path"], n["relation"]) for n in outer.nested] == [("books__editor", "shop.Book.editor")]
    assert outer.covered_by == f.fix
    fixed, n_after = run(scenarios.nested_loop_fk, fix=f.fix)
    assert (fixed.findings, n_before, n_after) == ([], 1 + 5 + 10, 2)


def test_foreign_key_then_reverse_relation_selects_then_prefetches(data):
    from shop.models import Book

    def loop(fix=None):
        qs = scenarios.apply(Book.objects.order_by("pk"), fix)
        return [(b.title, other.title) for b in qs for other in b.author.books.all()]

    report, n_before = run(loop)
    outer, f = report.findings
    assert (outer.relation, outer.fix) == ("shop.Book.author", 'select_related("author")')
    assert (f.relation, f.fix) == ("shop.Author.books", 'select_related("author").prefetch_related("author__books")')
    fixed, n_after = run(loop, fix=f.fix)
    assert (fixed.findings, n_after) == ([], 2)
    assert sorted(loop(fix=f.fix)) == sorted(loop())


def test_get_in_a_loop_over_user_ids_is_probable(data):
    ids = [b.pk for b in data["books"]]  # a Python list the user built
    report, _ = run(scenarios.get_in_loop, ids)
    (f,) = report.findings
    assert (f.kind, f.relation, f.fix, f.confirmed, f.source_callsite) == ("n_plus_one", None, "in_bulk()", False, None)
    fixed, n_after = run(scenarios.get_in_loop, ids, fix=f.fix)
    assert fixed.findings == [] and n_after == 1


def test_values_of_a_text_column_confirm_the_loop(data):
    from shop.models import Book, Review

    def loop():
        return [Review.objects.filter(book__isbn=isbn).count() for isbn in Book.objects.values_list("isbn", flat=True)]

    (f,) = run(loop)[0].findings
    assert f.confirmed and f.source_callsite == f.callsite
    assert "isbn" in f.source_sql


def test_strings_from_a_list_the_user_built_are_probable(data):
    from shop.models import Review

    isbns = [f"isbn{i}" for i in range(10)]
    (f,) = run(lambda: [Review.objects.filter(book__isbn=i).count() for i in isbns])[0].findings
    assert (f.confirmed, f.source_callsite) == (False, None)


def test_get_in_a_loop_over_ids_from_a_query_is_confirmed(data):
    def loop():
        from shop.models import Book

        ids = list(Book.objects.values_list("pk", flat=True))
        return [Book.objects.get(pk=pk).title for pk in ids]

    report, _ = run(loop)
    (f,) = report.findings
    assert f.confirmed and f.fix == "in_bulk()"
    assert f.source_callsite.startswith("test_cases.py:")


def test_async_view_loop(data):
    report, n_before = run(async_to_sync(scenarios.async_reviews))
    assert len(report.findings) == 1, [f.describe() for f in report.findings]
    (f,) = report.findings
    assert (f.relation, f.fix, f.confirmed) == ("shop.Book.reviews", 'prefetch_related("reviews")', True)
    assert f.callsite.startswith("shop/scenarios.py:")
    fixed, n_after = run(async_to_sync(scenarios.async_reviews), fix=f.fix)
    assert fixed.findings == [] and n_after <= 2


# ---------------------------------------------------------------------------- no findings

def test_select_related_is_clean(data):
    from shop.models import Book

    def loop():
        return [(b.author.name, b.editor.name) for b in Book.objects.select_related("author", "editor")]

    report, n = run(loop)
    assert report.findings == [] and n == 1


def test_prefetch_related_prefetch_objects_and_nested_are_clean(data):
    from django.db.models import Prefetch
    from shop.models import Author, Book

    def loop():
        out = []
        qs = Author.objects.prefetch_related(
            Prefetch("books", queryset=Book.objects.select_related("editor").order_by("pk")),
            "books__labels",
            "books__reviews",
        )
        for a in qs:
            for b in a.books.all():
                out.append((b.editor.name, [lab.name for lab in b.labels.all()], [r.rating for r in b.reviews.all()]))
        return out

    report, n = run(loop)
    assert report.findings == [] and n == 4


def test_single_iteration_is_clean(data):
    from shop.models import Book

    report, _ = run(lambda: [b.author.name for b in Book.objects.order_by("pk")[:1]])
    assert report.findings == []


def test_bulk_create_and_bulk_update_are_clean(data):
    from shop.models import Book, Label

    def work():
        # batch_size=2: 10 INSERTs and 5 UPDATEs of one shape, each from one call.
        Label.objects.bulk_create([Label(name=f"n{i}") for i in range(20)], batch_size=2)
        books = list(Book.objects.all())
        for b in books:
            b.price = 9
        Book.objects.bulk_update(books, ["price"], batch_size=2)

    report, n = run(work)
    assert report.findings == [] and n == 10 + 1 + 5


# ---------------------------------------------------------------------------- writes per row


def test_save_per_row_is_fixed_by_bulk_update(data):
    from shop.models import Book

    def loop(fix=None):
        books = list(Book.objects.order_by("pk"))
        for b in books:
            b.price = 7
        if fix:
            eval(f"Book.objects.{fix}".replace("[...], ", "books, "), {"Book": Book, "books": books})
        else:
            for b in books:
                b.save(update_fields=["price"])

    report, n_before = run(loop)
    (f,) = report.findings
    assert (f.kind, f.operation, f.relation, f.fix) == ("n_plus_one", "save", None, 'bulk_update([...], ["price"])')
    assert f.count == 10 and f.confirmed and f.sql.startswith("UPDATE")
    assert f.source_callsite.endswith(f"test_cases.py:{loop.__code__.co_firstlineno + 1}")  # list(Book.objects...)
    fixed, n_after = run(loop, fix=f.fix)
    assert (fixed.findings, n_before, n_after) == ([], 11, 2)
    assert set(Book.objects.values_list("price", flat=True)) == {7}


def test_full_save_names_every_field_it_writes(data):
    from shop.models import Book

    def loop():
        for b in Book.objects.order_by("pk"):
            b.title += "!"
            b.save()

    (f,) = run(loop)[0].findings
    assert f.fix == 'bulk_update([...], ["title", "isbn", "author", "editor", "price", "published"])'


def test_create_per_row_is_fixed_by_bulk_create(data):
    from shop.models import Label

    def loop(fix=None):
        names = [f"new{i}" for i in range(6)]
        if fix:
            Label.objects.bulk_create([Label(name=n) for n in names])
        else:
            for n in names:
                Label.objects.create(name=n)

    report, _ = run(loop)
    (f,) = report.findings
    assert (f.operation, f.fix, f.confirmed, f.count) == ("save", "bulk_create([...])", False, 6)
    fixed, n = run(loop, fix=f.fix)
    assert fixed.findings == [] and n == 1


def test_delete_per_row_with_its_cascade_is_one_finding(data):
    from shop.models import Author, Book, Review

    def loop(fix=None):
        authors = list(Author.objects.order_by("pk"))
        if fix:
            Author.objects.filter(pk__in=[a.pk for a in authors]).delete()
        else:
            for a in authors:
                a.delete()  # cascades to profile, books, their reviews and labels

    report, n_before = run(loop)
    (f,) = report.findings
    assert (f.operation, f.fix, f.relation, f.confirmed) == ("delete", "filter(pk__in=[...]).delete()", None, True)
    assert f.sql.startswith('DELETE FROM "shop_author"')
    assert f.count > 5  # the cascade's statements are part of it
    assert not Author.objects.exists() and not Book.objects.exists() and not Review.objects.exists()


def test_delete_fix_is_clean(data):
    from shop.models import Author

    report, _ = run(lambda: Author.objects.filter(pk__in=[a.pk for a in data["authors"]]).delete())
    assert report.findings == []


def test_queryset_update_per_row_is_fixed_by_one_update(data):
    from shop.models import Author, Book

    def loop(fix=None):
        authors = list(Author.objects.order_by("pk"))
        if fix:
            eval(f"Book.objects.{fix}".replace("[...]", "authors").replace("(...)", "(price=3)"),
                 {"Book": Book, "authors": authors})
        else:
            for a in authors:
                Book.objects.filter(author=a).update(price=3)

    report, _ = run(loop)
    (f,) = report.findings
    assert (f.operation, f.fix, f.confirmed) == ("queryset_update", "filter(author__in=[...]).update(...)", True)
    fixed, n = run(loop, fix=f.fix)
    assert fixed.findings == [] and n == 2
    assert set(Book.objects.values_list("price", flat=True)) == {3}


def test_raw_insert_per_row_is_reported_without_a_fix(data):
    from django.db import connection

    def loop():
        with connection.cursor() as cur:
            for i in range(6):
                cur.execute("INSERT INTO shop_label (name) VALUES (%s)", [f"raw{i}"])

    (f,) = run(loop)[0].findings
    assert (f.kind, f.operation, f.fix, f.count) == ("n_plus_one", "sql", None, 6)
    assert "N+1 writes, sql() per row" in f.describe()


def test_cascade_delete_is_clean(data):
    from shop.models import Author

    report, n = run(lambda: Author.objects.filter(pk__in=[a.pk for a in data["authors"]]).delete())
    assert report.findings == [] and n > 3


def test_prefetch_related_objects_is_clean(data):
    from django.db.models import prefetch_related_objects
    from shop.models import Book

    def loop():
        books = list(Book.objects.all())
        prefetch_related_objects(books, "reviews", "labels", "author__profile")
        return [(len(b.reviews.all()), len(b.labels.all()), b.author.profile.bio) for b in books]

    report, _ = run(loop)
    assert report.findings == []


def test_loop_over_prefetched_rows_extends_the_prefetch_path(data):
    from shop.models import Author

    def loop():
        names = []
        for author in Author.objects.prefetch_related("books"):
            for book in author.books.all():  # prefetched: no query
                names.extend(label.name for label in book.labels.all())  # one query per book
        return names

    (f,) = run(loop)[0].findings
    assert (f.relation, f.fix, f.confirmed) == ("shop.Book.labels", 'prefetch_related("books__labels")', True)

    def fixed():
        return [label.name for a in Author.objects.prefetch_related("books__labels")
                for b in a.books.all() for label in b.labels.all()]

    report, n = run(fixed)
    assert report.findings == [] and n == 3


def test_chained_forward_keys_are_one_select_related(data):
    from shop.models import Book

    def loop():
        return [book.author.publisher.name for book in Book.objects.order_by("pk")]

    report, _ = run(loop)
    outer, f = report.findings
    assert (outer.relation, outer.fix) == ("shop.Book.author", 'select_related("author")')
    assert (f.relation, f.fix, f.fix_queries) == ("shop.Author.publisher", 'select_related("author__publisher")', 1)
    assert [n["path"] for n in outer.nested] == ["author__publisher"]

    fixed, n = run(lambda: [b.author.publisher.name for b in scenarios.apply(Book.objects.order_by("pk"), f.fix)])
    assert fixed.findings == [] and n == 1


def test_reverse_many_to_many(data):
    from shop.models import Label

    report, _ = run(lambda: [b.title for label in Label.objects.order_by("pk") for b in label.books.all()])
    (f,) = report.findings
    assert (f.relation, f.fix, f.confirmed) == ("shop.Label.books", 'prefetch_related("books")', True)
    fixed, n = run(lambda: [b.title for label in Label.objects.prefetch_related("books") for b in label.books.all()])
    assert fixed.findings == [] and n == 2


def test_many_to_many_add_per_row_is_one_finding_with_its_through_model(data):
    from shop.models import Book, Label

    label = Label.objects.create(name="new")

    def loop(fix=None):
        books = list(Book.objects.order_by("pk"))
        if fix:
            through = Book.labels.through
            through.objects.bulk_create([through(book_id=b.pk, label_id=label.pk) for b in books])
        else:
            for b in books:
                b.labels.add(label)  # an INSERT per book (plus a SELECT where signals need one)

    report, n_before = run(loop)
    (f,) = report.findings
    assert (f.operation, f.relation, f.fix) == (
        "related_add", "shop.Book.labels", "Book.labels.through.objects.bulk_create([...])"
    )
    assert f.count >= 10 and f.sql.startswith("INSERT")
    Book.labels.through.objects.filter(label=label).delete()
    fixed, n_after = run(loop, fix=f.fix)
    assert fixed.findings == [] and n_after == 2 and n_before >= 11
    assert Book.labels.through.objects.filter(label=label).count() == 10
