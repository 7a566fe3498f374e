#!/usr/bin/env python
"""Run Django's own test suite against django_rustpg (or the stock backend).

Proves ORM parity: the installed Django's sdist is downloaded (cached), a
settings module is generated, ``tests/runtests.py`` is run on a label list,
the outcome of every test is recorded, and optionally compared with the stock
``django.db.backends.postgresql`` backend.

Typical use (from the repo root)::

    .venv/bin/python tests/django_suite/run.py                    # core list, django_rustpg
    .venv/bin/python tests/django_suite/run.py --engine stock --labels basic lookup
    .venv/bin/python tests/django_suite/run.py --compare --reuse-stock
    .venv/bin/python tests/django_suite/run.py --all --require-parity \\
        --expected-failures tests/django_suite/expected_failures.txt

Exit codes: 0 ok; 1 --require-parity and a stock-passing test does not pass
here (not listed in --expected-failures); 2 setup error (engine not
importable, sdist not obtainable, bad arguments); 3 runtests crashed / timed
out; 4 zero tests ran.  A run where tests merely fail exits 0 unless
--require-parity is given.

See README.md in this directory for details.
"""

import argparse
import contextlib
import datetime
import fcntl
import fnmatch
import hashlib
import importlib.util
import json
import os
import platform
import pprint
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import suite_labels  # noqa: E402
import suite_parser as sp  # noqa: E402

REPO_ROOT = HERE.parents[1]
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

ENGINES = {
    # key: (ENGINE, extra OPTIONS, db name suffix)
    "django_rustpg": ("django_rustpg", {}, ""),
    "stock": ("django.db.backends.postgresql", {}, "_stock"),
    "stock-pool": ("django.db.backends.postgresql", {"pool": True}, "_stockpool"),
    "gis": ("django_rustpg.gis", {}, "_gis"),
    "stock-gis": ("django.contrib.gis.db.backends.postgis", {}, "_stockgis"),
}
ENGINE_ALIASES = {"rustpg": "django_rustpg", "django_rustpg.gis": "gis"}
# The stock engine --compare runs against (default: "stock").
STOCK_OF = {"gis": "stock-gis"}

EXIT_OK, EXIT_PARITY, EXIT_SETUP, EXIT_CRASH, EXIT_NO_TESTS = 0, 1, 2, 3, 4

COUNT_KEYS = ("tests", "passed", "failed", "errors", "skipped", "xfail", "xpass")
OUTCOME_TO_KEY = {
    sp.OK: "passed",
    sp.FAIL: "failed",
    sp.ERROR: "errors",
    sp.SKIP: "skipped",
    sp.XFAIL: "xfail",
    sp.XPASS: "xpass",
}


class SetupError(Exception):
    pass


def log(msg=""):
    print(msg, flush=True)


def warn(msg):
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


