"""Detection semantics: call sites, grouping, duplicates, noise control, modes, scopes."""
import asyncio
import json
import logging

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_rustpg import _native, nplusone
from django_rustpg.nplusone import settings as np_settings
from shop.models import Author, Book


def collect(fn, **kw):
    with nplusone.scope(mode="collect", **kw) as report:
        fn()
    return report


def author_name(book):
    return book.author.name


def test_same_sql_from_two_loops_gives_two_findings(data):
    def two_loops():
        a = [b.author.name for b in Book.objects.all()]
        b = [b.author.name for b in Book.objects.all()]
        return a, b

    all_findings = collect(two_loops).findings
    findings = [f for f in all_findings if f.kind == "n_plus_one"]
    assert len(findings) == 2
    assert findings[0].fingerprint == findings[1].fingerprint
    assert findings[0].callsite != findings[1].callsite
    # Book.objects.all() itself ran twice with the same parameters: a duplicate.
    (dup,) = [f for f in all_findings if f.kind == "duplicate"]
    assert dup.count == 2 and 'FROM "shop_book"' in dup.sql


def test_two_loops_through_one_helper_give_two_findings(data):
    def two_loops():
        a = [author_name(b) for b in Book.objects.all()]
        b = [author_name(b) for b in Book.objects.all()]
        return a, b

    findings = [f for f in collect(two_loops).findings if f.kind == "n_plus_one"]
    assert len(findings) == 2
    # Both name the helper's line (the innermost application frame) ...
    assert findings[0].callsite == findings[1].callsite
    # ... and differ in the application frames around it.
    assert findings[0].stack != findings[1].stack


def test_a_b_a_b_loop_gives_two_findings(data):
    def loop():
        out = []
        for b in Book.objects.all():
            out.append(b.author.name)
            out.append(len(b.reviews.all()))
        return out

    findings = collect(loop).findings
    assert sorted(f.relation for f in findings) == ["shop.Book.author", "shop.Book.reviews"]
    assert all(f.count == 10 for f in findings)


def test_recursion_is_collapsed(data):
    def visit(books):
        if not books:
            return []
        name = books[0].author.name  # the query: one line ...
        return [name] + visit(books[1:])  # ... the recursion: another

    findings = collect(lambda: visit(list(Book.objects.all()))).findings
    assert len(findings) == 1
    assert findings[0].count == 10


def test_duplicates(data):
    pk = data["books"][0].pk

    def same_query_thrice():
        return [Book.objects.get(pk=pk).title for _ in range(3)]

    (f,) = collect(same_query_thrice).findings
    assert (f.kind, f.count, f.distinct_params) == ("duplicate", 3, 1)


def test_duplicate_from_two_call_sites(data):
    pk = data["books"][0].pk
    first = Book.objects.get(pk=pk)  # noqa: F841 (outside the scope)

    def two_places():
        a = Book.objects.get(pk=pk).title
        b = Book.objects.get(pk=pk).title
        return a, b

    (f,) = collect(two_places).findings
    assert f.kind == "duplicate" and f.count == 2 and len(f.stack) == 2


def test_repeated_ids_inside_a_loop_are_not_also_duplicates(data):
    # 10 books, 5 authors: each author loaded twice by the same loop → one N+1 finding.
    findings = collect(lambda: [b.author.name for b in Book.objects.all()]).findings
    assert [f.kind for f in findings] == ["n_plus_one"]
    assert findings[0].distinct_params == 5


def test_duplicates_can_be_switched_off(data):
    pk = data["books"][0].pk
    assert collect(lambda: [Book.objects.get(pk=pk) for _ in range(3)], duplicates=False).findings == []


def test_threshold(data):
    def two_books():
        return [b.author.name for b in Book.objects.order_by("pk")[:2]]

    assert len(collect(two_books).findings) == 1
    assert collect(two_books, threshold=3).findings == []
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"THRESHOLD": 3}):
        assert collect(two_books).findings == []


def test_ignore_context_manager(data):
    def loop():
        with nplusone.ignore():
            return [b.author.name for b in Book.objects.all()]

    report = collect(loop)
    assert report.findings == [] and report.statements == 0


def test_ignore_decorator(data):
    @nplusone.ignore()
    def loop():
        return [b.author.name for b in Book.objects.all()]

    assert collect(loop).findings == []


