"""`make demo`, last step: an N+1 loop, the finding the driver reports, and its fix.

``run()`` is called by run_demo.py (Django is set up, the demo data exists).
"""

import ast

from django_rustpg import nplusone


def book_lines(books):
    # The classic N+1: one query for the books, then one per book for its author.
    return [f"{book.title} by {book.author.name}" for book in books]


def apply_fix(queryset, fix):
    """Applies a finding's fix (e.g. 'select_related("author")') to a queryset."""
    call = ast.parse(fix, mode="eval").body
    args = [ast.literal_eval(a) for a in call.args]
    return getattr(queryset, call.func.id)(*args)


def run(limit=20):
    from demoapp.models import Book

    books = Book.objects.order_by("id")
    with nplusone.scope("demo: book list", mode="collect") as report:
        book_lines(books[:limit])
    print(f"{report.statements} queries to list {limit} books")
    for f in report.findings:
        print(f"  {f.kind} ({'confirmed' if f.confirmed else 'probable'}): "
              f"{f.count} queries, {f.total_ms:.2f} ms, relation {f.relation}")
        print(f"  at {f.callsite} (rows loaded at {f.source_callsite})")
        print(f"  sql: {f.sql[:110]}...")
        print(f"  fix: .{f.fix}")
    if not report.findings:
        print("  (no finding: is THRESHOLD above the number of books?)")
        return report
    fix = report.findings[0].fix
    with nplusone.scope("demo: fixed", mode="collect") as fixed:
        lines = book_lines(apply_fix(books, fix)[:limit])
    print(f"with .{fix}: {fixed.statements} query, {len(fixed.findings)} findings; first line: {lines[0]!r}")
    reprice(limit)
    return report


def reprice(limit):
    """Writes per row are findings too: save() in a loop, fixed by one bulk_update()."""
    from django.db import transaction
    from demoapp.models import Book

    with transaction.atomic():
        books = list(Book.objects.order_by("id")[:limit])
        with nplusone.scope("demo: reprice", mode="collect") as report:
            for book in books:
                book.price = book.price  # unchanged: the demo data stays as it was
                book.save(update_fields=["price"])
        for f in report.findings:
            print(f"{f.count} UPDATEs from save() per row -> {f.kind} ({f.operation}), fix: Book.objects.{f.fix}")
        with nplusone.scope("demo: reprice fixed", mode="collect") as fixed:
            Book.objects.bulk_update(books, ["price"])
        print(f"with Book.objects.bulk_update(books, [\"price\"]): {fixed.statements} query, {len(fixed.findings)} findings")


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run_demo  # noqa: F401  (sets up Django)

    run()
