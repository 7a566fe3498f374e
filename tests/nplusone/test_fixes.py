"""Every fix the detector prints is applied and checked: the fixture case's loop runs
with the fix text evaluated on its root queryset, and the test asserts the promised
query count, the same output, and no finding left. Refused fixes say why."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_rustpg import nplusone
from django_rustpg.nplusone import fix_check
from shop import fix_cases, scenarios
from shop.models import Author, Book, Review


def run(fn, *args, **kwargs):
    with nplusone.scope(mode="collect") as report, CaptureQueriesContext(connection) as queries:
        out = fn(*args, **kwargs)
    return report, len(queries), out


def fix_finding(findings):
    """The finding whose fix covers the whole loop (the deepest level of a nested one)."""
    return max(findings, key=lambda f: f.level)


def normal(out):
    return sorted(out, key=repr) if isinstance(out, list) else out


ALL = {**{k: v for k, v in scenarios.CASES.items()}, **fix_cases.CASES}


@pytest.mark.parametrize("name", list(ALL))
def test_printed_fix_applied_gives_the_promised_queries_same_output_no_finding(fix_data, name):
    fn, relation, expected = ALL[name]
    report, n_before, out_before = run(fn)
    assert report.findings, name
    f = fix_finding(report.findings)
    assert (f.relation, f.fix) == (relation, expected), f.describe()
    assert f.no_fix_reason is None and f.fix_queries is not None
    fixed, n_after, out_after = run(fn, fix=f.fix, **({"attr": f.fix_attr} if fn.__module__.endswith("fix_cases") else {}))
    left = [x for x in fixed.findings if x.kind != "unused_eager_load"]
    assert left == [], [x.describe() for x in left]
    # An eager load the fix makes useless is reported, and the fix says so.
    for x in fixed.findings:
        assert x.kind == "unused_eager_load" and f'prefetch_related("{x.relation.rsplit(".", 1)[1]}") is then unused' in f.fix_usage
    assert n_after == f.fix_queries < n_before
    assert normal(out_after) == normal(out_before)


@pytest.mark.parametrize("name", list(fix_cases.REFUSED))
def test_validator_refusals_say_why(fix_data, name):
    fn, reason = fix_cases.REFUSED[name]
    (f,) = run(fn)[0].findings
    assert f.fix is None and f.no_fix_reason.startswith(reason)
    assert "no safe fix found: " + f.no_fix_reason in f.describe()


def test_nested_loop_is_one_finding_per_level(data):
    report, _, _ = run(scenarios.nested_loop)
    outer, inner = sorted(report.findings, key=lambda f: f.level)
    assert (outer.relation, outer.fix, outer.level) == ("shop.Author.books", 'prefetch_related("books")', 0)
    assert (inner.relation, inner.fix, inner.level) == ("shop.Book.labels", 'prefetch_related("books__labels")', 1)
    assert outer.covered_by == inner.fix == inner.covered_by
    assert (outer.count, inner.count) == (5, 10)
    assert [n["path"] for n in outer.nested] == ["books__labels"]


def test_prefetch_path_is_never_doubled(data):
    report, _, _ = run(fix_cases.prefetch_defeated_by_filter)
    assert all("books__books" not in (f.fix or "") for f in report.findings)


# ---------------------------------------------------------------------------- the validator itself

def check(text, root, **kw):
    return fix_check.validate(fix_check.Fix(text=text, root=root, **kw))


def test_validator_rejects_a_path_from_the_wrong_model():
    fix = check('select_related("author")', Review)
    assert fix.refused and "FieldError" not in fix.refused and "author" in fix.refused


def test_validator_rejects_select_related_over_a_many_valued_relation():
    assert "single-valued" in check('select_related("books")', Author).refused or "compile" in check(
        'select_related("books")', Author).refused


def test_validator_rejects_a_doubled_prefetch_path():
    fix = check('prefetch_related("books__books")', Author)
    assert fix.refused == "prefetch_related path does not resolve: 'books__books': shop.Book has no relation 'books'"


def test_validator_rejects_a_prefetch_queryset_of_the_wrong_model():
    fix = check('prefetch_related(Prefetch("books", queryset=Author.objects.all()))', Author)
    assert "gets a queryset of shop.Author" in fix.refused


def test_validator_rejects_a_plain_prefetch_for_a_filtered_loop():
    loop = {"call": "iterate", "filters": ["lookup", "price__gt", "10"]}
    fix = check('prefetch_related("books")', Author, loop=loop, attr="books_list")
    assert "Prefetch(queryset=..., to_attr=...)" in fix.refused


def test_validator_rejects_a_prefetch_queryset_with_other_filters():
    loop = {"call": "iterate", "filters": ["lookup", "price__gt", "10"]}
    fix = check('prefetch_related(Prefetch("books", queryset=Book.objects.filter(price__gt=11), to_attr="x"))',
                Author, loop=loop, attr="x")
    assert fix.refused == "the Prefetch queryset's filters differ from the loop's"


def test_validator_rejects_an_unfiltered_count_for_a_filtered_loop():
    loop = {"call": "count", "filters": ["lookup", "price__gt", "10"]}
    fix = check('annotate(n=Count("books"))', Author, loop=loop, attr="n")
    assert fix.refused == "the loop filters before counting: the aggregate needs the same filter"


def test_validator_catches_field_errors_when_compiling():
    fix = check('annotate(n=Count("nope"))', Author)
    assert fix.refused and "nope" in fix.refused


def test_validator_promises_one_query_per_prefetched_level():
    assert check('select_related("author").prefetch_related("author__books")', Book).queries == 2
    assert check('prefetch_related("books__labels")', Author).queries == 3
    assert check('prefetch_related(Prefetch("books", queryset=Book.objects.select_related("editor")))',
                 Author).queries == 2


# ---------------------------------------------------------------------------- Django >= 6.1

HAS_FETCH_PEERS = hasattr(__import__("django.db.models", fromlist=["models"]), "FETCH_PEERS")


@pytest.mark.skipif(HAS_FETCH_PEERS, reason="Django >= 6.1 has fetch modes")
def test_no_fetch_peers_alternative_before_django_6_1(data):
    report, _, _ = run(scenarios.forward_fk)
    (f,) = report.findings
    assert f.alt_fix is None and "or:" not in f.describe()


@pytest.fixture
def stock_iteration(monkeypatch):
    """Rows built by Django's own iterable: the driver's materialization does not track
    peers for fetch modes (yet), so FETCH_PEERS there behaves like FETCH_ONE."""
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "materialize", False)


@pytest.mark.skipif(not HAS_FETCH_PEERS, reason="fetch modes need Django >= 6.1")
@pytest.mark.parametrize("name", ["forward_fk", "reverse_one_to_one", "deferred_field", "two_hops_first_joined"])
def test_fetch_peers_alternative_is_applied_and_checked(fix_data, stock_iteration, name):
    fn, _relation, _fix = ALL[name]
    report, n_before, out_before = run(fn)
    f = fix_finding(report.findings)
    assert f.alt_fix == "fetch_mode(models.FETCH_PEERS)"
    fixed, n_after, out_after = run(fn, fix=f.alt_fix)
    assert [x for x in fixed.findings if x.kind != "unused_eager_load"] == []  # FETCH_PEERS querysets are clean
    assert n_after == f.alt_fix_queries < n_before
    assert normal(out_after) == normal(out_before)


@pytest.mark.skipif(not HAS_FETCH_PEERS, reason="fetch modes need Django >= 6.1")
def test_no_fetch_peers_alternative_for_many_valued_relations(data):
    report, _, _ = run(scenarios.reverse_fk)
    (f,) = report.findings
    assert f.alt_fix is None
