"""NPlusOneMiddleware (WSGI and ASGI) and the report page."""
import json

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client, override_settings

from django_rustpg import nplusone
from django_rustpg.nplusone.middleware import NPlusOneMiddleware
from django_rustpg.nplusone.report import history


@pytest.fixture(autouse=True)
def fresh_history():
    history.clear()
    yield
    history.clear()


def test_wsgi_request_is_a_scope(data):
    response = Client().get("/books/")
    assert response.status_code == 200
    (item,) = history.items()
    assert (item["method"], item["path"], item["status"]) == ("GET", "/books/", 200)
    assert item["statements"] == 11
    (f,) = item["findings"]
    assert f["relation"] == "shop.Book.author" and f["fix"] == 'select_related("author")'
    assert f["template"] == "shop/books.html:3"
    assert f["callsite"].startswith("shop/views.py:")


def test_fixed_request_is_clean(data):
    Client().get("/books/", {"fix": 'select_related("author")'})
    (item,) = history.items()
    assert item["findings"] == [] and item["statements"] == 1


def test_asgi_requests_are_scopes_and_never_mix(data):
    import asyncio

    async def both():
        client = AsyncClient()
        return await asyncio.gather(client.get("/async/reviews/"), client.get("/async/authors/"),
                                    client.get("/clean/"))

    responses = async_to_sync(both)()
    assert [r.status_code for r in responses] == [200, 200, 200]
    by_path = {i["path"]: i for i in history.items()}
    assert [f["relation"] for f in by_path["/async/reviews/"]["findings"]] == ["shop.Book.reviews"]
    assert [f["relation"] for f in by_path["/async/authors/"]["findings"]] == ["shop.Book.author"]
    assert by_path["/clean/"]["findings"] == []
    assert by_path["/async/reviews/"]["findings"][0]["callsite"].startswith("shop/views.py:")


def test_raise_mode_fails_the_request(data):
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"MODE": "raise"}):
        with pytest.raises(nplusone.NPlusOneError):
            Client(raise_request_exception=True).get("/books/")
    assert len(history.items()[0]["findings"]) == 1


def test_off_mode_disables_the_middleware():
    from django.core.exceptions import MiddlewareNotUsed

    with override_settings(DJANGO_RUSTPG_NPLUSONE={"MODE": "off"}):
        with pytest.raises(MiddlewareNotUsed):
            NPlusOneMiddleware(lambda r: None)


def test_bad_settings_fail_at_startup():
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"IGNORE": ["shop.Nope.field"]}):
        with pytest.raises(ImproperlyConfigured):
            NPlusOneMiddleware(lambda r: None)


def test_test_scope_sees_findings_of_requests_it_makes(data):
    with nplusone.scope(mode="collect") as report:
        Client().get("/books/")
    assert [f.relation for f in report.findings] == ["shop.Book.author"]


def test_report_page_lists_requests_and_findings(data):
    client = Client()
    client.get("/books/")
    client.get("/clean/")
    page = client.get("/__nplusone__/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/books/" in html and "/clean/" in html
    assert "select_related(&quot;author&quot;)" in html
    assert "shop.Book.author" in html and "confirmed" in html
    # The page itself is not recorded.
    assert [i["path"] for i in history.items()] == ["/clean/", "/books/"]
    data_ = json.loads(client.get("/__nplusone__/", {"format": "json"}).content)
    assert [len(i["findings"]) for i in data_["requests"]] == [0, 1]


def test_report_page_is_404_without_debug(data):
    with override_settings(DEBUG=False):
        assert Client().get("/__nplusone__/").status_code == 404
