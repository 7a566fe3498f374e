"""Models covering the field families a backend decodes differently: FK, M2M, Decimal,
Date, DateTime (tz), UUID, JSON, Array, Text, Boolean, Float."""
from django.contrib.postgres.fields import ArrayField
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField()
    birth_date = models.DateField()
    is_active = models.BooleanField()
    rating = models.FloatField()
    uid = models.UUIDField()


class Label(models.Model):
    name = models.CharField(max_length=40, unique=True)


class Book(models.Model):
    author = models.ForeignKey(Author, models.CASCADE, related_name="books")
    labels = models.ManyToManyField(Label, related_name="books")
    title = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    published = models.DateField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(null=True)
    uid = models.UUIDField()
    metadata = models.JSONField()
    tags = ArrayField(models.CharField(max_length=16))
    summary = models.TextField()
    in_stock = models.BooleanField()
    rating = models.FloatField()


class Review(models.Model):
    book = models.ForeignKey(Book, models.CASCADE, related_name="reviews")
    rating = models.SmallIntegerField()
    score = models.DecimalField(max_digits=5, decimal_places=2)
    created_at = models.DateTimeField()
    body = models.TextField()


class Order(models.Model):
    """Write target of create_1k / bulk_create_10k (truncated before each repetition)."""
    book = models.ForeignKey(Book, models.CASCADE, related_name="+")
    quantity = models.IntegerField()
    total = models.DecimalField(max_digits=10, decimal_places=2)
    placed_at = models.DateTimeField()
    ref = models.UUIDField()
    note = models.JSONField()
    gift = models.BooleanField()
