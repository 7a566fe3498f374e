"""The cases of scripts/diff_probe.py: each is a function of a `Ctx` (the probe's recorder
around one Django connection), run through our backend and the stock one alike; SETUP /
TEARDOWN make the tables they read."""
import datetime
import decimal
import enum
import uuid

# ------------------------------------------------------------------ fixtures

SETUP = """
DROP SCHEMA IF EXISTS probe_a CASCADE; DROP SCHEMA IF EXISTS probe_b CASCADE;
DROP TABLE IF EXISTS probe_t;
CREATE SCHEMA probe_a; CREATE SCHEMA probe_b;
CREATE TABLE probe_a.t (x int); INSERT INTO probe_a.t VALUES (1);
CREATE TABLE probe_b.t (x text); INSERT INTO probe_b.t VALUES ('b');
CREATE TABLE probe_t (id int PRIMARY KEY, d date, ts timestamp, tstz timestamptz, t time,
  ttz timetz, iv interval, f float8, r float4, n numeric, b bytea, s text);
INSERT INTO probe_t VALUES
 (1, '2020-02-29', '2020-02-29 13:14:15.123456', '2020-06-01 12:00:00+00', '13:14:15.5',
  '13:14:15+02', '1 year 2 mons 3 days 04:05:06.7', 0.1, 0.1, 1.50, '\\x00ff27', 'a\\b'),
 (2, '0099-01-01', '1999-12-31 23:59:59', '1999-12-31 23:59:59.999999-08', '00:00',
  '00:00+00', '-1 days +02:00:00', 1e300, 3.4e38, -0.0001, '', 'it''s'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN', '-Infinity', 'NaN', NULL, NULL);
"""
TEARDOWN = "DROP SCHEMA IF EXISTS probe_a CASCADE; DROP SCHEMA IF EXISTS probe_b CASCADE; DROP TABLE IF EXISTS probe_t;"

CASES = {}


def case(name):
    def add(fn):
        CASES[name] = fn
        return fn
    return add


# ------------------------------------------------------------------ (a) named cursors

SERIES = "SELECT g, g * 1.5 AS h FROM generate_series(1, 7) g"


@case("named: fetchone/fetchmany/fetchall, rowcount and description at each step")
def _(ctx):
    cur = ctx.named()
    ctx.do("rowcount before", lambda: cur.rowcount)
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.desc(cur, "description before fetch")
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.do("fetchmany(2)", lambda: cur.fetchmany(2), cur=cur)
    ctx.do("fetchmany()", cur.fetchmany, cur=cur)
    ctx.desc(cur, "description after fetch")
    ctx.do("fetchall", cur.fetchall, cur=cur)
    ctx.do("fetchone at end", cur.fetchone, cur=cur)
    ctx.do("fetchmany at end", lambda: cur.fetchmany(3), cur=cur)
    ctx.do("close", cur.close)
    ctx.do("fetchone after close", cur.fetchone)


@case("named: iteration")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("iterate", lambda: list(cur), cur=cur)
    ctx.do("iterate again", lambda: list(cur), cur=cur)
    cur.close()


@case("named: iteration with itersize 2 mixed with fetchone")
def _(ctx):
    cur = ctx.named()
    cur.cursor.itersize = 2
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("next", lambda: next(cur), cur=cur)
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.do("next", lambda: next(cur), cur=cur)
    ctx.do("next", lambda: next(cur), cur=cur)
    ctx.do("fetchall", cur.fetchall, cur=cur)
    cur.close()


@case("named: execute twice")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.do("execute again", lambda: cur.execute("SELECT %s::int AS x, %s", [5, "a"]), cur=cur)
    ctx.desc(cur)
    ctx.do("fetchall", cur.fetchall, cur=cur)
    cur.close()


@case("named: scroll")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("scroll(2)", lambda: cur.scroll(2), cur=cur)
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.do("scroll(1, absolute)", lambda: cur.scroll(1, "absolute"), cur=cur)
    ctx.do("fetchone after backward scroll", cur.fetchone, cur=cur)
    cur.close()


@case("named: error in the middle of the rows")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute("SELECT 10 / (4 - g) FROM generate_series(1, 6) g"), cur=cur)
    for i in range(5):
        ctx.do(f"fetchone {i}", cur.fetchone, cur=cur)
    cur.close()


@case("named: executemany")
def _(ctx):
    cur = ctx.named()
    ctx.do("executemany", lambda: cur.executemany("SELECT %s", [[1], [2]]), cur=cur)
    cur.close()


