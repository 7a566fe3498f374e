"""The report page: what it explains, framework findings apart, and the DEBUG-only
EXPLAIN of a recorded finding (never of SQL the browser sends)."""
import pytest
from django.test import Client, override_settings

from django_rustpg.nplusone.report import explain, history


@pytest.fixture(autouse=True)
def fresh_history():
    history.clear()
    yield
    history.clear()


def test_page_explains_source_confirmed_probable_and_silencing(data):
    Client().get("/books/")
    html = Client().get("/__nplusone__/").content.decode()
    for words in ("How to read this page", "confirmed", "probable", "source", "no safe fix found",
                  "# nplusone: ignore", 'DJANGO_RUSTPG_NPLUSONE["IGNORE"]', "nplusone.ignore()",
                  "EXPLAIN (ANALYZE false)"):
        assert words in html, words
    (item,) = history.items()
    assert f'data-explain="{item["id"]}:findings:0"' in html


def test_explain_runs_the_recorded_statement_with_its_parameters(data):
    Client().get("/books/")
    (item,) = history.items()
    f = item["findings"][0]
    assert f["explain"]["sql"].startswith("SELECT") and len(f["explain"]["params"]) == 1
    response = Client().post("/__nplusone__/", {"explain": f"{item['id']}:findings:0"})
    plan = response.json()["plan"]
    assert "shop_author" in plan and ("Scan" in plan or "Result" in plan), plan
    # The EXPLAIN itself is not recorded as a request of the page's history.
    assert len(history.items()) == 1


def test_explain_refuses_what_it_did_not_record(data):
    Client().get("/books/")
    (item,) = history.items()
    c = Client()
    assert c.post("/__nplusone__/", {"explain": f"{item['id']}:findings:7"}).status_code == 404
    assert c.post("/__nplusone__/", {"explain": "DROP TABLE shop_book"}).status_code == 400
    assert explain({"explain": {"sql": "DELETE FROM shop_book", "params": []}}) == {"error": "only reads are explained"}
    assert explain({"kind": "n_plus_one"}) == {"error": "no statement was captured for this finding"}
    from shop.models import Book

    assert Book.objects.count() == 10


def test_explain_is_debug_only(data):
    Client().get("/books/")
    (item,) = history.items()
    with override_settings(DEBUG=False):
        assert Client().post("/__nplusone__/", {"explain": f"{item['id']}:findings:0"}).status_code == 404


def test_json_view_has_no_raw_parameters(data):
    Client().get("/books/")
    data_ = Client().get("/__nplusone__/", {"format": "json"}).json()
    (item,) = data_["requests"]
    assert "_raw_params" not in item and item["framework_findings"] == []
