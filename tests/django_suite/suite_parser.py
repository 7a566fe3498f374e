"""Parse Django runtests.py ``-v 2`` output into per-test outcomes.

Handles:

* Python >= 3.11 descriptions ``test_foo (app.tests.Cls.test_foo)`` and the
  older ``test_foo (app.tests.Cls)`` form;
* tests with docstrings (description on one line, first docstring line plus
  `` ... ok`` on the next one);
* subtests (``  test_foo (app.tests.Cls.test_foo) (x=1) ... FAIL``), which are
  folded into the parent test's outcome;
* class/module level errors (``setUpClass (app.tests.Cls) ... ERROR``) and
  import failures (``app (unittest.loader._FailedTest.app) ... ERROR``);
* test output that splits ``desc ... `` and its status over several lines;
* the ``FAIL:`` / ``ERROR:`` blocks printed at the end (used to upgrade
  outcomes, so a run whose progress lines got garbled is still scored right).

With ``--parallel`` Django replays each worker's events in the main process,
so lines are not interleaved with each other (only with raw prints from
workers), but they arrive in batches per TestCase class.
"""

import re

OK = "ok"
FAIL = "FAIL"
ERROR = "ERROR"
SKIP = "skipped"
XFAIL = "expected failure"
XPASS = "unexpected success"

OUTCOMES = (OK, FAIL, ERROR, SKIP, XFAIL, XPASS)

# Which outcome wins when one test id reports several (subtests, tearDown
# errors after a failure, a test printed twice, ...).
PRECEDENCE = {SKIP: 0, XFAIL: 1, OK: 2, XPASS: 3, FAIL: 4, ERROR: 5}

_STATUS = r"(?P<status>ok|FAIL|ERROR|skipped(?: .*)?|expected failure|unexpected success)"
_NAME = r"(?P<name>[^\s()\[\]]+)"
_INNER = r"\((?P<inner>[A-Za-z_][\w.]*)\)"
DESC_RE = re.compile(r"^" + _NAME + r" " + _INNER + r"(?P<rest>.*)$")
STATUS_LINE_RE = re.compile(r"^(?P<desc>.*?) \.\.\. " + _STATUS + r"\s*$")
PENDING_RE = re.compile(r"^(?P<desc>.*?) \.\.\.(?: (?P<tail>.*))?$")
BARE_STATUS_RE = re.compile(r"^" + _STATUS + r"\s*$")
BLOCK_RE = re.compile(r"^(?P<kind>FAIL|ERROR|UNEXPECTED SUCCESS): (?P<desc>.+?)\s*$")
RAN_RE = re.compile(r"^Ran (?P<n>\d+) tests? in (?P<secs>[\d.]+)s")
SUMMARY_RE = re.compile(r"^(?P<word>OK|FAILED)(?: \((?P<details>.*)\))?\s*$")

FAILED_TEST_PREFIX = "unittest.loader._FailedTest."


def parse_description(desc):
    """Return (test_id, subtest_suffix) for a unittest description, or None."""
    m = DESC_RE.match(desc.strip())
    if not m:
        return None
    name, inner, rest = m.group("name"), m.group("inner"), m.group("rest")
    if inner == name or inner.endswith("." + name):
        test_id = inner  # Python >= 3.11 or unittest.loader._FailedTest.x
    else:
        test_id = inner + "." + name  # Python < 3.11, or setUpClass (mod.Cls)
    return test_id, rest.strip()


def normalize_id(raw):
    """Normalize a test.id() as recorded by the runner (error holders carry
    a description such as ``setUpClass (app.tests.Cls)``)."""
    raw = raw.strip()
    if " (" in raw:
        parsed = parse_description(raw)
        if parsed:
            return parsed[0]
    return raw


def label_of(test_id):
    """Top-level test-suite label (app directory) a test id belongs to."""
    if test_id.startswith(FAILED_TEST_PREFIX):
        test_id = test_id[len(FAILED_TEST_PREFIX):]
    return test_id.split(".", 1)[0]


def status_to_outcome(status):
    if status.startswith("skipped"):
        return SKIP
    return status


