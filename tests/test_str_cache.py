"""Short text values shared within one fetch (src/types/str_cache.rs): every value stays
exactly what psycopg returns, whatever the mix of repeats, lengths around the limit,
non-ASCII text and values that land on the same slot."""
import pytest

# 5,000 rows: 700 distinct short values (more than the table's 256 slots, so slots are
# shared and evicted), lengths 0..19 across the 16-byte limit, non-ASCII values of equal
# length, and the same kinds of strings inside text arrays and JSON documents.
MIXED_SQL = """
SELECT 'v' || (i % 700)::text,
       repeat('x', i % 20),
       (ARRAY['façade', 'facade', 'fa', 'é', 'e', 'smörgåsbord', ''])[1 + i % 7],
       ARRAY['tag' || (i % 5)::text, 'rare', repeat('t', i % 19)],
       json_build_object('lang', 'l' || (i % 9)::text, 'name', repeat('y', i % 18),
                         'tags', json_build_array('a' || (i % 300)::text, 'ü'))
FROM generate_series(1, 5000) AS i
"""


def test_repeated_short_values_equal_psycopgs(conn, pg):
    cur = conn.cursor()
    cur.execute(MIXED_SQL)
    ours = cur.fetchall()
    stock = pg.execute(MIXED_SQL).fetchall()
    assert len(ours) == 5000
    assert ours == stock
    assert all(type(v) is str for row in ours for v in row[:3])


def test_fetchmany_batches_equal_psycopgs(conn, pg):
    cur = conn.cursor()
    cur.execute(MIXED_SQL)
    ours = []
    while batch := cur.fetchmany(333):
        ours.extend(batch)
    assert ours == pg.execute(MIXED_SQL).fetchall()


def test_a_repeated_short_value_is_one_str(conn):
    cur = conn.cursor()
    cur.execute("SELECT 'pending', repeat('z', 17), json_build_object('lang', 'en') FROM generate_series(1, 200)")
    rows = cur.fetchall()
    last, before = rows[-1], rows[-2]
    assert last[0] == before[0] == "pending"
    assert last[0] is before[0], "a short value repeated in one result is shared"
    assert last[2]["lang"] is before[2]["lang"]
    # Longer than 16 bytes: made anew each time, as before.
    assert last[1] == before[1] and last[1] is not before[1]


@pytest.mark.parametrize("value", ["a", "0123456789abcdef", "ü" * 8, "日本語テキスト", "tab\tnl\n"])
def test_values_at_and_below_the_limit_round_trip(conn, value):
    cur = conn.cursor()
    cur.execute("SELECT %s::text FROM generate_series(1, 100)", [value])
    assert {row[0] for row in cur.fetchall()} == {value}
