"""One function per N+1 kind. ``fix`` is the text of a finding's ``fix``, applied to the
loop's root queryset exactly as reported (``qs.<fix>``), so the tests prove the fix works."""
from django.db.models import Count, Exists, OuterRef, Prefetch  # noqa: F401  (used by eval'd fixes)
from django.template.loader import render_to_string

from .models import Author, Book, Tag


def apply(qs, fix):
    """``qs.<fix>``, with the names a fix may use in scope."""
    if not fix:
        return qs
    from django_rustpg.nplusone.fix_check import namespace

    return eval(f"qs.{fix}", {**namespace(), "qs": qs})  # the names the validator evaluates fixes with


def forward_fk(fix=None):
    qs = apply(Book.objects.order_by("pk"), fix)
    return [book.author.name for book in qs]


def reverse_fk(fix=None):
    qs = apply(Book.objects.order_by("pk"), fix)
    return [review.rating for book in qs for review in book.reviews.all()]


def m2m(fix=None):
    qs = apply(Book.objects.order_by("pk"), fix)
    return [label.name for book in qs for label in book.labels.all()]


def reverse_one_to_one(fix=None):
    qs = apply(Author.objects.order_by("pk"), fix)
    return [author.profile.bio for author in qs]


def deferred_field(fix=None):
    qs = apply(Book.objects.only("title").order_by("pk"), fix)
    return [book.isbn for book in qs]


def generic_fk(fix=None):
    qs = apply(Tag.objects.order_by("pk"), fix)
    return [tag.content_object.title for tag in qs]


def get_in_loop(ids, fix=None):
    if fix == "in_bulk()":
        books = Book.objects.in_bulk(ids)
        return [books[pk].title for pk in ids]
    return [Book.objects.get(pk=pk).title for pk in ids]


def count_per_row(fix=None):
    qs = apply(Book.objects.order_by("pk"), fix)
    if fix:
        return [book.reviews__count for book in qs]
    return [book.reviews.count() for book in qs]


def nested_loop(fix=None):
    qs = apply(Author.objects.order_by("pk"), fix)
    names = []
    for author in qs:
        for book in author.books.all():
            for label in book.labels.all():
                names.append(label.name)
    return names


def nested_loop_fk(fix=None):
    """Two levels, the inner one a foreign key: its rows join the prefetch query."""
    qs = apply(Author.objects.order_by("pk"), fix)
    return [book.editor.name for author in qs for book in author.books.all()]


def template_loop(fix=None):
    qs = apply(Book.objects.order_by("pk"), fix)
    return render_to_string("shop/books.html", {"books": qs})


async def async_reviews(fix=None):
    qs = apply(Book.objects.order_by("pk"), fix)
    ratings = []
    async for book in qs:
        async for review in book.reviews.all():
            ratings.append(review.rating)
    return ratings


def reprice_each(books, price):
    """Application code writing per row (the N+1 write a test should catch)."""
    for book in books:
        book.price = price
        book.save(update_fields=["price"])


CASES = {
    # name: (function, relation, fix)
    "forward_fk": (forward_fk, "shop.Book.author", 'select_related("author")'),
    "reverse_fk": (reverse_fk, "shop.Book.reviews", 'prefetch_related("reviews")'),
    "m2m": (m2m, "shop.Book.labels", 'prefetch_related("labels")'),
    "reverse_one_to_one": (reverse_one_to_one, "shop.Author.profile", 'select_related("profile")'),
    "deferred_field": (deferred_field, "shop.Book.isbn", 'only("title", "isbn")'),
    "generic_fk": (generic_fk, "shop.Tag.content_object", 'prefetch_related("content_object")'),
    "count_per_row": (count_per_row, "shop.Book.reviews", 'annotate(Count("reviews"))'),
    # Nested loops: the finding of the deepest level (its relation) names the combined fix.
    "nested_loop": (nested_loop, "shop.Book.labels", 'prefetch_related("books__labels")'),
    "nested_loop_fk": (
        nested_loop_fk,
        "shop.Book.editor",
        'prefetch_related(Prefetch("books", queryset=Book.objects.select_related("editor")))',
    ),
    "template_loop": (template_loop, "shop.Book.author", 'select_related("author")'),
}
