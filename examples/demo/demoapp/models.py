from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)
    born = models.DateField()


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, models.CASCADE, related_name="books")
    price = models.DecimalField(max_digits=8, decimal_places=2)
    published = models.DateTimeField()
    tags = models.JSONField(default=list)
