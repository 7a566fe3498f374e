"""src/types/array_binary.rs: lists of aware datetimes, UUIDs and Jsonb values go as binary
arrays; what the server receives (type and every value) is what psycopg sends for the same
list, and lists it does not model keep the text form."""
import datetime
import decimal
import functools
import json
import uuid
from zoneinfo import ZoneInfo

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from psycopg.types.json import Jsonb

UTC = datetime.timezone.utc
PARIS = ZoneInfo("Europe/Paris")


def run(conn, sql, params):
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return "ok", cur.fetchall()
    except Exception as e:
        return "error", type(e).__name__
    finally:
        cur.close()


def both(conn, pg, sql, params):
    ours, theirs = run(conn, sql, params), run(pg, sql, params)
    assert ours == theirs, (ours, theirs)
    return ours


DJANGO_DUMPS = functools.partial(json.dumps, cls=DjangoJSONEncoder)
CASES = {
    "aware": [datetime.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), None,
              datetime.datetime(1999, 12, 31, 23, 59, tzinfo=PARIS), datetime.datetime(1, 1, 1, tzinfo=UTC)],
    "uuid": [uuid.UUID(int=1), None, uuid.uuid4()],
    "jsonb": [Jsonb({"a": [1, 2.5, None, True], "é": "東京"}), None, Jsonb(None), Jsonb("s\"\\"), Jsonb([]),
              Jsonb({"n": 10**30}), Jsonb({1: "int key"})],
    "jsonb_django_encoder": [Jsonb({"d": decimal.Decimal("1.10"), "u": uuid.UUID(int=5)}, dumps=DJANGO_DUMPS)] * 3,
    "jsonb_custom_dumps": [Jsonb({"a": 1}, dumps=lambda o: json.dumps(o, indent=2))] * 2,
    "jsonb_mixed_dumps": [Jsonb({"a": 1}), Jsonb({"b": 2}, dumps=DJANGO_DUMPS)],
}


@pytest.mark.parametrize("name", CASES)
def test_values_and_type_match_psycopg(conn, pg, name):
    values = CASES[name]
    # The server's own text rendering: what it received, whatever each driver decodes.
    both(conn, pg, "SELECT pg_typeof(%s)::text, (%s)::text", [values, values])
    both(conn, pg, "SELECT x::text FROM unnest(%s) WITH ORDINALITY AS t(x, i) ORDER BY i", [values])


def test_binary_only_where_modelled(conn):
    # Naive datetimes: timestamp[] as before (text form); aware ones: timestamptz[].
    naive = [datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 2)]
    aware = [d.replace(tzinfo=UTC) for d in naive]
    cur = conn.cursor()
    cur.execute("SELECT pg_typeof(%s)::text, pg_typeof(%s)::text, pg_typeof(%s)::text",
                [naive, aware, [aware[0], naive[1]]])
    assert cur.fetchone() == ("timestamp without time zone[]", "timestamp with time zone[]",
                              "timestamp with time zone[]")


def test_django_bulk_insert_shape(conn, pg):
    """The statement Django's UNNEST bulk insert sends, with every kind at once."""
    cols = [CASES["aware"], CASES["uuid"][:3] + [None], CASES["jsonb"][:4]]
    sql = "SELECT a::text, b::text, c::text FROM UNNEST((%s)::timestamp with time zone[], (%s)::uuid[], (%s)::jsonb[]) AS t(a, b, c)"
    assert both(conn, pg, sql, cols)[0] == "ok"


@pytest.mark.parametrize("bad", [
    [Jsonb({"x": float("nan")})],  # json.dumps writes NaN: the server refuses it
    [Jsonb({"x": object()})],  # not serializable: json.dumps raises TypeError
    [Jsonb("\x00")],  # \u0000: jsonb refuses it
])
def test_errors_match_psycopg(conn, pg, bad):
    both(conn, pg, "SELECT %s::text", [bad])
