# Needs only python3, cargo and make; everything else is installed into .venv.
# The database for tests/demo/bench comes from scripts/find_pg.py (see its docstring):
# an existing server if any, else a throwaway cluster that is stopped afterwards.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
WITH_PG := $(PY) scripts/find_pg.py --run --

export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(VIRTUAL_ENV)/bin:$(PATH)

DEPS_STAMP  := $(VENV)/.rustpg-deps
BUILD_STAMP := $(VENV)/.rustpg-build
RUST_INPUTS := $(shell find src -type f 2>/dev/null) $(wildcard build.rs Cargo.toml Cargo.lock) pyproject.toml
NATIVE_SO   := $(wildcard django_backend/django_rustpg/_native*.so)

# Resolved lazily: the venv may not exist when make starts.
# Without extension-module, pyo3 links libpython; the test binary must load the
# venv's base interpreter's libpython (not e.g. a system one of the same soname)
# and needs site-packages on sys.path since an embedded interpreter skips pyvenv.cfg.
PY_LIBDIR = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
PY_SITE   = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

.PHONY: venv build test test-rust test-py test-embedded django-suite test-gis demo bench pg-start pg-stop clean FORCE
.NOTPARALLEL:

venv: $(DEPS_STAMP)

$(DEPS_STAMP): pyproject.toml
	@if ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV) || \
	  { echo "error: '$(PYTHON) -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	$(PY) -m pip install -q --disable-pip-version-check maturin pytest "Django>=5.2,<5.3" "psycopg[binary]>=3.1.8" psycopg-pool dj-database-url celery
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

test: build test-rust test-py test-embedded $(if $(wildcard tests/django_suite/run.py),django-suite)

# Same PYO3_PYTHON as maturin uses, so alternating with `build` does not rebuild pyo3.
# Runs under find_pg so Rust tests can use DATABASE_URL too.
test-rust: $(DEPS_STAMP)
	PYO3_PYTHON=$(abspath $(PY)) \
	LD_LIBRARY_PATH=$(PY_LIBDIR)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} \
	PYTHONPATH=$(PY_SITE):$(CURDIR)/django_backend \
	$(WITH_PG) cargo test --release --lib

# tests/backend configures Django its own way: it runs in a process of its own.
test-py: build
	$(WITH_PG) $(PY) -m pytest tests --ignore=tests/backend
	$(WITH_PG) $(PY) -m pytest tests/backend

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
	  --expected-failures tests/django_suite/timing_sensitive.txt

# GeoDjango: Django's gis_tests on ENGINE django_rustpg.gis and on stock postgis, same run
# (needs postgresql-15-postgis-3 and GDAL/GEOS, which that package pulls in).
test-gis: build
	$(WITH_PG) $(PY) tests/django_suite/run.py --engine gis --labels gis_tests --compare

demo: build
	$(WITH_PG) $(PY) examples/demo/run_demo.py

bench: build
	$(WITH_PG) $(PY) benches/run.py

# Leaves a server running for interactive work:  eval "$(make -s pg-start)"
pg-start:
	@$(PYTHON) scripts/find_pg.py

pg-stop:
	@$(PYTHON) scripts/find_pg.py --stop

clean: pg-stop
	cargo clean
	rm -f $(BUILD_STAMP) django_backend/django_rustpg/_native*.so
	rm -rf .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