def merge(outcomes, test_id, outcome):
    old = outcomes.get(test_id)
    if old is None or PRECEDENCE[outcome] > PRECEDENCE[old]:
        outcomes[test_id] = outcome


class ParseResult:
    def __init__(self):
        self.outcomes = {}  # test id -> outcome
        self.skip_reasons = {}  # test id -> reason text
        self.subtest_failures = {}  # test id -> [subtest suffix, ...]
        self.ran = None  # "Ran N tests" as reported by unittest
        self.summary = None  # "OK (skipped=3)" / "FAILED (failures=1)"
        self.last_started = None  # last test whose status never came
        self.unparsed_status_lines = 0

    def as_dict(self):
        return {
            "outcomes": self.outcomes,
            "skip_reasons": self.skip_reasons,
            "subtest_failures": self.subtest_failures,
            "ran": self.ran,
            "summary": self.summary,
            "last_started": self.last_started,
            "unparsed_status_lines": self.unparsed_status_lines,
        }


def parse_lines(lines):
    res = ParseResult()
    pending = None  # test id of a "desc ... " line still waiting for a status
    bare_desc = None  # test id of a bare description line (docstring tests)
    after_separator = False

    def record(test_id, status, subtest):
        outcome = status_to_outcome(status)
        merge(res.outcomes, test_id, outcome)
        if outcome == SKIP and status.startswith("skipped "):
            res.skip_reasons.setdefault(test_id, status[len("skipped "):].strip())
        if subtest and outcome in (FAIL, ERROR):
            res.subtest_failures.setdefault(test_id, []).append(subtest)

    for raw in lines:
        line = raw.rstrip("\r\n")
        stripped = line.strip()

        # End-of-run failure blocks:  ====...  /  FAIL: desc  /  ----...
        if after_separator:
            after_separator = False
            m = BLOCK_RE.match(stripped)
            if m:
                parsed = parse_description(m.group("desc"))
                if parsed:
                    kind = m.group("kind")
                    outcome = XPASS if kind == "UNEXPECTED SUCCESS" else kind
                    merge(res.outcomes, parsed[0], outcome)
                    if parsed[1] and outcome in (FAIL, ERROR):
                        subs = res.subtest_failures.setdefault(parsed[0], [])
                        if parsed[1] not in subs:
                            subs.append(parsed[1])
                continue
        if stripped and set(stripped) == {"="} and len(stripped) >= 20:
            after_separator = True
            continue

        m = RAN_RE.match(stripped)
        if m:
            res.ran = int(m.group("n"))
            pending = bare_desc = None
            continue
        m = SUMMARY_RE.match(stripped)
        if m and res.ran is not None:
            res.summary = stripped
            continue

        m = STATUS_LINE_RE.match(stripped)
        if m:
            if bare_desc is not None:
                # Docstring test: "test_x (a.b.C.test_x)" / "Doc line ... ok".
                parsed = bare_desc
            else:
                parsed = parse_description(m.group("desc"))
            if parsed is None and pending is not None:
                parsed = (pending, "")
            bare_desc = None
            if parsed is None:
                res.unparsed_status_lines += 1
                continue
            record(parsed[0], m.group("status"), parsed[1])
            if parsed[1]:
                # A subtest failure leaves the parent test "in progress".
                pending = parsed[0]
            else:
                pending = None
                res.last_started = None
            continue

        m = PENDING_RE.match(stripped)
        if m:
            parsed = bare_desc or parse_description(m.group("desc"))
            bare_desc = None
            if parsed is not None:
                pending = parsed[0]
                res.last_started = parsed[0]
                continue

        m = BARE_STATUS_RE.match(stripped)
        if m and pending is not None:
            record(pending, m.group("status"), "")
            pending = None
            res.last_started = None
            bare_desc = None
            continue

        parsed = parse_description(stripped) if stripped else None
        if parsed is not None:
            bare_desc = parsed
            res.last_started = parsed[0]
            continue
        # Anything else (migrations output, prints from tests, tracebacks)
        # is ignored; keep `pending` so "desc ... <print>\nok" still works.
        if stripped:
            bare_desc = None
    return res


def parse_file(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_lines(fh)
