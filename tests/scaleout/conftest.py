"""Fixtures for tests/scaleout: a private primary + streaming standby (see cluster.py)."""

import os

import pytest

from .cluster import Pair, Skip


def _start_pair(**kw):
    try:
        return Pair.start(**kw)
    except Skip as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server binaries for a private primary/standby: {e} (install postgresql-15)")


@pytest.fixture(scope="session")
def pg_pair():
    """A primary and a streaming standby shared by the tests that don't stop or promote them."""
    pair = _start_pair()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def fresh_pair():
    """A primary and a standby of their own, for a test that stops or promotes one."""
    pair = _start_pair()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def make_pair():
    """A factory: `make_pair(delay_ms=..., primary_conf=...)`; every pair is stopped afterwards."""
    pairs = []

    def make(**kw):
        pair = _start_pair(**kw)
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        pair.stop()


def pytest_terminal_summary(terminalreporter):
    from . import test_failover

    if test_failover.FIGURES:
        terminalreporter.write_sep("-", "failover figures")
        for scenario, figures in test_failover.FIGURES.items():
            terminalreporter.write_line(f"{scenario}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
