"""Fixture cases for the fix validator: one loop per class of fix. Each function takes
the finding's ``fix`` text and ``attr`` (what the loop reads once fixed) and returns the
loop's output, so a test can apply the printed fix and compare."""
from django.db.models import Avg, Count, Sum

from .models import Author, Book, Category, Review, Video
from .scenarios import apply


def two_hops_first_joined(fix=None, attr=None):
    qs = apply(Review.objects.select_related("book").order_by("pk"), fix)
    return [(r.book.title, r.book.author.name) for r in qs]


def self_referential_chain(fix=None, attr=None):
    qs = apply(Category.objects.filter(parent__parent__isnull=False).order_by("pk"), fix)
    return [c.parent.parent.name for c in qs]


def filtered_count(fix=None, attr=None):
    qs = apply(Author.objects.order_by("pk"), fix)
    if attr:
        return [getattr(a, attr) for a in qs]
    return [a.books.filter(price__gt=10).count() for a in qs]


def aggregate_per_row(fix=None, attr=None):
    qs = apply(Author.objects.order_by("pk"), fix)
    if attr:
        return [getattr(a, attr) for a in qs]
    return [a.books.aggregate(Avg("price"))["price__avg"] for a in qs]


def aggregate_on_grouped_root(fix=None, attr=None):
    """The root query already aggregates over another relation: a join would multiply."""
    qs = apply(Author.objects.annotate(n_edited=Count("edited_books")).order_by("pk"), fix)
    if attr:
        return [(a.n_edited, getattr(a, attr)) for a in qs]
    return [(a.n_edited, a.books.aggregate(Sum("price"))["price__sum"]) for a in qs]


def count_on_grouped_root(fix=None, attr=None):
    qs = apply(Author.objects.annotate(n_edited=Count("edited_books")).order_by("pk"), fix)
    if attr:
        return [(a.n_edited, getattr(a, attr)) for a in qs]
    return [(a.n_edited, a.books.count()) for a in qs]


def prefetch_defeated_by_filter(fix=None, attr=None):
    qs = apply(Author.objects.prefetch_related("books").order_by("pk"), fix)
    if attr:
        return [[b.title for b in getattr(a, attr)] for a in qs]
    return [[b.title for b in a.books.filter(price__gt=10).order_by("-price")] for a in qs]


def excluded_and_sliced(fix=None, attr=None):
    qs = apply(Author.objects.order_by("pk"), fix)
    if attr:
        return [[b.title for b in getattr(a, attr)] for a in qs]
    return [[b.title for b in a.books.exclude(title__endswith="3").order_by("-price")[:1]] for a in qs]


def custom_related_name(fix=None, attr=None):
    qs = apply(Author.objects.order_by("pk"), fix)
    return [sorted(b.title for b in a.edited_books.all()) for a in qs]


def iterator_forward(fix=None, attr=None):
    qs = apply(Book.objects.order_by("pk"), fix)
    return [b.author.name for b in qs.iterator(chunk_size=100)]


def iterator_reverse(fix=None, attr=None):
    qs = apply(Book.objects.order_by("pk"), fix)
    return [sorted(r.rating for r in b.reviews.all()) for b in qs.iterator(chunk_size=100)]


def multi_table_inheritance(fix=None, attr=None):
    qs = apply(Video.objects.order_by("pk"), fix)
    return [(v.title, v.minutes, v.publisher.name) for v in qs]


def values_source_get(fix=None, attr=None):
    rows = list(Book.objects.order_by("pk").values("pk", "author_id"))
    if fix:
        authors = Author.objects.in_bulk([r["author_id"] for r in rows])
        return [authors[r["author_id"]].name for r in rows]
    return [Author.objects.get(pk=r["author_id"]).name for r in rows]


def values_source_count(fix=None, attr=None):
    return [Review.objects.filter(book_id=pk).count() for pk in Book.objects.order_by("pk").values_list("pk", flat=True)]


CASES = {
    # name: (function, relation of the finding carrying the fix, fix)
    "two_hops_first_joined": (two_hops_first_joined, "shop.Book.author", 'select_related("book__author")'),
    "self_referential_chain": (self_referential_chain, "shop.Category.parent", 'select_related("parent__parent")'),
    "filtered_count": (filtered_count, "shop.Author.books",
                       'annotate(books_count=Count("books", filter=Q(books__price__gt=10)))'),
    "aggregate_per_row": (aggregate_per_row, "shop.Author.books", 'annotate(price_avg=Avg("books__price"))'),
    "aggregate_on_grouped_root": (
        aggregate_on_grouped_root, "shop.Author.books",
        'annotate(price_sum=Subquery(Book.objects.filter(author=OuterRef("pk")).order_by().values("author")'
        '.annotate(v=Sum("price")).values("v")))'),
    # annotate(Count("books", distinct=True)) would be wrong here: the join multiplies the
    # root's own Count("edited_books").
    "count_on_grouped_root": (
        count_on_grouped_root, "shop.Author.books",
        'annotate(books_count=Coalesce(Subquery(Book.objects.filter(author=OuterRef("pk")).order_by()'
        '.values("author").annotate(v=Count("pk")).values("v")), 0))'),
    "prefetch_defeated_by_filter": (
        prefetch_defeated_by_filter, "shop.Author.books",
        'prefetch_related(Prefetch("books", queryset=Book.objects.filter(price__gt=10).order_by("-price"), '
        'to_attr="books_list"))'),
    "excluded_and_sliced": (
        excluded_and_sliced, "shop.Author.books",
        'prefetch_related(Prefetch("books", queryset=Book.objects.filter(~Q(title__endswith=\'3\'))'
        '.order_by("-price")[:1], to_attr="books_list"))'),
    "custom_related_name": (custom_related_name, "shop.Author.edited_books", 'prefetch_related("edited_books")'),
    "iterator_forward": (iterator_forward, "shop.Book.author", 'select_related("author")'),
    "iterator_reverse": (iterator_reverse, "shop.Book.reviews", 'prefetch_related("reviews")'),
    "multi_table_inheritance": (multi_table_inheritance, "shop.Video.publisher", 'select_related("publisher")'),
    "values_source_get": (values_source_get, None, "in_bulk()"),
}

# Cases where the validator must refuse, with the start of its reason.
REFUSED = {
    "values_source_count": (values_source_count, "the rows come from values()/values_list()"),
}