@case("named: fetch before execute")
def _(ctx):
    cur = ctx.named()
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.desc(cur)
    cur.close()


@case("named: empty result")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute("SELECT 1 AS one, 'a'::text AS two WHERE false"), cur=cur)
    ctx.desc(cur)
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.do("fetchall", cur.fetchall, cur=cur)
    cur.close()


@case("named: parameters and their column names")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute("SELECT %s, %s, %s AS c, %s", [datetime.date(2020, 1, 2), "s", 3, decimal.Decimal("1.5")]), cur=cur)
    ctx.desc(cur)
    ctx.do("fetchall", cur.fetchall, cur=cur)
    cur.close()


@case("named: table read")
def _(ctx):
    cur = ctx.named()
    ctx.run(cur, "SELECT * FROM probe_t ORDER BY id")
    cur.close()


@case("named: table read after SET TIME ZONE and search_path")
def _(ctx):
    c = ctx.cursor()
    ctx.run(c, "SET TIME ZONE 'Asia/Kolkata'", fetch=None, desc=False)
    cur = ctx.named()
    ctx.run(cur, "SELECT * FROM probe_t ORDER BY id")
    ctx.run(c, "SET search_path = probe_b, public", fetch=None, desc=False)
    cur2 = ctx.named()
    ctx.run(cur2, "SELECT x FROM t")
    cur.close()
    cur2.close()


@case("named: not a query")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute("UPDATE probe_t SET s = s WHERE id = 0"), cur=cur)
    cur.close()


@case("named: syntax error then a plain cursor")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute("SELEC 1"), cur=cur)
    ctx.do("close", cur.close)
    c = ctx.cursor()
    ctx.run(c, "SELECT 1")


@case("named: used after commit (manual transaction)")
def _(ctx):
    w = ctx.w
    if w.in_atomic_block:
        return
    w.set_autocommit(False)
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.do("commit", w.commit)
    ctx.do("fetchone after commit", cur.fetchone, cur=cur)
    ctx.do("fetchall after commit", cur.fetchall, cur=cur)
    ctx.do("close", cur.close)
    ctx.do("rollback", w.rollback)
    w.set_autocommit(True)


@case("named: used after rollback (manual transaction)")
def _(ctx):
    w = ctx.w
    if w.in_atomic_block:
        return
    w.set_autocommit(False)
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("rollback", w.rollback)
    ctx.do("fetchone after rollback", cur.fetchone, cur=cur)
    ctx.do("close", cur.close)
    ctx.do("rollback", w.rollback)
    w.set_autocommit(True)


@case("named: withhold cursor survives autocommit statements")
def _(ctx):
    cur = ctx.named()
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("withhold", lambda: cur.cursor.withhold)
    ctx.do("scrollable", lambda: cur.cursor.scrollable)
    c = ctx.cursor()
    ctx.run(c, "SELECT name, is_holdable, is_scrollable FROM pg_cursors WHERE name <> '' ORDER BY 1", desc=False)
    ctx.do("fetchall", cur.fetchall, cur=cur)
    ctx.do("close", cur.close)
    ctx.run(c, "SELECT count(*) FROM pg_cursors WHERE name <> ''", desc=False)


@case("named: two cursors interleaved")
def _(ctx):
    a, b = ctx.named(), ctx.named()
    ctx.do("execute a", lambda: a.execute(SERIES), cur=a)
    ctx.do("execute b", lambda: b.execute("SELECT generate_series(10, 12)"), cur=b)
    for _ in range(2):
        ctx.do("a.fetchone", a.fetchone, cur=a)
        ctx.do("b.fetchone", b.fetchone, cur=b)
    ctx.do("a.fetchall", a.fetchall, cur=a)
    a.close()
    b.close()


@case("named: context manager")
def _(ctx):
    with ctx.named() as cur:
        ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
        ctx.do("fetchmany(3)", lambda: cur.fetchmany(3), cur=cur)
    ctx.do("closed", lambda: cur.closed)


