"""The views of the HTTP endpoint scenarios: a DRF list page and a detail page of 12 queries
(the third, the admin changelist, is Django's own; see shop/admin.py)."""
from rest_framework import generics, pagination, serializers

from django.http import Http404, JsonResponse

from djbench.shop.models import Author, Book, Label, Review


class AuthorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ("id", "name", "email", "birth_date", "is_active", "rating", "uid")


class LabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ("id", "name")


class ReviewSerializer(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ("id", "rating", "score", "created_at", "body")


class BookSerializer(serializers.ModelSerializer):
    author = AuthorSerializer()
    labels = LabelSerializer(many=True)
    reviews = ReviewSerializer(many=True)

    class Meta:
        model = Book
        fields = ("id", "title", "price", "published", "created_at", "updated_at", "uid", "metadata", "tags",
                  "in_stock", "rating", "author", "labels", "reviews")


class PageOf50(pagination.PageNumberPagination):
    page_size = 50


class BookList(generics.ListAPIView):
    """GET /api/books/?page=N: 50 books, author (select_related), labels and reviews (prefetch)."""
    serializer_class = BookSerializer
    pagination_class = PageOf50
    queryset = Book.objects.select_related("author").prefetch_related("labels", "reviews").order_by("id")


def _book_row(b):
    return {"id": b.id, "title": b.title, "price": str(b.price), "published": b.published.isoformat(),
            "in_stock": b.in_stock}


def book_detail(request, pk):
    """GET /books/<pk>/: 12 small ORM queries (get, first, count, exists, short related lists)."""
    try:
        book = Book.objects.get(pk=pk)                                            # 1
    except Book.DoesNotExist:
        raise Http404
    author = Author.objects.get(pk=book.author_id)                                # 2
    labels = [label.name for label in book.labels.order_by("name")]               # 3
    recent = list(book.reviews.order_by("-created_at", "id")[:5])                 # 4
    first = book.reviews.order_by("created_at", "id").first()                     # 5
    data = {
        "book": {**_book_row(book), "metadata": book.metadata, "tags": book.tags, "uid": str(book.uid),
                 "created_at": book.created_at.isoformat()},
        "author": {"id": author.id, "name": author.name, "email": author.email, "rating": author.rating},
        "labels": labels,
        "recent_reviews": [{"id": r.id, "rating": r.rating, "score": str(r.score), "body": r.body,
                            "created_at": r.created_at.isoformat()} for r in recent],
        "first_review": first.created_at.isoformat() if first else None,
        "review_count": book.reviews.count(),                                     # 6
        "has_five_star": book.reviews.filter(rating=5).exists(),                  # 7
        "author_books": author.books.count(),                                     # 8
        "author_in_stock": author.books.filter(in_stock=True).exists(),           # 9
        "more_by_author": [_book_row(b) for b in
                           author.books.exclude(pk=book.pk).order_by("-published", "id")[:5]],  # 10
        "previous": Book.objects.filter(id__lt=book.id).order_by("-id").values_list("id", flat=True).first(),  # 11
        "next": Book.objects.filter(id__gt=book.id).order_by("id").values_list("id", flat=True).first(),       # 12
    }
    return JsonResponse(data)
