"""Tests run by ``manage.py nplusone --test shop.np_command_cases`` in test_command.py
(not collected by pytest: the file name does not start with test_)."""
from django.test import TestCase

from .models import Author, Book


class Loops(TestCase):
    @classmethod
    def setUpTestData(cls):
        for i in range(3):
            a = Author.objects.create(name=f"a{i}")
            Book.objects.create(title=f"b{i}", author=a)

    def test_loop(self):
        self.assertEqual(len([b.author.name for b in Book.objects.all()]), 3)

    def test_clean(self):
        self.assertEqual(len([b.author.name for b in Book.objects.select_related("author")]), 3)