@case("plain: scroll")
def _(ctx):
    cur = ctx.cursor()
    ctx.do("scroll before execute", lambda: cur.scroll(1), cur=cur)
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("scroll(2)", lambda: cur.scroll(2), cur=cur)
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.do("scroll(5, absolute)", lambda: cur.scroll(5, "absolute"), cur=cur)
    ctx.do("scroll out of range", lambda: cur.scroll(3), cur=cur)
    ctx.do("scroll bad mode", lambda: cur.scroll(1, "sideways"), cur=cur)
    ctx.do("fetchall", cur.fetchall, cur=cur)
    ctx.do("execute", lambda: cur.execute(SERIES), cur=cur)
    ctx.do("fetchmany(3)", lambda: cur.fetchmany(3), cur=cur)
    ctx.do("scroll back", lambda: cur.scroll(-2), cur=cur)
    ctx.do("fetchone", cur.fetchone, cur=cur)
    ctx.do("execute", lambda: cur.execute("SET work_mem = '4MB'"), cur=cur)
    ctx.do("scroll without rows", lambda: cur.scroll(0), cur=cur)


# ------------------------------------------------------------------ (b) session settings

LITERALS = ["'2020-02-29'::date", "'2020-02-29 13:14:15.5'::timestamp", "'2020-06-01 12:00+00'::timestamptz",
            "'13:14:15'::time", "'13:14:15+02'::timetz", "'1 day 02:03:04'::interval", "'-1 days +02:00:00'::interval",
            "0.1::float8", "0.1::float4", "1e300::float8", "'\\x00ff'::bytea", "1.50::numeric", "'a\\b'::text",
            "ARRAY['2020-02-29'::date]", "ARRAY['1 day'::interval]"]
READS = [
    ("literals", LITERALS),
    ("table", "SELECT * FROM probe_t ORDER BY id"),
    ("params", None),
]
PARAMS = [datetime.date(2020, 2, 29), datetime.datetime(2020, 2, 29, 13, 14, 15, 500000),
          datetime.datetime(2020, 6, 1, 12, tzinfo=datetime.timezone.utc), datetime.time(13, 14, 15),
          datetime.timedelta(days=400, seconds=7384, microseconds=5), 0.1, b"\x00\xff'", decimal.Decimal("1.50"),
          "a\\b", "it's"]

SETS = [
    "SET TIME ZONE 'Asia/Kolkata'", "SET timezone = 'UTC'", "SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE",
    "SET DateStyle = 'SQL, DMY'", "SET DateStyle = 'German'", "SET DateStyle = 'Postgres, MDY'",
    "SET IntervalStyle = 'postgres_verbose'", "SET IntervalStyle = 'sql_standard'", "SET IntervalStyle = 'iso_8601'",
    "SET extra_float_digits = 3", "SET extra_float_digits = 0", "SET extra_float_digits = -5",
    "SET bytea_output = 'escape'", "SET standard_conforming_strings = off",
    "SET search_path = probe_b, public", "SELECT set_config('TimeZone', 'Europe/Berlin', false)",
    "SET application_name = 'probe'", "SET statement_timeout = '5s'", "RESET ALL",
]


def settings_case(stmt, read, local=False):
    def run(ctx):
        if local and not ctx.w.in_atomic_block:
            return
        cur = ctx.cursor()
        sql = stmt.replace("SET ", "SET LOCAL ", 1) if local else stmt
        ctx.run(cur, sql, fetch=None, desc=False)
        name, text = read
        if text is None:
            ctx.run(cur, "SELECT " + ", ".join(["%s"] * len(PARAMS)), PARAMS)
            ctx.run(cur, "SELECT " + ", ".join(["%s AS p"] * len(PARAMS)), PARAMS)
        elif name == "table":
            ctx.run(cur, text)
            ctx.run(cur, text + " LIMIT 5")
        else:
            for literal in text:  # one per statement: a type stock cannot read fails alone
                ctx.run(cur, f"SELECT {literal} AS v")
                ctx.run(cur, f"SELECT {literal} AS v WHERE true")
    return run


for _stmt in SETS:
    for _read in READS:
        CASES[f"settings: {_stmt} / {_read[0]}"] = settings_case(_stmt, _read)
    if _stmt.startswith("SET ") and "search_path" not in _stmt:
        CASES[f"settings: LOCAL {_stmt} / literals"] = settings_case(_stmt, READS[0], local=True)


@case("settings: search_path switches a table's type")
def _(ctx):
    cur = ctx.cursor()
    for path in ("probe_a", "probe_b", "probe_a"):
        ctx.run(cur, f"SET search_path = {path}", fetch=None, desc=False)
        for _ in range(3):  # repeats: remembered descriptions and prepared statements
            ctx.run(cur, "SELECT x FROM t")
            ctx.run(cur, "SELECT x FROM t WHERE x IS NOT NULL LIMIT 1")
    ctx.run(cur, "RESET search_path", fetch=None, desc=False)


