"""The same shapes against Django's stock backend (psycopg 3): the native path must give
what the stock backend gives, value types and tzinfo included. A difference here that
test_shapes.py does not show is the driver's decoding (shared by both django_rustpg
aliases), not the materializer."""
import pytest

from mat_helpers import compare
from test_shapes import CASES, EMPTY_CASES, _ids


@pytest.mark.parametrize("name,build,expect", CASES + EMPTY_CASES, ids=_ids(CASES + EMPTY_CASES))
def test_shape_vs_stock(plan_spy, name, build, expect):
    compare(plan_spy, build, None, via="stock", what=name, allow_empty=True, django_plans_ok=name == "prefetch_gfk")
