"""The text forms the driver writes for array and range parameters (src/sql/literal.rs):
every element must read back exactly, whatever characters sit at its edges."""
import decimal
import sys

import psycopg
import pytest
from psycopg.types.range import Range

EDGE_CHUNK = 20_000


def _code_points():
    return [cp for cp in range(1, sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]


def _edge_elements(cps):
    out = []
    for cp in cps:
        c = chr(cp)
        out += [c + "G", "G" + c, c]
    return out


def test_every_code_point_at_text_array_element_edges_round_trips(conn, pg):
    """A property test over all of Unicode: leading, trailing and lone characters."""
    cps = _code_points()
    cur = conn.cursor()
    wrong = []
    for i in range(0, len(cps), EDGE_CHUNK):
        elements = _edge_elements(cps[i : i + EDGE_CHUNK])
        try:
            cur.execute("SELECT %s::text[]", [elements])
        except psycopg.Error as e:  # keep the report short: the literal is megabytes
            wrong.append((hex(cps[i]), type(e).__name__))
            continue
        got = cur.fetchone()[0]
        if got != elements:
            wrong += [(e, g) for e, g in zip(elements, got) if e != g][:5] or [("length", len(got))]
    assert wrong == []


def test_psycopg_agrees_on_the_characters_postgres_trims(conn, pg):
    spaces = ["\x0b", "\x0c", "\t", "\n", "\r", " ", "\xa0", "\u2028", "\u3000"]
    elements = _edge_elements(map(ord, spaces)) + ["NULL", "null", "", "{", '"', "\\"]
    ours = conn.cursor()
    ours.execute("SELECT %s::text[]", [elements])
    theirs = pg.execute("SELECT %s::text[]", [elements]).fetchone()[0]
    assert ours.fetchone()[0] == theirs == elements


@pytest.mark.parametrize("edge", ["\x0b", "\x0c", "\t", "\n", "\r", " "])
def test_vertical_tab_and_other_spaces_kept_in_range_bounds(conn, edge):
    cur = conn.cursor()
    cur.execute("CREATE TYPE pg_temp.textrange AS RANGE (subtype = text)")
    try:
        value = Range(edge + "A", "B" + edge, "[]")
        cur.execute("SELECT lower(%s::pg_temp.textrange), upper(%s::pg_temp.textrange)", [value, value])
        assert cur.fetchone() == (edge + "A", "B" + edge)
    finally:
        cur.execute("DROP TYPE pg_temp.textrange")


@pytest.mark.parametrize("text", ["sNaN", "NaN"])
def test_any_nan_decimal_is_sent_as_nan_like_psycopg(conn, pg, text):
    value = decimal.Decimal(text)
    cur = conn.cursor()
    cur.execute("SELECT %s::numeric::text, %s::numeric[]::text", [value, [value]])
    theirs = pg.execute("SELECT %s::numeric::text, %s::numeric[]::text", [value, [value]]).fetchone()
    assert cur.fetchone() == theirs == ("NaN", "{NaN}")


@pytest.mark.parametrize("text", ["-sNaN", "-NaN"])
def test_signed_nan_decimal_is_a_data_error_like_psycopg(conn, pg, text):
    value = decimal.Decimal(text)
    with pytest.raises(psycopg.DataError):
        pg.execute("SELECT %s::numeric", [value])
    with pytest.raises(psycopg.DataError, match="numeric"):
        conn.cursor().execute("SELECT %s::numeric", [value])
