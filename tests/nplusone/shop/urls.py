from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("books/", views.books),
    path("clean/", views.clean),
    path("async/reviews/", views.async_reviews),
    path("async/authors/", views.async_authors),
    path("__nplusone__/", include("django_rustpg.nplusone.urls")),
    path("admin/", admin.site.urls),
]
