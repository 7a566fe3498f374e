"""Framework noise: statements Django itself repeats are framework findings, listed
apart, never failing, never with the call site ``<unknown>``."""
import os

import django
import pytest
from django.contrib.contenttypes.models import ContentType

from django_rustpg import nplusone
from shop.models import Author, Book, Label, Publisher, Review, Tag

MODELS = [Author, Book, Label, Publisher, Review, Tag]


def test_contenttypes_warm_up_is_a_framework_finding(data):
    def warm_up():
        ContentType.objects.clear_cache()
        return [ContentType.objects.get_for_model(m).model for m in MODELS]

    with nplusone.scope(mode="raise") as report:  # framework findings never raise
        warm_up()
    assert report.findings == []
    (f,) = report.framework_findings
    assert f.framework and f.count == len(MODELS)
    assert f.callsite.startswith("test_framework.py:")  # the application line that asked
    assert f.django_frame.startswith("django/contrib/contenttypes/models.py:")
    assert '"django_content_type"' in f.sql


def _run_as_django_code(source, names):
    """Code compiled with a file name inside Django: no application frame at all, as in a
    request the admin serves from start to end."""
    path = os.path.join(os.path.dirname(django.__file__), "contrib", "admin", "views", "main.py")
    code = compile(source, path, "exec")
    exec(code, names)


def test_statements_without_an_application_frame_name_the_django_frame(data):
    names = {"Book": Book, "Author": Author, "nplusone": nplusone}
    # The scope opens inside "Django's" code too (as the middleware's does around a
    # request the admin serves): the stack walk stops there, no application frame.
    _run_as_django_code(
        "def get_results():\n"
        "    return [Book.objects.filter(author=a).count() for a in Author.objects.all()]\n"
        "with nplusone.scope(mode='raise') as report:\n"
        "    get_results()\n",
        names,
    )
    report = names["report"]
    assert report.findings == []  # never failing
    (f,) = report.framework_findings
    assert f.callsite != "<unknown>"
    assert f.callsite == "django/contrib/admin/views/main.py:2"
    assert "N+1 query" in f.describe() and "<unknown>" not in f.describe()


def test_application_loops_are_never_framework_findings(data):
    with nplusone.scope(mode="collect") as report:
        [b.author.name for b in Book.objects.all()]
        [t.content_object for t in Tag.objects.all()]  # contrib code, but a relation the app reads
    assert report.framework_findings == []
    assert {f.relation for f in report.findings} == {"shop.Book.author", "shop.Tag.content_object"}
    assert all(f.callsite.startswith("test_framework.py:") for f in report.findings)


def test_framework_findings_are_in_the_json(data):
    with nplusone.scope(mode="collect") as report:
        ContentType.objects.clear_cache()
        [ContentType.objects.get_for_model(m) for m in MODELS]
    d = report.to_dict()
    assert d["findings"] == [] and len(d["framework_findings"]) == 1
    assert d["framework_findings"][0]["framework"] is True


def test_admin_changelist_counts_are_framework_findings(data):
    """The admin changelist counts the filtered and the full queryset: the same COUNT(*)
    twice, from Django's code only. A framework finding with Django's frame as call
    site; the request's application findings stay empty."""
    from django.contrib.auth.models import User
    from django.test import Client

    from django_rustpg.nplusone.report import history

    user = User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.force_login(user)
    history.clear()
    with nplusone.scope(mode="raise") as report:  # never failing: no NPlusOneError
        response = client.get("/admin/shop/book/")
    assert response.status_code == 200 and b"book9" in response.content
    assert report.findings == []
    counts = [f for f in report.framework_findings if 'COUNT(*)' in f.sql and '"shop_book"' in f.sql]
    assert len(counts) == 1, [f.describe() for f in report.framework_findings]
    (f,) = counts
    assert f.kind == "duplicate" and f.count == 2
    # Inside a test the client call is the application line that asked; Django's frame
    # that issued the statement is named too (behind a real server it is the call site).
    assert f.callsite.startswith("test_framework.py:") and "<unknown>" not in f.describe()
    assert f.django_frame.startswith("django/contrib/admin/")
    (item,) = history.items()
    assert item["findings"] == [] and item["framework_findings"]
    history.clear()


def test_session_and_auth_lookups_are_framework_findings(data):
    """Django resolving the user of several sessions (what each request's
    AuthenticationMiddleware does): session and user lookups issued by
    django.contrib code are framework findings."""
    from django.contrib.auth import get_user
    from django.contrib.auth.models import User
    from django.test import Client

    clients = []
    for i in range(3):
        c = Client()
        c.force_login(User.objects.create_user(f"u{i}", password="pw"))
        clients.append(c)

    class Request:
        def __init__(self, session):
            self.session = session

    with nplusone.scope(mode="raise") as report:
        users = [get_user(Request(c.session)).username for c in clients]
    assert users == ["u0", "u1", "u2"]
    assert report.findings == []
    tables = sorted(f.sql.split(" FROM ")[1].split()[0] for f in report.framework_findings)
    assert tables == ['"auth_user"', '"django_session"'], [f.describe() for f in report.framework_findings]
    assert all(f.django_frame.startswith("django/contrib/") for f in report.framework_findings)
