"""The admin changelist of http_admin: 20,000 books, a filter and a search box."""
from django.contrib import admin

from djbench.shop.models import Book


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "author", "price", "published", "in_stock", "rating")
    list_select_related = ("author",)
    list_filter = ("in_stock", "author__is_active")
    search_fields = ("title",)
    ordering = ("id",)
