"""The one HTTP endpoint of http_list_100: 100 books with author and labels as JSON."""
from django.db import connection
from django.http import JsonResponse
from django.urls import path

from djbench.shop.models import Book


def _book(b):
    a = b.author
    return {
        "id": b.id, "title": b.title, "price": str(b.price), "published": b.published.isoformat(),
        "created_at": b.created_at.isoformat(), "uid": str(b.uid), "metadata": b.metadata,
        "tags": b.tags, "in_stock": b.in_stock, "rating": b.rating,
        "author": {"id": a.id, "name": a.name, "email": a.email, "birth_date": a.birth_date.isoformat(),
                   "uid": str(a.uid), "rating": a.rating},
        "labels": [label.name for label in b.labels.all()],
    }


def books(request):
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        qs = (Book.objects.select_related("author").prefetch_related("labels")
              .filter(id__gt=5_000).order_by("id")[:100])
        data = [_book(b) for b in qs]
    response = JsonResponse({"results": data})
    response["X-Queries"] = str(len(queries))
    return response


urlpatterns = [path("books/", books)]
