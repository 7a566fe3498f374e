from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_rustpg import nplusone
from shop import scenarios

def test_smoke(data):
    for name, (fn, rel, fix) in scenarios.CASES.items():
        with nplusone.scope(mode="collect") as r:
            fn()
        print("==", name, r.statements)
        for f in r.findings:
            print("  ", f.kind, f.relation, f.fix, f.confirmed, f.callsite, f.source_callsite, f.template)
        with nplusone.scope(mode="collect") as r2, CaptureQueriesContext(connection) as q:
            fn(fix=r.findings[0].fix if r.findings else None)
        print("  fixed:", len(r2.findings), len(q), r2.statements)
    ids = [b.pk for b in data["books"]]
    with nplusone.scope(mode="collect") as r:
        scenarios.get_in_loop(ids)
    print("== get", [(f.kind, f.relation, f.fix, f.confirmed) for f in r.findings])
    with nplusone.scope(mode="collect") as r:
        async_to_sync(scenarios.async_reviews)()
    print("== async", [(f.kind, f.relation, f.fix, f.confirmed, f.callsite) for f in r.findings])