def test_ignore_comment_on_the_call_site_line(data):
    def loop():
        return [b.author.name for b in Book.objects.all()]  # nplusone: ignore

    assert collect(loop).findings == []


def test_ignore_list(data):
    loop = lambda: [b.author.name for b in Book.objects.all()]  # noqa: E731
    for entry in ("shop.Book.author", "shop.Book", "test_detection.py", "shop"):
        with override_settings(DJANGO_RUSTPG_NPLUSONE={"IGNORE": [entry]}):
            if entry == "shop":
                with pytest.raises(ImproperlyConfigured):
                    np_settings.load()
                continue
            assert collect(loop).findings == [], entry
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"IGNORE": ["shop.Book.reviews"]}):
        assert len(collect(loop).findings) == 1


def test_ignore_list_with_line(data):
    import inspect

    def loop():
        return [b.author.name for b in Book.objects.all()]

    line = inspect.getsourcelines(loop)[1] + 1
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"IGNORE": [f"test_detection.py:{line}"]}):
        assert collect(loop).findings == []
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"IGNORE": [f"test_detection.py:{line + 1}"]}):
        assert len(collect(loop).findings) == 1


@pytest.mark.parametrize("bad", [
    ["shop.Nope"], ["nope.Book"], ["shop.Book.nope"], ["missing/file.py"], ["test_detection.py:999999"],
    [42], "shop.Book", ["a.b.c.d"],
])
def test_ignore_list_is_validated(bad):
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"IGNORE": bad}):
        with pytest.raises(ImproperlyConfigured):
            np_settings.load()


@pytest.mark.parametrize("bad", [{"MODE": "loud"}, {"THRESHOLD": 1}, {"THRESHOLD": "2"}, {"NOPE": 1}, {"HISTORY": -1}])
def test_settings_are_validated(bad):
    with override_settings(DJANGO_RUSTPG_NPLUSONE=bad):
        with pytest.raises(ImproperlyConfigured):
            np_settings.load()


def test_valid_ignore_entries_for_reverse_relations_and_gfk():
    with override_settings(DJANGO_RUSTPG_NPLUSONE={"IGNORE": [
        "shop.Book.reviews", "shop.Author.profile", "shop.Tag.content_object", "shop.Label.books", "shop/models.py",
    ]}):
        assert len(np_settings.load().ignore) == 5


def test_warn_mode_logs_one_line_per_finding(data, caplog):
    with caplog.at_level(logging.WARNING, logger="django_rustpg.nplusone"):
        with nplusone.scope(mode="warn"):
            [b.author.name for b in Book.objects.all()]
    (record,) = caplog.records
    line = record.getMessage()
    assert "\n" not in line
    for part in ("N+1 query (confirmed)", "10 queries", " ms", "5 distinct parameter sets", "at test_detection.py:",
                 "source test_detection.py:", 'fix: select_related("author")', 'sql: SELECT "shop_author"."id"'):
        assert part in line, part


def test_raise_mode(data):
    with pytest.raises(nplusone.NPlusOneError) as info:
        with nplusone.scope(mode="raise"):
            [b.author.name for b in Book.objects.all()]
    assert len(info.value.findings) == 1
    assert 'select_related("author")' in str(info.value)


def test_raise_mode_does_not_mask_the_users_exception(data):
    with pytest.raises(ZeroDivisionError):
        with nplusone.scope(mode="raise"):
            [b.author.name for b in Book.objects.all()]
            1 / 0


def test_scope_as_decorator(data, caplog):
    @nplusone.scope(mode="raise")
    def view():
        return [b.author.name for b in Book.objects.all()]

    with pytest.raises(nplusone.NPlusOneError):
        view()

    @nplusone.scope(mode="raise")
    async def async_view():
        return [b.author.name async for b in Book.objects.select_related("author")]

    assert len(async_to_sync(async_view)()) == 10


def test_report_to_json(data):
    report = collect(lambda: [b.author.name for b in Book.objects.all()])
    doc = json.loads(report.to_json())
    assert doc["statements"] == 11
    (f,) = doc["findings"]
    for key in ("kind", "count", "total_ms", "sql", "fingerprint", "callsite", "relation", "fix", "confirmed",
                "source_callsite", "distinct_params", "key"):
        assert key in f
    assert f["relation"] == "shop.Book.author"


