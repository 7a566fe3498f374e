from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from .models import Book
from .scenarios import apply


def books(request):
    qs = apply(Book.objects.order_by("pk"), request.GET.get("fix"))
    return render(request, "shop/books.html", {"books": qs})


def clean(request):
    return HttpResponse(str(Book.objects.count()))


async def async_reviews(request):
    qs = apply(Book.objects.order_by("pk"), request.GET.get("fix"))
    ratings = []
    async for book in qs:
        async for review in book.reviews.all():
            ratings.append(review.rating)
    return JsonResponse({"ratings": ratings})


async def async_authors(request):
    qs = apply(Book.objects.order_by("pk"), request.GET.get("fix"))
    names = []
    async for book in qs:
        names.append(await _author_name(book))
    return JsonResponse({"names": names})


async def _author_name(book):
    from asgiref.sync import sync_to_async

    return await sync_to_async(lambda: book.author.name)()
