"""Django setup for the N+1 detector tests: settings ``np_settings``, fixture app ``shop``,
test database ``django_rustpg_nplusone`` (created once per session, dropped after)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# `pytester` (for test_pytest_plugin.py) is enabled in tests/conftest.py: pytest only
# accepts `pytest_plugins` in the top-level conftest. The plugin under test is loaded by
# the inner pytest runs (`-p django_rustpg.nplusone.pytest_plugin`).


def _setup_django():
    import django
    from django.conf import settings

    if settings.configured:
        if "shop" not in settings.INSTALLED_APPS:
            return False
        return True
    os.environ["DJANGO_SETTINGS_MODULE"] = "np_settings"
    django.setup()
    return True


DJANGO_OK = _setup_django()


@pytest.fixture(scope="session", autouse=True)
def django_test_db():
    if not DJANGO_OK:
        pytest.skip("Django is configured with other settings in this process")
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases, teardown_test_environment

    setup_test_environment(debug=True)
    old = setup_databases(verbosity=0, interactive=False)
    yield
    from django.db import connections

    connections.close_all()
    teardown_databases(old, verbosity=0)
    teardown_test_environment()


@pytest.fixture
def db():
    """Each test inside a transaction that is rolled back."""
    from django.db import transaction

    atomic = transaction.atomic()
    atomic.__enter__()
    try:
        yield
    finally:
        transaction.set_rollback(True)
        atomic.__exit__(None, None, None)


@pytest.fixture
def data(db):
    """5 publishers/authors (with profiles), 10 books (2 reviews, 2 labels each; price 3*i), 5 tags."""
    from django.contrib.contenttypes.models import ContentType
    from shop.models import Author, Book, Label, Profile, Publisher, Review, Tag

    labels = [Label.objects.create(name=f"label{i}") for i in range(4)]
    authors = []
    for i in range(5):
        p = Publisher.objects.create(name=f"pub{i}")
        a = Author.objects.create(name=f"author{i}", publisher=p)
        Profile.objects.create(author=a, bio=f"bio{i}")
        authors.append(a)
    books = []
    for i in range(10):
        b = Book.objects.create(title=f"book{i}", isbn=f"isbn{i}", author=authors[i // 2], editor=authors[(i + 1) % 5],
                                price=3 * i)
        b.labels.set([labels[i % 4], labels[(i + 1) % 4]])
        Review.objects.bulk_create([Review(book=b, rating=r) for r in (3, 5)])
        books.append(b)
    ct = ContentType.objects.get_for_model(Book)
    ContentType.objects.get_for_id(ct.id)  # warm the content type cache
    tags = [Tag.objects.create(name=f"tag{i}", content_type=ct, object_id=books[i].pk) for i in range(5)]
    return {"authors": authors, "books": books, "labels": labels, "tags": tags}


@pytest.fixture
def fix_data(data):
    """``data`` plus a three-level category tree (1 root, 3 middle, 6 leaves) and 4
    videos (multi-table inheritance: Video(Media))."""
    from shop.models import Category, Video

    authors = data["authors"]
    root = Category.objects.create(name="root")
    mids = [Category.objects.create(name=f"mid{i}", parent=root) for i in range(3)]
    for i in range(6):
        Category.objects.create(name=f"leaf{i}", parent=mids[i % 3])
    pubs = [a.publisher for a in authors]
    for i in range(4):
        Video.objects.create(title=f"video{i}", publisher=pubs[i % 3], minutes=i)
    return data