def test_nested_scopes_report_to_their_parent(data):
    with nplusone.scope(mode="collect") as outer:
        with nplusone.scope(mode="collect") as inner:
            [b.author.name for b in Book.objects.all()]
        Book.objects.count()
    assert len(inner.findings) == 1
    assert len(outer.findings) == 1 and outer.findings[0] is inner.findings[0]
    assert outer.statements == 1  # the inner scope's statements are its own


def test_nothing_is_recorded_without_a_scope(data):
    assert _native.nplusone_active() == 0
    [b.author.name for b in Book.objects.all()]
    with nplusone.scope(mode="collect"):
        assert _native.nplusone_active() == 1
        with nplusone.scope(mode="collect"):
            assert _native.nplusone_active() == 2
    assert _native.nplusone_active() == 0


def test_other_threads_do_not_leak_into_a_scope(data):
    import threading

    from django.db import connections

    def other_thread():
        try:
            list(Author.objects.all())
        finally:
            connections.close_all()

    with nplusone.scope(mode="collect") as report:
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
    assert report.statements == 0


def test_concurrent_async_scopes_never_mix(data):
    async def task(kind):
        with nplusone.scope(kind, mode="collect") as report:
            if kind == "authors":
                async for b in Book.objects.all():
                    await sync_to_async(lambda b=b: b.author.name)()
                    await asyncio.sleep(0)
            else:
                async for b in Book.objects.all():
                    [r async for r in b.reviews.all()]
                    await asyncio.sleep(0)
        return report

    async def both():
        return await asyncio.gather(task("authors"), task("reviews"))

    authors, reviews = async_to_sync(both)()
    assert [f.relation for f in authors.findings] == ["shop.Book.author"]
    assert [f.relation for f in reviews.findings] == ["shop.Book.reviews"]
    assert authors.findings[0].count == 10 and reviews.findings[0].count == 10


def test_fingerprint_api():
    a = nplusone.fingerprint('SELECT * FROM "t" WHERE "t"."id" IN (%s, %s)')
    assert a == nplusone.fingerprint("select * from t where t.id = any($1)")
    assert len(a) == 16 and int(a, 16) >= 0
    assert nplusone.normalize("SELECT 1 /* x */") == "select ?"
    info = nplusone.analyze('SELECT COUNT(*) FROM "r" WHERE "r"."book_id" = %s')
    assert info["count_only"] and info["filters"] == [("r", "book_id", False)] and info["kind"] == "select"
    # Never raises, whatever the text.
    for junk in ("", "\x00", "SELECT '", "%s %(x)s %", "))))((((", "SELECT " + "(" * 500 + "1" + ")" * 500):
        assert len(nplusone.fingerprint(junk)) == 16


def test_rows_of_a_server_side_cursor_confirm_the_loop_over_them(data):
    from django.db import connection, transaction

    def loop():
        with transaction.atomic():  # iterator() declares a server-side cursor, fetched 3 rows at a time
            return [b.author.name for b in Book.objects.order_by("pk").iterator(chunk_size=3)]

    with nplusone.scope(mode="collect") as report:
        names = loop()
    assert len(names) == 10
    (f,) = report.findings
    assert (f.relation, f.fix, f.confirmed) == ("shop.Book.author", 'select_related("author")', True)
    assert f.source_callsite == f.callsite  # the rows came from the iterator() on the same line
    assert "ORDER BY" in f.source_sql and '"shop_book"' in f.source_sql


def test_write_groups_without_captured_frames_still_build_a_finding():
    from django_rustpg.nplusone import _findings, _markers as rt

    code = test_write_groups_without_captured_frames_still_build_a_finding.__code__
    group = {
        "id": 0, "kind": "update", "markers": rt.OPERATION | rt.M_SAVE, "ctx": None, "count": 3, "calls": 3, "reached": True,
        "distinct": 3, "total_ms": 1.0, "first_seq": 1, "frames": [(code, code.co_firstlineno)], "sources": [],
        "tables": ["shop_book"], "filters": [["shop_book", "id", False]], "sql": 'UPDATE "shop_book" SET "price" = $1 WHERE "shop_book"."id" = $2',
        "fingerprint": "0" * 16, "normalized": "",
    }
    (f,) = _findings.build({"groups": [group], "duplicates": []})
    assert (f.operation, f.fix, f.relation) == ("save", 'bulk_update([...], ["price"])', None)