@case("settings: reset and RESET ALL read back")
def _(ctx):
    cur = ctx.cursor()
    ctx.run(cur, "SET TIME ZONE 'Asia/Tokyo'", fetch=None, desc=False)
    ctx.run(cur, "SELECT '2020-06-01 12:00+00'::timestamptz")
    ctx.run(cur, "RESET TIME ZONE", fetch=None, desc=False)
    ctx.run(cur, "SELECT '2020-06-01 12:00+00'::timestamptz")
    ctx.run(cur, "SET DateStyle = 'German'", fetch=None, desc=False)
    ctx.run(cur, "RESET ALL", fetch=None, desc=False)
    ctx.run(cur, "SELECT '2020-06-01 12:00+00'::timestamptz, '2020-02-29'::date")


@case("settings: standard_conforming_strings off with backslash params")
def _(ctx):
    cur = ctx.cursor()
    ctx.run(cur, "SET standard_conforming_strings = off", fetch=None, desc=False)
    for _ in range(3):
        ctx.run(cur, "SELECT %s, %s, length(%s)", ["a\\b", "it's \\' x", "\\\\"])
        ctx.run(cur, "SELECT s FROM probe_t WHERE s = %s", ["a\\b"])


@case("settings: DISCARD ALL")
def _(ctx):
    cur = ctx.cursor()
    ctx.run(cur, "SET TIME ZONE 'Asia/Tokyo'", fetch=None, desc=False)
    ctx.run(cur, "DISCARD ALL", fetch=None, desc=False)
    ctx.run(cur, "SELECT '2020-06-01 12:00+00'::timestamptz")


# ------------------------------------------------------------------ (c) unaliased values


class Color(enum.Enum):
    RED = 1


VALUES = {
    "int": 7, "neg int": -7, "bigint": 2**40, "huge int": 10**30, "float": 1.5, "nan": float("nan"),
    "inf": float("-inf"), "decimal": decimal.Decimal("1.50"), "decimal nan": decimal.Decimal("NaN"),
    "str": "x", "empty str": "", "bool": True, "none": None, "date": datetime.date(2020, 1, 2),
    "datetime": datetime.datetime(2020, 1, 2, 3, 4, 5),
    "aware": datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "time": datetime.time(3, 4, 5), "aware time": datetime.time(3, 4, tzinfo=datetime.timezone.utc),
    "timedelta": datetime.timedelta(days=1, seconds=5), "uuid": uuid.UUID(int=5), "bytes": b"\x00a",
    "bytearray": bytearray(b"ab"), "memoryview": memoryview(b"ab"), "int list": [1, 2], "str list": ["a", "b"],
    "empty list": [], "date list": [datetime.date(2020, 1, 2)], "enum": Color.RED,
}
SHAPES = {
    "bare": "SELECT %s", "parenthesized": "SELECT (%s)", "subquery star": "SELECT * FROM (SELECT %s) s",
    "cast": "SELECT %s::text", "where and aliased": "SELECT %s AS v WHERE %s IS NOT NULL",
}
for _label, _v in VALUES.items():
    for _shape, _sql in SHAPES.items():
        def _value_case(ctx, v=_v, sql=_sql):
            cur = ctx.cursor()
            ctx.run(cur, sql, [v] * sql.count("%s"))
        CASES[f"value: {_label} / {_shape}"] = _value_case

# Where a bare placeholder can stand (its column named as stock's literal names it), for a
# few values whose literal carries a cast and a few whose does not.
MORE_SHAPES = {
    "union": "SELECT %s UNION ALL SELECT %s", "cte": "WITH x AS (SELECT %s) SELECT * FROM x",
    "distinct": "SELECT DISTINCT %s", "distinct on": "SELECT DISTINCT ON (1) 1 AS k, %s",
    "order by position": "SELECT %s, 2 AS two ORDER BY 2", "comment after": "SELECT %s -- note",
    "escape string before": "SELECT E'a\\'b' AS e, %s", "exists": "SELECT EXISTS (SELECT %s) AS e",
    "from series": "SELECT %s FROM generate_series(1, 2) LIMIT 1", "case": "SELECT CASE WHEN true THEN %s END",
    "values": "SELECT * FROM (VALUES (%s)) v", "row": "SELECT (%s, 1)", "function": "SELECT coalesce(%s)",
    "compared": "SELECT %s = %s", "returning": "UPDATE probe_t SET s = s WHERE id = 1 RETURNING id, %s",
    "mixed": "SELECT %s AS a, %s, (%s), 1", "for update": "SELECT %s FOR UPDATE",
    "insert select": "INSERT INTO probe_t (id, d) SELECT 50, %s WHERE false RETURNING d",
    "select into": "SELECT %s INTO TEMP probe_into; SELECT * FROM probe_into",
}
for _label in ("date", "int list", "str"):
    for _shape, _sql in MORE_SHAPES.items():
        def _value_case(ctx, v=VALUES[_label], sql=_sql):
            cur = ctx.cursor()
            ctx.run(cur, sql, [v] * sql.count("%s"))
        CASES[f"value: {_label} / {_shape}"] = _value_case


