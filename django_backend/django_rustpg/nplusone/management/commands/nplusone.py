"""``manage.py nplusone``: run URLs or tests under the N+1 detector; print the findings,
write the JSON report, diff against a baseline.

    manage.py nplusone /books/ /authors/1/           # GET each URL with the test client
    manage.py nplusone --test shop.tests             # each test of the labels is a scope
    manage.py nplusone /books/ --json report.json --baseline nplusone-baseline.json
    manage.py nplusone /books/ --baseline b.json --update-baseline
    manage.py nplusone /books/ --fail                # exit status 1 on new findings

The baseline has the pytest plugin's format: findings listed there are "known"; the
report's ``new`` lists the others and ``stale_baseline`` the entries no longer found.
Framework findings (Django's own repeated statements) are listed, never new.
"""

import json
import os
import sys

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run URLs or test labels under the N+1 detector and report the findings (JSON, baseline diff)."

    def add_arguments(self, parser):
        parser.add_argument("urls", nargs="*", help="URLs to GET with the test client")
        parser.add_argument("--test", nargs="+", default=[], metavar="LABEL", help="test labels to run")
        parser.add_argument("--json", metavar="PATH", help="write the JSON report here ('-': stdout)")
        parser.add_argument("--baseline", metavar="PATH", help="known findings (the pytest plugin's baseline file)")
        parser.add_argument("--update-baseline", action="store_true", help="write the findings to --baseline")
        parser.add_argument("--threshold", type=int, default=None, help="repeats that make a finding")
        parser.add_argument("--fail", action="store_true", help="exit status 1 when there are new findings")

    def handle(self, *args, **opts):
        if not opts["urls"] and not opts["test"]:
            raise CommandError("give URLs and/or --test LABEL ...")
        if opts["update_baseline"] and not opts["baseline"]:
            raise CommandError("--update-baseline needs --baseline PATH")
        runs = []
        if opts["urls"]:
            runs += run_urls(opts["urls"], threshold=opts["threshold"])
        if opts["test"]:
            runs += run_tests(opts["test"], threshold=opts["threshold"])
        baseline = {} if opts["update_baseline"] else load_baseline(opts["baseline"])
        report = build_report(runs, baseline)
        for line in summary(report):
            self.stdout.write(line)
        if opts["json"]:
            text = json.dumps(report, indent=2, default=str)
            if opts["json"] == "-":
                self.stdout.write(text)
            else:
                os.makedirs(os.path.dirname(os.path.abspath(opts["json"])), exist_ok=True)
                with open(opts["json"], "w", encoding="utf-8") as fh:
                    fh.write(text + "\n")
        if opts["update_baseline"]:
            write_baseline(opts["baseline"], report)
        if opts["fail"] and report["new"]:
            sys.exit(1)


def run_urls(urls, threshold=None) -> list:
    """[(name, Report)]: one scope per URL (GET with Django's test client)."""
    from django.test import Client

    from ... import scope

    client = Client()
    out = []
    for url in urls:
        with scope(f"GET {url}", mode="collect", threshold=threshold) as report:
            response = client.get(url)
        report.status = response.status_code  # type: ignore[attr-defined]
        out.append((f"GET {url}", report))
    return out


def run_tests(labels, threshold=None, runner_class=None) -> list:
    """[(test id, Report)]: Django's test runner, each test's body a scope (setUp,
    fixtures and setUpTestData excluded)."""
    import unittest

    from django.test.utils import get_runner
    from django.conf import settings

    from ... import scope
    from ...testing import install_test_hooks

    install_test_hooks()
    runs = []
    Runner = runner_class or get_runner(settings)

    class Result(unittest.TextTestResult):
        def startTest(self, test):
            super().startTest(test)
            cm = scope(test.id(), mode="collect", threshold=threshold)
            cm._test_file = _test_file(test)
            self._np = (cm, cm.__enter__())

        def stopTest(self, test):
            cm, report = self._np
            cm.__exit__(None, None, None)
            runs.append((test.id(), report))
            super().stopTest(test)

    class NPlusOneRunner(Runner):  # type: ignore[misc,valid-type]
        def get_resultclass(self):
            return Result

    failures = NPlusOneRunner(verbosity=0, interactive=False).run_tests(list(labels))
    if failures:
        sys.stderr.write(f"nplusone: {failures} test(s) failed or errored\n")
    return runs


def _test_file(test):
    import inspect

    try:
        return inspect.getfile(type(test))
    except TypeError:
        return None


def load_baseline(path) -> dict:
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return {e["key"]: e for e in data.get("entries", [])}


def build_report(runs, baseline) -> dict:
    findings, framework = [], []
    for name, report in runs:
        for f in report.findings:
            d = f.to_dict()
            d["run"] = name
            d["baselined"] = f.key in baseline
            findings.append(d)
        for f in report.framework_findings:
            d = f.to_dict()
            d["run"] = name
            framework.append(d)
    seen = {f["key"] for f in findings}
    return {
        "runs": {name: {"statements": r.statements, "findings": len(r.findings)} for name, r in runs},
        "findings": findings,
        "framework_findings": framework,
        "new": sorted({f["key"] for f in findings if not f["baselined"]}),
        "stale_baseline": [e for k, e in baseline.items() if k not in seen],
    }


def summary(report) -> list:
    lines = []
    for name, run in report["runs"].items():
        lines.append(f"{name}: {run['statements']} statements, {run['findings']} finding(s)")
    for f in report["findings"]:
        mark = "known" if f["baselined"] else "NEW"
        fix = f" | fix: {f['fix']}" if f.get("fix") else (
            f" | no safe fix found: {f['no_fix_reason']}" if f.get("no_fix_reason") else "")
        lines.append(f"  {mark} {f['kind']} x{f['count']} at {f['callsite']} ({f['run']}){fix}")
    for f in report["framework_findings"]:
        lines.append(f"  framework {f['kind']} x{f['count']} at {f['callsite']} ({f['run']})")
    lines.append(f"{len(report['findings'])} finding(s): {len(report['new'])} new; "
                 f"{len(report['framework_findings'])} framework; {len(report['stale_baseline'])} stale baseline entries")
    return lines


def write_baseline(path, report):
    entries = {}
    for f in report["findings"]:
        entries.setdefault(f["key"], {"key": f["key"], "kind": f["kind"], "callsite": f["callsite"],
                                      "relation": f["relation"], "fix": f["fix"], "test": f["run"]})
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"version": 1, "entries": sorted(entries.values(), key=lambda e: e["key"])}, fh, indent=2)
        fh.write("\n")
