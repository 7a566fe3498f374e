"""The fixture app: one model per relation kind the N+1 detector maps."""
import uuid

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import ArrayField
from django.db import models


class Publisher(models.Model):
    name = models.CharField(max_length=100)


class Author(models.Model):
    name = models.CharField(max_length=100)
    publisher = models.ForeignKey(Publisher, null=True, on_delete=models.SET_NULL, related_name="authors")


class Profile(models.Model):
    author = models.OneToOneField(Author, on_delete=models.CASCADE, related_name="profile")
    bio = models.TextField(default="")


class Label(models.Model):
    name = models.CharField(max_length=50)


class Book(models.Model):
    title = models.CharField(max_length=200)
    isbn = models.CharField(max_length=20, default="")
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    editor = models.ForeignKey(Author, null=True, on_delete=models.SET_NULL, related_name="edited_books")
    labels = models.ManyToManyField(Label, related_name="books", blank=True)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    published = models.DateField(null=True)


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    rating = models.IntegerField(default=3)
    text = models.TextField(default="")


class Tag(models.Model):
    name = models.CharField(max_length=50)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")


class Document(models.Model):
    """Shapes for the fingerprint corpus: uuid, JSON, arrays, datetimes."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True)
    data = models.JSONField(default=dict)
    tags = ArrayField(models.CharField(max_length=20), default=list)
    created = models.DateTimeField(auto_now_add=True)
    size = models.IntegerField(default=0)


class Category(models.Model):
    """Self-referential: ``c.parent.parent`` per row."""

    name = models.CharField(max_length=50)
    parent = models.ForeignKey("self", null=True, on_delete=models.CASCADE, related_name="children")


class Media(models.Model):
    title = models.CharField(max_length=100)
    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name="media")


class Video(Media):
    """Multi-table inheritance: rows of shop_video joined to their shop_media parent."""

    minutes = models.IntegerField(default=0)