# ------------------------------------------------------------------ (d) rowcount after utility statements

UTILITY = [
    "CREATE TEMP TABLE probe_tmp (x int)", "DO $$ BEGIN END $$", "SET work_mem = '8MB'", "RESET work_mem",
    "SHOW work_mem", "SELECT 1 WHERE false", "VALUES (1), (2)", "CREATE TEMP TABLE probe_tmp2 AS SELECT 1 AS x",
    "COMMENT ON TABLE probe_t IS NULL", "ANALYZE probe_t", "LISTEN probe_chan", "NOTIFY probe_chan",
    "SELECT pg_advisory_unlock_all()", "PREPARE probe_p AS SELECT 1", "DEALLOCATE ALL",
    "INSERT INTO probe_t (id) SELECT 100 WHERE false", "UPDATE probe_t SET s = s WHERE id = 1",
    "DELETE FROM probe_t WHERE id = -1", "SAVEPOINT probe_sp", "LOCK TABLE probe_t IN SHARE MODE",
    "DECLARE probe_c CURSOR FOR SELECT 1", "CREATE INDEX ON probe_t (s)", "TRUNCATE probe_t",
    "SELECT 1; SELECT 2", "CREATE TEMP TABLE probe_tmp3 (x int); INSERT INTO probe_tmp3 VALUES (1)",
    "", "-- nothing",
]
for _stmt in UTILITY:
    def _utility_case(ctx, stmt=_stmt):
        cur = ctx.cursor()
        ctx.do("execute", lambda: cur.execute(stmt), cur=cur)
        ctx.desc(cur)
        ctx.do("executemany", lambda: cur.executemany(stmt, [[], []]) if "%" not in stmt else None, cur=cur)
        ctx.do("execute with params", lambda: cur.execute(stmt, []), cur=cur)
    CASES[f"rowcount: {_stmt or 'empty'}"] = _utility_case


@case("rowcount: executemany of inserts and updates")
def _(ctx):
    cur = ctx.cursor()
    ctx.run(cur, "CREATE TEMP TABLE probe_m (id int PRIMARY KEY, s text)", fetch=None, desc=False)
    ctx.do("insert", lambda: cur.executemany("INSERT INTO probe_m VALUES (%s, %s)", [(1, "a"), (2, "b")]), cur=cur)
    ctx.do("update", lambda: cur.executemany("UPDATE probe_m SET s = %s WHERE id = %s", [("x", 1), ("y", 9)]), cur=cur)
    ctx.do("returning", lambda: cur.executemany("INSERT INTO probe_m VALUES (%s, %s) RETURNING id", [(3, "a"), (4, "b")], returning=True), cur=cur)
    ctx.do("fetchall", cur.fetchall, cur=cur)
    ctx.do("empty", lambda: cur.executemany("INSERT INTO probe_m VALUES (%s, %s)", []), cur=cur)
    ctx.do("duplicate", lambda: cur.executemany("INSERT INTO probe_m VALUES (%s, %s)", [(5, "a"), (1, "b")]), cur=cur)
    ctx.run(cur, "SELECT count(*) FROM probe_m", desc=False)


@case("noise: pid, txid, clock, advisory lock (compared by type only)")
def _(ctx):
    cur = ctx.cursor()
    ctx.do("execute", lambda: cur.execute(
        "SELECT pg_backend_pid(), txid_current(), now(), clock_timestamp(), pg_try_advisory_lock(4242), "
        "pg_advisory_unlock(4242)"), cur=cur)
    ctx.desc(cur)
    ctx.do("fetchone", lambda: tuple(type(v).__name__ for v in cur.fetchone()), cur=cur)
