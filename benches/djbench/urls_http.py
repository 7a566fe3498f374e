from django.contrib import admin
from django.urls import path

from djbench.endpoints import BookList, book_detail

urlpatterns = [
    path("api/books/", BookList.as_view()),
    path("books/<int:pk>/", book_detail),
    path("admin/", admin.site.urls),
]