def fmt_secs(secs):
    m, s = divmod(int(round(secs)), 60)
    h, m = divmod(m, 60)
    return (f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s") + f" ({secs:.1f}s)"


def ensure_cache_root(cache_root):
    """Create the cache dir; a fresh one gets a catch-all .gitignore."""
    created = not cache_root.exists()
    cache_root.mkdir(parents=True, exist_ok=True)
    gi = cache_root / ".gitignore"
    if created and not gi.exists():
        gi.write_text("# created by tests/django_suite/run.py\n*\n")


# ---------------------------------------------------------------------------
# Django sources
# ---------------------------------------------------------------------------

def find_sdist(sdist_dir, version):
    want = f"django-{version}.tar.gz"
    if sdist_dir.is_dir():
        for p in sdist_dir.iterdir():
            if p.name.lower() == want:
                return p
    return None


def ensure_django_tests_dir(version, sdist_dir):
    """Return <extracted sdist>/tests, downloading/extracting as needed."""
    sdist_dir.mkdir(parents=True, exist_ok=True)
    tarball = find_sdist(sdist_dir, version)
    if tarball is None:
        log(f"Downloading Django {version} sdist into {sdist_dir} ...")
        cmd = [
            sys.executable, "-m", "pip", "download", f"django=={version}",
            "--no-deps", "--no-binary", ":all:", "-d", str(sdist_dir),
            "--disable-pip-version-check", "-q",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        tarball = find_sdist(sdist_dir, version)
        if proc.returncode != 0 or tarball is None:
            raise SetupError(
                f"pip download django=={version} failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}\n"
                "Use --django-src DIR to point at an unpacked Django source tree."
            )
    with tarfile.open(tarball) as tf:
        members = tf.getmembers()
        top = members[0].name.split("/", 1)[0]
        dest = sdist_dir / top
        marker = dest / ".extracted-ok"
        if not marker.exists():
            log(f"Extracting {tarball.name} ...")
            if dest.exists():
                shutil.rmtree(dest)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=sdist_dir))
            try:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(tmp, filter="data")
                else:  # pragma: no cover - old Pythons
                    tf.extractall(tmp)
                os.replace(tmp / top, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            marker.write_text(f"{tarball.name}\n")
    tests_dir = dest / "tests"
    if not (tests_dir / "runtests.py").is_file():
        raise SetupError(f"{tests_dir}/runtests.py not found in the sdist")
    return tests_dir


def ensure_tblib(deps_root, allow_install):
    """Django's parallel runner needs tblib to ship tracebacks of failing
    tests from the workers; without it the first failure in a worker aborts
    the whole run.  Install it (pure Python) into a cache dir put on
    PYTHONPATH rather than into the venv.  Returns (extra_path, ok)."""
    if importlib.util.find_spec("tblib") is not None:
        return None, True
    target = deps_root / f"py{sys.version_info[0]}{sys.version_info[1]}"
    if (target / "tblib").is_dir():
        return target, True
    if not allow_install:
        return None, False
    log(f"Installing tblib into {target} (needed by the parallel runner) ...")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--target", str(target), "tblib"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0 or not (target / "tblib").is_dir():
        warn(f"could not install tblib: {proc.stderr.strip()[-500:]}")
        return None, False
    return target, True


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

def parse_database_url(url):
    """postgresql://user:pass@host:port/db?host=/socket/dir&sslmode=... ->
    dict(USER, PASSWORD, HOST, PORT, DBNAME, OPTIONS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SetupError(f"DATABASE_URL must be postgresql://..., got {url!r}")
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, port = hostport, ""
    if hostport.startswith("["):  # [ipv6]:port
        close = hostport.find("]")
        host, rest = hostport[1:close], hostport[close + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    info = {
        "USER": unquote(user),
        "PASSWORD": unquote(password),
        "HOST": unquote(host),
        "PORT": port,
        "DBNAME": unquote(parts.path.lstrip("/")),
        "OPTIONS": {},
    }
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        lk = key.lower()
        if lk == "host":
            info["HOST"] = value
        elif lk == "port":
            info["PORT"] = value
        elif lk == "user":
            info["USER"] = value
        elif lk == "password":
            info["PASSWORD"] = value
        elif lk == "dbname":
            info["DBNAME"] = value
        else:
            info["OPTIONS"][key] = value
    if info["PORT"] and not info["PORT"].isdigit():
        raise SetupError(f"bad port in DATABASE_URL: {info['PORT']!r}")
    return info


def build_databases(engine_key, url, db_name, extra_options):
    engine, engine_options, suffix = ENGINES[engine_key]
    info = parse_database_url(url)
    base_name = (db_name or "django_rustpg_suite") + suffix
    options = dict(info["OPTIONS"])
    options.update(engine_options)
    options.update(extra_options)

    def conn(name):
        d = {
            "ENGINE": engine,
            "NAME": name,
            "USER": info["USER"],
            "PASSWORD": info["PASSWORD"],
            "HOST": info["HOST"],
            "PORT": info["PORT"],
        }
        if options:
            d["OPTIONS"] = dict(options)
        return d

    return {"default": conn(base_name), "other": conn(base_name + "_other")}


SETTINGS_TEMPLATE = '''\
# Generated by tests/django_suite/run.py -- do not edit, it is rewritten on
# every run.  Mirrors Django's tests/test_sqlite.py.

DATABASES = {databases}

SECRET_KEY = "django_tests_secret_key"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
]
{auto_field}
USE_TZ = False
{test_runner}'''


def auto_field_setting(tests_dir):
    """DEFAULT_AUTO_FIELD as the version's own tests/test_sqlite.py has it: Django <= 5.2 sets
    AutoField there, 6.0+ keeps its default (BigAutoField), which its schema and migration
    tests expect."""
    path = tests_dir / "test_sqlite.py"
    text = path.read_text() if path.is_file() else ""
    m = re.search(r"^DEFAULT_AUTO_FIELD\s*=\s*(['\"])([\w.]+)\1", text, re.M)
    return f'\nDEFAULT_AUTO_FIELD = "{m.group(2)}"\n' if m else ""


def write_settings(settings_dir, module_name, databases, use_recorder, auto_field=""):
    settings_dir.mkdir(parents=True, exist_ok=True)
    test_runner = ""
    if use_recorder:
        shutil.copyfile(HERE / "suite_recorder.py", settings_dir / "django_suite_recorder.py")
        test_runner = '\nTEST_RUNNER = "django_suite_recorder.RecordingDiscoverRunner"\n'
    text = SETTINGS_TEMPLATE.format(
        databases=pprint.pformat(databases, indent=4, sort_dicts=False),
        test_runner=test_runner,
        auto_field=auto_field,
    )
    path = settings_dir / f"{module_name}.py"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------

def resolve_labels(args):
    if args.labels:
        labels = list(dict.fromkeys(args.labels))
        joined = "+".join(labels)
        if re.fullmatch(r"[\w.+-]{1,60}", joined):
            listname = "labels_" + joined
        else:
            digest = hashlib.sha1(" ".join(sorted(labels)).encode()).hexdigest()[:8]
            listname = f"custom-{digest}"
    else:
        listname = "all" if args.all else "extended" if args.extended else "core"
        labels = list(suite_labels.LISTS[listname])
    return listname, labels


def filter_labels(labels, tests_dir):
    kept, dropped = [], []
    for label in labels:
        top = label.split(".", 1)[0]
        if (tests_dir / top).is_dir() or (tests_dir / f"{top}.py").is_file():
            kept.append(label)
        else:
            dropped.append(label)
    return kept, dropped


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

def check_engine(engine_key, env, django_version_tuple):
    engine = ENGINES[engine_key][0]
    if engine_key == "stock-pool":
        if django_version_tuple < (5, 1):
            return "skip", "connection pooling (OPTIONS pool=True) needs Django >= 5.1"
        if importlib.util.find_spec("psycopg_pool") is None:
            return "skip", ("psycopg_pool is not installed "
                            "(pip install 'psycopg[pool]') -- skipping --engine stock-pool")
    # (settings configured: the GIS backends read them at import)
    code = ("import importlib, django, django.conf; django.conf.settings.configure(); django.setup(); "
            f"importlib.import_module({engine + '.base'!r})")
    proc = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        return "error", f"ENGINE {engine!r} is not importable with {sys.executable}:\n{tail}"
    return "ok", ""


class Runner:
    """Runs runtests.py once and turns the output into a result dict."""

    def __init__(self, args, tests_dir, django_version, settings_root, logs_dir, extra_path):
        self.args = args
        self.tests_dir = tests_dir
        self.django_version = django_version
        self.settings_root = settings_root
        self.logs_dir = logs_dir
        self.extra_path = extra_path

    def env_for(self, settings_dir, record_path):
        env = os.environ.copy()
        paths = [str(settings_dir)]
        if self.extra_path:
            paths.append(str(self.extra_path))
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if record_path:
            env["DJANGO_SUITE_RECORD"] = str(record_path)
        else:
            env.pop("DJANGO_SUITE_RECORD", None)
        return env

    def run(self, engine_key, listname, labels, dropped, parallel=None):
        args = self.args
        base = f"{engine_key}-{self.django_version}-{listname}"
        log_path = self.logs_dir / f"{base}.log"
        json_path = self.logs_dir / f"{base}.json"
        record_path = self.logs_dir / f"{base}.record.jsonl" if args.recorder else None
        module = "django_suite_settings_" + re.sub(r"\W", "_", engine_key)
        settings_dir = self.settings_root / f"{engine_key}-{self.django_version}"
        databases = build_databases(engine_key, args.database_url, args.db_name, args.options)
        for alias in databases.values():
            alias.update(args.database_settings)
        write_settings(settings_dir, module, databases, args.recorder, auto_field_setting(self.tests_dir))
        env = self.env_for(settings_dir, record_path)

        status, msg = check_engine(engine_key, env, self.django_version_tuple())
        if status == "skip":
            log(f"SKIP {engine_key}: {msg}")
            return None
        if status == "error":
            raise SetupError(msg)

        parallel = args.parallel if parallel is None else parallel
        if parallel != 1 and not self.tblib_ok:
            warn("tblib is unavailable: falling back to --parallel=1 "
                 "(a failing test in a parallel worker would abort the run)")
            parallel = 1

        db = databases["default"]
        log(f"== {engine_key}: Django {self.django_version}, list {listname!r}, "
            f"{len(labels)} labels, --parallel={parallel}")
        log(f"   ENGINE={db['ENGINE']} HOST={db['HOST'] or '(default)'} PORT={db['PORT'] or '(default)'} "
            f"USER={db['USER'] or '(default)'} NAME={db['NAME']}/{databases['other']['NAME']}"
            + (f" OPTIONS={db.get('OPTIONS')}" if db.get("OPTIONS") else ""))
        log(f"   log: {log_path}")
        with self.db_lock(databases):
            result = self._run_with_fallback(
                engine_key, base, module, labels, parallel, env, log_path, record_path)

        result.update({
            "engine": engine_key,
            "engine_module": db["ENGINE"],
            "django_version": self.django_version,
            "python": platform.python_version(),
            "list": listname,
            "labels": labels,
            "dropped_labels": dropped,
            "log": str(log_path),
            "json": str(json_path),
        })
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
        os.replace(tmp, json_path)
        return result

    @contextlib.contextmanager
    def db_lock(self, databases):
        """Serialize runs that would use the same test databases (runtests
        --noinput drops and recreates them)."""
        lock_dir = self.settings_root.parent / "django-suite-locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        name = databases["default"]["HOST"] + "_" + databases["default"]["PORT"] + "_" + databases["default"]["NAME"]
        path = lock_dir / (re.sub(r"[^\w.-]", "_", name) + ".lock")
        with open(path, "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"   waiting for another run using test_{databases['default']['NAME']} ({path}) ...")
                fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield

    def _run_with_fallback(self, engine_key, base, module, labels, parallel, env, log_path, record_path):
        args = self.args
        result = self._run_once(engine_key, module, labels, parallel, env, log_path, record_path)
        if result["crashed"] and not result["timed_out"] and parallel > 1 and args.serial_fallback:
            crashed_log = self.logs_dir / f"{base}.crashed-parallel.log"
            os.replace(log_path, crashed_log)
            warn(f"parallel run crashed ({result['crash_reason']}); re-running with "
                 f"--parallel=1 (crashed log kept as {crashed_log})")
            first = result
            result = self._run_once(engine_key, module, labels, 1, env, log_path, record_path)
            result["serial_fallback"] = {
                "crash_reason": first["crash_reason"],
                "crashed_log": str(crashed_log),
                "wall_time_s": first["wall_time_s"],
            }
            result["wall_time_s"] = round(result["wall_time_s"] + first["wall_time_s"], 1)

        return result

    def django_version_tuple(self):
        return tuple(int(x) for x in re.findall(r"\d+", self.django_version)[:2])

    def _run_once(self, engine_key, module, labels, parallel, env, log_path, record_path):
        args = self.args
        cmd = [
            sys.executable, "-u", "runtests.py", f"--settings={module}",
            f"--parallel={parallel}", "--noinput", "-v", "2",
            *args.runtests_args, *labels,
        ]
        if record_path and record_path.exists():
            record_path.unlink()
        started_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        t0 = time.monotonic()
        timed_out = stalled = False
        counts = {"lines": 0, "results": 0, "bad": 0}
        last_output = [time.monotonic()]
        status_re = re.compile(r" \.\.\. (ok|FAIL|ERROR|skipped|expected failure|unexpected success)")

        with open(log_path, "w", encoding="utf-8", errors="replace") as logf:
            logf.write(f"# cwd: {self.tests_dir}\n# cmd: {' '.join(cmd)}\n"
                       f"# PYTHONPATH={env['PYTHONPATH']}\n# started: {started_at}\n")
            logf.flush()
            proc = subprocess.Popen(
                cmd, cwd=self.tests_dir, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, text=True, encoding="utf-8", errors="replace",
                bufsize=1,
            )

            def pump():
                for line in proc.stdout:
                    logf.write(line)
                    last_output[0] = time.monotonic()
                    counts["lines"] += 1
                    m = status_re.search(line)
                    if m:
                        counts["results"] += 1
                        if m.group(1) in ("FAIL", "ERROR", "unexpected success"):
                            counts["bad"] += 1
                    if args.echo:
                        sys.stdout.write(line)
                logf.flush()

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            next_progress = t0 + args.progress_every
            try:
                while proc.poll() is None:
                    time.sleep(0.5)
                    now = time.monotonic()
                    if args.timeout and now - t0 > args.timeout:
                        timed_out = True
                        warn(f"runtests exceeded --timeout={args.timeout}s, killing it")
                        self._kill(proc)
                        break
                    if args.stall_timeout and now - last_output[0] > args.stall_timeout:
                        timed_out = stalled = True
                        warn(f"no output for {args.stall_timeout}s (hung worker?), killing runtests")
                        self._kill(proc)
                        break
                    if args.progress_every and now >= next_progress and not args.echo:
                        next_progress = now + args.progress_every
                        log(f"   ... {fmt_secs(now - t0)}: {counts['results']} results, "
                            f"{counts['bad']} failing so far")
            except KeyboardInterrupt:
                self._kill(proc)
                raise
            proc.wait()
            reader.join(timeout=30)
            wall = time.monotonic() - t0
            logf.write(f"\n# exit code: {proc.returncode}, wall time {wall:.1f}s\n")

        parsed = sp.parse_file(log_path)
        recorded = read_record(record_path) if record_path else None
        outcomes, details, source, mismatch = merge_sources(parsed, recorded)

        ran = parsed.ran
        crash_reason = None
        if timed_out:
            crash_reason = "stalled (no output)" if stalled else "timeout"
        elif proc.returncode not in (0, 1):
            crash_reason = f"runtests exited with code {proc.returncode}"
        elif ran is None:
            crash_reason = "runtests ended without a 'Ran N tests' line (traceback in log?)"
        elif proc.returncode == 1 and not any(
                o in (sp.FAIL, sp.ERROR, sp.XPASS) for o in outcomes.values()):
            crash_reason = "runtests exited 1 but no test failed (error outside tests?)"

        per_label, totals = count(outcomes, labels)
        return {
            "started_at": started_at,
            "wall_time_s": round(wall, 1),
            "parallel": parallel,
            "command": cmd,
            "returncode": proc.returncode,
            "crashed": crash_reason is not None,
            "crash_reason": crash_reason,
            "timed_out": timed_out,
            "last_started": parsed.last_started if crash_reason else None,
            "ran": ran,
            "summary": parsed.summary,
            "source": source,
            "parser_mismatches": mismatch,
            "totals": totals,
            "per_label": per_label,
            "outcomes": dict(sorted(outcomes.items())),
            "details": dict(sorted(details.items())),
        }

    @staticmethod
    def _kill(proc):
        # Only the process group we started (start_new_session=True).
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=15)
                return
            except subprocess.TimeoutExpired:
                continue


def read_record(path):
    if path is None or not path.exists():
        return None
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # torn last line after a crash
    return rows


def merge_sources(parsed, recorded):
    """Recorder output is authoritative; the parsed console output is the
    fallback (no recorder / recorder got nothing) and a cross-check."""
    details = {}
    rows = [r for r in (recorded or []) if "id" in r]
    if rows:
        outcomes = {}
        for r in rows:
            tid = sp.normalize_id(r["id"])
            sp.merge(outcomes, tid, r["outcome"])
            if r["outcome"] in (sp.FAIL, sp.ERROR, sp.SKIP) and r.get("detail"):
                prefix = f"{r['subtest']} " if r.get("subtest") else ""
                details.setdefault(tid, prefix + r["detail"])
        mismatch = sorted(
            tid for tid in set(outcomes) | set(parsed.outcomes)
            if outcomes.get(tid) != parsed.outcomes.get(tid)
        )
        if mismatch:
            warn(f"console parser and recorder disagree on {len(mismatch)} test(s), "
                 f"e.g. {mismatch[:3]} -- using the recorder")
        return outcomes, details, "recorder", len(mismatch)
    for tid, reason in parsed.skip_reasons.items():
        details[tid] = reason
    for tid, subs in parsed.subtest_failures.items():
        details.setdefault(tid, "subtests: " + ", ".join(subs[:5]))
    return dict(parsed.outcomes), details, "console", None


def count(outcomes, labels):
    per_label = {}
    for label in labels:
        per_label.setdefault(label.split(".", 1)[0], dict.fromkeys(COUNT_KEYS, 0))
    totals = dict.fromkeys(COUNT_KEYS, 0)
    for tid, outcome in outcomes.items():
        row = per_label.setdefault(sp.label_of(tid), dict.fromkeys(COUNT_KEYS, 0))
        key = OUTCOME_TO_KEY[outcome]
        for d in (row, totals):
            d["tests"] += 1
            d[key] += 1
    return per_label, totals


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def print_table(result):
    cols = ("tests", "passed", "failed", "errors", "skipped", "xfail", "xpass")
    width = max([len("label")] + [len(k) for k in result["per_label"]]) + 2
    header = "label".ljust(width) + "".join(c.rjust(8) for c in cols)
    log(header)
    log("-" * len(header))
    for label, row in result["per_label"].items():
        log(label.ljust(width) + "".join(str(row[c]).rjust(8) for c in cols))
    log("-" * len(header))
    t = result["totals"]
    log("TOTAL".ljust(width) + "".join(str(t[c]).rjust(8) for c in cols))


def print_summary(result):
    t = result["totals"]
    tag = f"{result['engine']} {result['list']} django={result['django_version']}"
    if result.get("dropped_labels"):
        log(f"NOTE: labels not in Django {result['django_version']} (dropped): "
            + " ".join(result["dropped_labels"]))
    print_table(result)
    log(f"RESULT {tag}: {t['tests']} tests, {t['passed']} passed, {t['failed']} failed, "
        f"{t['errors']} errors, {t['skipped']} skipped, {t['xfail']} expected failures, "
        f"{t['xpass']} unexpected successes"
        + (f"  [unittest: Ran {result['ran']}; {result['summary']}]" if result["ran"] is not None else ""))
    log(f"WALL {tag}: {fmt_secs(result['wall_time_s'])} "
        f"(--parallel={result['parallel']}, runtests exit {result['returncode']})")
    if result.get("serial_fallback"):
        warn(f"the parallel run crashed ({result['serial_fallback']['crash_reason']}); "
             "these results come from the --parallel=1 re-run")
    if result["crashed"]:
        warn(f"runtests CRASHED: {result['crash_reason']}"
             + (f"; last test started: {result['last_started']}" if result.get("last_started") else "")
             + f" -- see {result['log']}")


def load_expected_failures(paths):
    patterns = []
    for path in [paths] if isinstance(paths, str) else paths or ():
        for line in Path(path).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                patterns.append(line)
    return patterns


def compare(target, stock, expected_patterns, max_list):
    """Print the parity line; return the ids of unexpected regressions."""
    stock_pass = sorted(t for t, o in stock["outcomes"].items() if o == sp.OK)
    here = target["outcomes"]
    missing = [t for t in stock_pass if here.get(t) != sp.OK]
    n_stock = len(stock_pass)
    n_ok = n_stock - len(missing)
    pct = (n_ok * 100.0 / n_stock) if n_stock else 0.0
    pct_txt = f"{int(pct * 100) / 100:.2f}"  # floor: never print 100.00 unless exact
    log(f"PARITY {target['list']} django={target['django_version']}: {n_ok}/{n_stock} "
        f"tests passing on stock also pass on {target['engine']} ({pct_txt}%)")
    unexpected = []
    shown = 0
    for tid in missing:
        # Declared by the backend (features.django_test_expected_failures, each with a
        # reason) or listed in the --expected-failures file.
        is_expected = here.get(tid) == sp.XFAIL or any(fnmatch.fnmatchcase(tid, p) for p in expected_patterns)
        if not is_expected:
            unexpected.append(tid)
        if max_list and shown >= max_list:
            continue
        shown += 1
        outcome = here.get(tid, "missing (did not run)")
        detail = target["details"].get(tid, "")
        log(f"  {tid}  [{outcome}]" + (" (listed in --expected-failures)" if is_expected else "")
            + (f"  {detail}" if detail else ""))
    if max_list and len(missing) > shown:
        log(f"  ... and {len(missing) - shown} more (see {target['json']})")
    if set(stock["labels"]) != set(target["labels"]):
        warn("stock and target runs used different label lists")
    extra = [t for t, o in here.items() if o == sp.OK and stock["outcomes"].get(t) != sp.OK]
    if extra:
        log(f"(info: {len(extra)} test(s) pass on {target['engine']} but not on stock)")
    if expected_patterns:
        log(f"({len(missing) - len(unexpected)} of {len(missing)} listed in --expected-failures)")
    return unexpected


RERUN_LIMIT = 200


def rerun_alone(runner, args, listname, missing):
    """Stock-passing tests that did not pass here, run once more on their own, serially;
    returns those that fail again. Django's suite has order-dependent tests, on stock too:
    backends.base.test_creation closes the connection of a shallow copy of the default
    wrapper, which shares the open one, and every later test of that worker then meets a
    closed connection. Whichever parallel worker draws it decides; stock runs separately,
    so it may draw it and we may not, or the reverse. A failure of ours fails again alone."""
    if len(missing) > RERUN_LIMIT:
        return missing
    log(f"re-running the {len(missing)} stock-passing test(s) that did not pass, alone (--parallel=1), "
        "to tell order-dependent failures of Django's suite from ours")
    again = runner.run(args.engine, f"{listname}-rerun", list(missing), [], parallel=1)
    if again is None or again["crashed"]:
        warn("the re-run crashed; counting every one as failed")
        return missing
    still = [t for t in missing if again["outcomes"].get(t) != sp.OK]
    passed = [t for t in missing if t not in still]
    if passed:
        warn(f"{len(passed)} of them passed on their own (order-dependent in this run): "
             + ", ".join(passed[:5]) + (" ..." if len(passed) > 5 else "") + f"; log {again['json']}")
    if still:
        log(f"{len(still)} failed again on their own: {', '.join(still[:10])}")
    return still


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(
        description="Run Django's own test suite on django_rustpg / the stock backend.",
        epilog="Arguments after '--' are passed to runtests.py (e.g. -- --failfast -k test_foo).",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--core", action="store_true", help="core label list (default)")
    g.add_argument("--extended", action="store_true", help="extended label list")
    g.add_argument("--all", action="store_true", help="core + extended")
    g.add_argument("--labels", nargs="+", metavar="LABEL", help="explicit labels")
    p.add_argument("--engine", default="django_rustpg",
                   choices=sorted(ENGINES) + sorted(ENGINE_ALIASES),
                   help="backend under test (default: django_rustpg)")
    p.add_argument("--options", default="{}", metavar="JSON",
                   help="extra DATABASES OPTIONS merged in, as a JSON object")
    p.add_argument("--database-settings", default="{}", metavar="JSON",
                   help="extra top-level DATABASES keys for every alias, as a JSON object "
                        "(e.g. {\"DISABLE_SERVER_SIDE_CURSORS\": true} behind PgBouncer)")
    p.add_argument("--parallel", type=int, default=2, help="runtests --parallel (default 2)")
    p.add_argument("--compare", action="store_true",
                   help="also run (or reuse) the stock backend and print the PARITY line")
    p.add_argument("--reuse-stock", action="store_true",
                   help="with --compare: reuse the cached stock JSON for this Django "
                        "version and label list if present")
    p.add_argument("--require-parity", action="store_true",
                   help="implies --compare; exit 1 if a stock-passing test does not pass")
    p.add_argument("--expected-failures", metavar="FILE", action="append",
                   help="test ids / fnmatch patterns (one per line, # comments) allowed "
                        "to fail under --require-parity (repeatable)")
    p.add_argument("--max-list", type=int, default=0,
                   help="show at most N non-parity tests (default 0 = all)")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_URL,
                   help=f"connection URL (default: $DATABASE_URL or {DEFAULT_URL})")
    p.add_argument("--db-name", default="django_rustpg_suite",
                   help="base NAME; 'other' gets an _other suffix, stock engines a "
                        "_stock/_stockpool infix (default django_rustpg_suite)")
    p.add_argument("--cache-dir", default=str(REPO_ROOT / ".cache"),
                   help="cache root (default: <repo>/.cache)")
    p.add_argument("--django-src", metavar="DIR",
                   help="use this unpacked Django source tree instead of downloading the sdist")
    p.add_argument("--timeout", type=int, default=7200,
                   help="kill runtests after this many seconds (default 7200, 0 = never)")
    p.add_argument("--stall-timeout", type=int, default=1200,
                   help="kill runtests after this many seconds without output "
                        "(hung worker; default 1200, 0 = never)")
    p.add_argument("--no-serial-fallback", dest="serial_fallback", action="store_false",
                   help="do not re-run with --parallel=1 when the parallel run crashes")
    p.add_argument("--no-recorder", dest="recorder", action="store_false",
                   help="do not install the recording TEST_RUNNER; rely on parsing the "
                        "console output only")
    p.add_argument("--no-install-tblib", dest="install_tblib", action="store_false",
                   help="do not pip-install tblib into the cache when missing")
    p.add_argument("--echo", action="store_true", help="echo runtests output to the console")
    p.add_argument("--progress-every", type=int, default=60,
                   help="print a progress line every N seconds (default 60, 0 = off)")
    p.add_argument("--parse-only", metavar="LOG",
                   help="just parse an existing runtests -v 2 log and print the counts")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    runtests_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, runtests_args = argv[:i], argv[i + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.runtests_args = runtests_args
    args.engine = ENGINE_ALIASES.get(args.engine, args.engine)
    if args.require_parity:
        args.compare = True
    try:
        args.options = json.loads(args.options)
        if not isinstance(args.options, dict):
            raise ValueError("not an object")
    except ValueError as e:
        parser.error(f"--options must be a JSON object: {e}")
    try:
        args.database_settings = json.loads(args.database_settings)
        if not isinstance(args.database_settings, dict):
            raise ValueError("not an object")
    except ValueError as e:
        parser.error(f"--database-settings must be a JSON object: {e}")

    if args.parse_only:
        parsed = sp.parse_file(args.parse_only)
        outcomes = parsed.outcomes
        per_label, totals = count(outcomes, [])
        print_table({"per_label": dict(sorted(per_label.items())), "totals": totals})
        log(f"unittest: Ran {parsed.ran}; {parsed.summary}; "
            f"unparsed status lines: {parsed.unparsed_status_lines}")
        return EXIT_OK if totals["tests"] else EXIT_NO_TESTS

    try:
        import django
    except ImportError:
        log(f"Django is not importable with {sys.executable}")
        return EXIT_SETUP
    version = django.get_version()

    cache_root = Path(args.cache_dir).resolve()
    try:
        ensure_cache_root(cache_root)
        if args.django_src:
            tests_dir = Path(args.django_src).resolve() / "tests"
            if not (tests_dir / "runtests.py").is_file():
                raise SetupError(f"{tests_dir}/runtests.py not found")
        else:
            tests_dir = ensure_django_tests_dir(version, cache_root / "django-sdist")
        extra_path, tblib_ok = ensure_tblib(cache_root / "django-suite-deps", args.install_tblib)

        listname, labels = resolve_labels(args)
        labels, dropped = filter_labels(labels, tests_dir)
        if dropped:
            log(f"NOTE: dropping labels that do not exist in Django {version}: {' '.join(dropped)}")
        if not labels:
            log("No labels left to run.")
            return EXIT_NO_TESTS

        logs_dir = cache_root / "django-suite-logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        runner = Runner(args, tests_dir, version, cache_root / "django-suite-settings",
                        logs_dir, extra_path)
        runner.tblib_ok = tblib_ok

        target = runner.run(args.engine, listname, labels, dropped)
        if target is None:  # engine skipped (e.g. stock-pool without psycopg_pool)
            return EXIT_OK
        print_summary(target)

        exit_code = EXIT_OK
        if target["crashed"]:
            exit_code = EXIT_CRASH
        elif target["totals"]["tests"] == 0:
            log("ERROR: zero tests ran")
            exit_code = EXIT_NO_TESTS

        if args.compare:
            if args.engine == "stock":
                warn("--compare with --engine stock compares stock with itself; skipped")
                return exit_code
            stock_json = logs_dir / f"stock-{version}-{listname}.json"
            stock = None
            if args.reuse_stock and stock_json.exists():
                stock = json.loads(stock_json.read_text())
                if stock.get("crashed") or stock.get("labels") != labels:
                    warn(f"cached {stock_json.name} is unusable (crashed or different labels); re-running stock")
                    stock = None
                else:
                    log(f"Reusing cached stock results {stock_json} "
                        f"(from {stock.get('started_at')}, {stock['totals']['tests']} tests)")
            if stock is None:
                stock = runner.run(STOCK_OF.get(args.engine, "stock"), listname, labels, dropped)
                print_summary(stock)
            if stock["crashed"]:
                warn("the stock run crashed; the parity figure is unreliable")
                exit_code = exit_code or EXIT_CRASH
            unexpected = compare(target, stock, load_expected_failures(args.expected_failures),
                                 args.max_list)
            if args.require_parity and unexpected and exit_code == EXIT_OK:
                unexpected = rerun_alone(runner, args, listname, unexpected)
                if unexpected:
                    exit_code = EXIT_PARITY
        return exit_code
    except SetupError as e:
        log(f"SETUP ERROR: {e}")
        return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
