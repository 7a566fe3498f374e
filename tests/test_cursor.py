"""The cursor (driver contract §4): fetching, description, rowcount, executemany,
server-side (named) cursors."""
import uuid
from decimal import Decimal

import psycopg
import pytest

from django_rustpg import dbapi


@pytest.fixture
def table(conn):
    name = f"t_cur_{uuid.uuid4().hex[:10]}"
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text)")
    cur.close()
    yield name
    conn.rollback()
    conn.autocommit = True
    conn.cursor().execute(f"DROP TABLE IF EXISTS {name}")


# ---------------------------------------------------------------- fetching


def test_fetchone_fetchmany_fetchall(conn):
    cur = conn.cursor()
    cur.execute("SELECT generate_series(1, 7)")
    assert cur.rownumber == 0
    assert cur.fetchone() == (1,)
    assert cur.arraysize == 1
    assert cur.fetchmany() == [(2,)]
    assert cur.fetchmany(3) == [(3,), (4,), (5,)]
    assert cur.rownumber == 5
    assert cur.fetchall() == [(6,), (7,)]
    assert cur.fetchone() is None
    assert cur.fetchall() == []
    done = cur.fetchmany(5)
    assert done == [] and type(done) is list  # iter(cursor.fetchmany, []) must stop
    cur.arraysize = 4
    cur.execute("SELECT generate_series(1, 6)")
    assert cur.fetchmany() == [(1,), (2,), (3,), (4,)]
    # Django's compiler: iter(lambda: cursor.fetchmany(n), []) terminates.
    cur.execute("SELECT generate_series(1, 10)")
    chunks = list(iter(lambda: cur.fetchmany(3), []))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]


def test_rows_are_tuples(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1, 'a', NULL")
    row = cur.fetchone()
    assert type(row) is tuple and row == (1, "a", None)
    cur.execute("SELECT 1 WHERE false")
    assert cur.fetchall() == []


def test_rows_of_plain_values_are_not_tracked_by_the_collector(conn):
    """As CPython's collector would untrack them on its first pass; a row holding a
    container stays tracked, so a cycle through it is still collected."""
    import gc

    cur = conn.cursor()
    cur.execute("SELECT 1, 'a', NULL, 1.5::float8, now(), gen_random_uuid()::text FROM generate_series(1, 3)")
    gc.disable()  # no collection may untrack them before they are looked at
    try:
        assert not any(gc.is_tracked(row) for row in cur.fetchall())
    finally:
        gc.enable()
    cur.execute("SELECT 1, ARRAY[1, 2]")
    row = cur.fetchone()
    assert gc.is_tracked(row)
    row[1].append(row)  # a cycle through the row: the collector must still see it
    del row
    assert gc.collect() >= 2


def test_decimals_and_uuids_are_not_tracked_and_still_freed_in_a_cycle(conn):
    """Nothing in a Decimal or a UUID can refer back to a container (Python 3.13 tracks
    Decimals only because their class is a heap type), so the decoders untrack them, and a
    row of them too. A cycle that holds one is still collected, and the value with it."""
    import decimal
    import gc
    import uuid
    import weakref

    cur = conn.cursor()
    cur.execute("SELECT 1.5::numeric, gen_random_uuid(), '1.25'::numeric(6, 2)")
    row = cur.fetchone()
    assert [type(v) for v in row] == [decimal.Decimal, uuid.UUID, decimal.Decimal]
    assert not gc.is_tracked(row) and not any(gc.is_tracked(v) for v in row)
    u = row[1]
    assert u == uuid.UUID(str(u)) and hash(u) == hash(uuid.UUID(str(u))) and u.version == 4
    gone = weakref.ref(u)
    holder = [u]
    holder.append(holder)
    del row, u, holder
    gc.collect()
    assert gone() is None


def test_a_substituted_decimal_class_with_a_dict_stays_tracked(run_child):
    """Off the modelled ground: decimal.Decimal replaced, before the driver loads, by a class
    whose instances have a __dict__ (they could come to hold a container). Its values, and
    the rows holding them, stay tracked, as CPython leaves them."""
    out = run_child(
        "import ast, decimal, gc, sys\n"
        "class Decimal(decimal.Decimal):\n    pass\n"
        "decimal.Decimal = Decimal\n"
        "from django_rustpg import dbapi\n"
        "c = dbapi.connect(**ast.literal_eval(sys.argv[1])).cursor()\n"
        "c.execute('SELECT 1.5::numeric, 2')\n"
        "row = c.fetchone()\n"
        "print(type(row[0]).__qualname__, row[0] == Decimal('1.5'), gc.is_tracked(row[0]), gc.is_tracked(row))\n")
    assert out == ["Decimal", "True", "True", "True"]


def test_iteration(conn):
    cur = conn.cursor()
    cur.execute("SELECT generate_series(1, 5)")
    assert cur.fetchone() == (1,)
    assert [r for r in cur] == [(2,), (3,), (4,), (5,)]
    assert list(cur) == []
    cur.execute("SELECT 'x'")
    assert next(iter(cur)) == ("x",)
    with pytest.raises(StopIteration):
        next(cur)


def test_fetchall_dicts(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1 AS a, 'x' AS b, NULL::int AS c UNION ALL SELECT 2, 'y', 3")
    assert cur.fetchone() == (1, "x", None)
    assert cur.fetchall_dicts() == [{"a": 2, "b": "y", "c": 3}]
    cur.execute("SELECT 1 AS a WHERE false")
    assert cur.fetchall_dicts() == []


def test_no_result_to_fetch(conn):
    cur = conn.cursor()
    cur.execute("SET application_name = 'x'")
    with pytest.raises(dbapi.ProgrammingError):
        cur.fetchone()


# ---------------------------------------------------------------- description


def test_description_fields_match_psycopg(conn, pg):
    name = f"t_desc_{uuid.uuid4().hex[:10]}"
    columns = {
        "vc": "varchar(30)",
        "ch": "char(7)",
        "num": "numeric(5,2)",
        "numneg": "numeric(12,0)",
        "numfree": "numeric",
        "i2": "smallint",
        "i4": "integer",
        "i8": "bigint",
        "f4": "real",
        "f8": "double precision",
        "t": "text",
        "b": "boolean",
        "d": "date",
        "ts": "timestamp(3)",
        "tz": "timestamptz",
        "tm": "time(2)",
        "iv": "interval",
        "u": "uuid",
        "j": "jsonb",
        "ba": "bytea",
        "bits": "bit(5)",
        "ai": "integer[]",
        "av": "varchar(10)[]",
    }
    pg.execute(f"CREATE TABLE {name} ({', '.join(f'{k} {v}' for k, v in columns.items())})")
    try:
        query = f"SELECT * FROM {name}"  # empty: the description still comes (via Describe)
        cur = conn.cursor()
        cur.execute(query)
        ours = cur.description
        theirs = pg.execute(query).description
        assert [c.name for c in ours] == list(columns)
        for o, t in zip(ours, theirs):
            assert o.name == t.name
            assert o.type_code == t.type_code, o.name
            assert o.internal_size == t.internal_size, o.name
            assert (o.precision, o.scale) == (t.precision, t.scale), o.name
            if o.name in ("vc", "ch", "bits"):
                assert o.display_size == t.display_size, o.name
            assert o[0] == o.name and o[1] == o.type_code  # indexable, like a sequence
        by_name = {c.name: c for c in ours}
        assert by_name["vc"].display_size == 30
        assert (by_name["num"].precision, by_name["num"].scale) == (5, 2)
        assert by_name["i4"].type_code == 23 and by_name["i4"].internal_size == 4
        assert cur.fetchall() == []
    finally:
        pg.execute(f"DROP TABLE {name}")


def test_description_none_without_rows(conn, table):
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", [1, "a"])
    assert cur.description is None
    cur.execute("SET application_name = 'x'")
    assert cur.description is None
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s) RETURNING id, name", [2, "b"])
    assert [d.name for d in cur.description] == ["id", "name"]
    assert cur.fetchall() == [(2, "b")]


def test_description_for_empty_select(conn, table):
    cur = conn.cursor()
    cur.execute(f"SELECT id, name AS label FROM {table} WHERE id = %s", [42])
    assert [(d.name, d.type_code) for d in cur.description] == [("id", 23), ("label", 25)]
    assert cur.fetchone() is None
    cur.execute("SELECT %s::numeric(7,3) AS n WHERE false", [Decimal("1")])
    (col,) = cur.description
    assert (col.name, col.type_code, col.precision, col.scale) == ("n", 1700, 7, 3)
    # Updating RETURNING nothing still describes the columns.
    cur.execute(f"UPDATE {table} SET name = 'z' WHERE id = -1 RETURNING id")
    assert [d.name for d in cur.description] == ["id"]


# ---------------------------------------------------------------- rowcount


def test_rowcount(conn, table):
    cur = conn.cursor()
    assert cur.rowcount == -1
    cur.execute(f"INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(1, 5) g")
    assert cur.rowcount == 5
    cur.execute(f"UPDATE {table} SET name = 'x' WHERE id <= %s", [3])
    assert cur.rowcount == 3
    cur.execute(f"UPDATE {table} SET name = 'x' WHERE id > 100")
    assert cur.rowcount == 0
    cur.execute(f"DELETE FROM {table} WHERE id IN (%s, %s)", [4, 5])
    assert cur.rowcount == 2
    cur.execute(f"SELECT * FROM {table}")
    assert cur.rowcount == 3
    cur.execute(f"DELETE FROM {table} RETURNING id")
    assert cur.rowcount == 3
    assert sorted(cur.fetchall()) == [(1,), (2,), (3,)]


# ---------------------------------------------------------------- executemany


def test_executemany_lists_generators_dicts(conn, table, pg):
    cur = conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [[1, "a"], (2, "b")])
    assert cur.rowcount == 2
    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", ((i, f"g{i}") for i in range(3, 6)))
    assert cur.rowcount == 3
    cur.executemany(f"INSERT INTO {table} VALUES (%(id)s, %(name)s)", [{"id": 6, "name": "d"}, {"name": "e", "id": 7}])
    assert cur.rowcount == 2
    cur.executemany(f"UPDATE {table} SET name = %s WHERE id = %s", [["u", 1], ["u", 2], ["u", 99]])
    assert cur.rowcount == 2
    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [])
    assert cur.rowcount == 0
    assert pg.execute(f"SELECT count(*), count(*) FILTER (WHERE name = 'u') FROM {table}").fetchone() == (7, 2)


def test_executemany_returning(conn, table):
    cur = conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s) RETURNING id * 10", [[1, "a"], [2, "b"]], returning=True)
    assert cur.fetchall() == [(10,), (20,)]


def test_executemany_stops_at_the_first_error(conn, table, pg):
    cur = conn.cursor()
    with pytest.raises(psycopg.errors.UniqueViolation):
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [[1, "a"], [1, "b"], [2, "c"]])
    # In autocommit the batch is one transaction, as psycopg's: the first row is undone too.
    assert pg.execute(f"SELECT id FROM {table}").fetchall() == []


# ---------------------------------------------------------------- server-side cursors


def cursors_of(conn):
    """pg_cursors lists the cursors of the current session only: ask through a plain cursor.
    (The unnamed portal of this very query is listed too, with name ''.)"""
    cur = conn.cursor()
    cur.execute("SELECT name, statement, is_holdable, is_scrollable FROM pg_cursors WHERE name <> '' ORDER BY name")
    rows = cur.fetchall()
    cur.close()
    return rows


def test_named_cursor_in_a_transaction(dsn_params, pg):
    c = dbapi.connect(**dsn_params)  # autocommit off, as Django inside atomic()
    try:
        backend = c.info.backend_pid  # (asked first: the first ask runs a query)
        name = "_django_curs_1_sync_1"
        cur = c.cursor(name, scrollable=False)
        assert cur.name == name and cur.withhold is False
        cur.itersize = 4
        cur.execute("SELECT g, %s FROM generate_series(1, 10) g", ["x"])
        # From another connection: the server session last ran the DECLARE.
        activity = pg.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [backend]).fetchone()[0]
        # (Or the release of the savepoint that guards a first run with an untyped value
        # inside a transaction, `session::run::UntypedGuard`; pg_cursors shows the DECLARE.)
        declared = activity.startswith(f'DECLARE "{name}" NO SCROLL CURSOR FOR SELECT')
        assert declared or activity == "RELEASE SAVEPOINT _rustpg_untyped", activity
        ((cname, statement, holdable, scrollable),) = cursors_of(c)
        assert cname == name
        assert statement.startswith(f'DECLARE "{name}" NO SCROLL CURSOR FOR SELECT')
        assert (holdable, scrollable) == (False, False)
        assert [d.name for d in cur.description] == ["g", "?column?"]
        assert cur.fetchone() == (1, "x")
        assert cur.fetchmany(2) == [(2, "x"), (3, "x")]
        assert [r[0] for r in cur] == [4, 5, 6, 7, 8, 9, 10]
        assert cur.fetchmany(3) == []
        cur.close()
        assert cursors_of(c) == []
        c.commit()
    finally:
        c.close()


def test_named_cursor_with_hold_in_autocommit(conn):
    cur = conn.cursor("held_cursor", withhold=True)
    cur.execute("SELECT generate_series(1, 250)")
    ((name, statement, holdable, _),) = cursors_of(conn)
    assert name == "held_cursor" and holdable is True
    assert "WITH HOLD" in statement
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    rows = cur.fetchall()
    assert rows == [(i,) for i in range(1, 251)]
    cur.close()
    assert cursors_of(conn) == []


def test_named_cursor_without_hold_needs_a_transaction(conn):
    cur = conn.cursor("no_hold")
    with pytest.raises(psycopg.errors.NoActiveSqlTransaction):
        cur.execute("SELECT 1")


def test_named_cursor_fetches_in_batches(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        cur = c.cursor("batches")
        cur.itersize = 3
        cur.execute("SELECT generate_series(1, 8)")
        assert cur.fetchone() == (1,)
        probe = c.cursor()
        probe.execute("SELECT 1")  # the named cursor's position lives on the server
        assert cur.fetchmany(4) == [(2,), (3,), (4,), (5,)]
        assert cur.fetchall() == [(6,), (7,), (8,)]
        assert cur.fetchall() == []
        cur.close()
        c.rollback()
    finally:
        c.close()


def test_named_cursor_empty_result_and_description(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        cur = c.cursor("empty_named")
        cur.execute("SELECT 1 AS one, 'a'::text AS two WHERE false")
        assert [d.name for d in cur.description] == ["one", "two"]
        assert cur.fetchall() == []
        cur.close()
        c.rollback()
    finally:
        c.close()


def test_named_cursor_closed_after_transaction_end(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        cur = c.cursor("ends_with_tx")
        cur.execute("SELECT 1")
        c.commit()
        assert cursors_of(c) == []
        c.rollback()
        cur.close()  # the server already dropped it: closing is still fine
    finally:
        c.close()


def test_two_named_cursors_interleaved(dsn_params):
    c = dbapi.connect(**dsn_params)
    try:
        a, b = c.cursor("cur_a"), c.cursor("cur_b")
        a.itersize = b.itersize = 2
        a.execute("SELECT generate_series(1, 4)")
        b.execute("SELECT generate_series(10, 13)")
        assert [a.fetchone(), b.fetchone(), a.fetchone(), b.fetchone()] == [(1,), (10,), (2,), (11,)]
        assert a.fetchall() + b.fetchall() == [(3,), (4,), (12,), (13,)]
        assert [r[0] for r in cursors_of(c)] == ["cur_a", "cur_b"]
        a.close()
        b.close()
        c.rollback()
    finally:
        c.close()


# ---------------------------------------------------------------- misc PEP 249


def test_pep249_extras(conn):
    cur = conn.cursor()
    assert cur.connection is conn
    assert cur.nextset() is None
    cur.setinputsizes([1])
    cur.setoutputsize(10)
    cur.execute("SELECT %s", [1])
    assert cur.query == "SELECT $1"
    assert cur.closed is False


@pytest.mark.parametrize("width", [0, 1, 3, 4, 5, 9])
@pytest.mark.parametrize("binary", [False, True])
def test_rows_of_every_width_with_nulls_empties_and_long_values(conn, pg, width, binary):
    # Rows keep value positions inline up to 4 values and boxed above: both sides of that
    # line, NULLs and empty strings among them, and values too long for 16 bits.
    def column(i):
        kinds = ["NULL::text", "''", "repeat('x', 70000 + g)", "g::text", "NULL::int8", "g::int8 * 3"]
        return f"{kinds[i % len(kinds)]} AS c{i}"

    select = ", ".join(column(i) for i in range(width))
    sql = f"SELECT {select} FROM generate_series(1, 50) g"
    cur = conn.cursor()
    if binary:
        # Bound parameters: the extended protocol (binary results where modelled).
        cur.execute(sql.replace("generate_series(1, 50)", "generate_series(1, %s)"), [50])
    else:
        cur.execute(sql)
    got = cur.fetchall()
    expected = pg.execute(sql).fetchall()
    assert got == expected
    assert len(got) == 50 and all(len(row) == width for row in got)


# ------------------------------------------------------------------ tuples built as rows arrive
EARLY_SQL = (
    "SELECT g, g::text || 'é', now()::date - g, (g * 1.5)::numeric(12, 2), NULLIF(mod(g, 7), 0),"
    " make_timestamptz(2020, 1, 1, 0, 0, 0, 'UTC') + g * interval '1 second', ARRAY[g, -g]"
    " FROM generate_series(1, %s) g"
)


@pytest.mark.parametrize("rows, built", [(5_000, 4_096), (100_000, 65_536)])
def test_large_result_built_into_tuples_as_it_arrives(conn, pg, rows, built):
    """Whole 2,048-row batches are built while the result arrives, up to 65,536 rows; every
    fetch hands out the same rows, in order, as psycopg's."""
    from django_rustpg import _native

    assert _native.EARLY_BATCH == 2048
    expected = pg.execute(EARLY_SQL.replace("%s", str(rows))).fetchall()
    cur = conn.cursor()
    cur.execute(EARLY_SQL, [rows])
    assert cur.early_rows == built
    assert cur.rowcount == rows
    assert [d.name for d in cur.description][0] == "g"
    got = [cur.fetchone(), cur.fetchone()]
    got += cur.fetchmany(built - 3)  # stops one short of the built ones
    assert cur.early_rows == 1 and cur.rownumber == built - 1
    got += cur.fetchmany(5)  # the last built one, then wire rows
    got += list(cur)
    assert cur.fetchone() is None and cur.fetchall() == []
    assert got == expected

    cur.execute(EARLY_SQL, [rows])
    assert cur.fetchall() == expected
    cur.execute(EARLY_SQL, [rows])
    names = [d.name for d in cur.description]
    assert cur.fetchall_dicts() == [dict(zip(names, row)) for row in expected]
    # A new statement drops what the last one built.
    cur.execute(EARLY_SQL, [rows])
    cur.execute("SELECT 1")
    assert cur.early_rows == 0 and cur.fetchall() == [(1,)]


def test_early_built_result_and_errors(conn):
    from django_rustpg import dbapi

    cur = conn.cursor()
    # The server fails after several batches: execute raises, as it did, and the cursor
    # holds nothing from the failed statement.
    with pytest.raises(dbapi.DataError, match="division by zero"):
        cur.execute("SELECT 1 / (g - 9000) FROM generate_series(1, 10000) g")
    assert cur.early_rows == 0
    with pytest.raises(dbapi.ProgrammingError):
        cur.fetchall()
    # A hook of None (materialize: rows fetched by plan) builds no tuples; nor do N+1
    # scopes or executemany, which read the wire rows.
    cur.set_plan_hook(None)
    cur.execute(EARLY_SQL, [5000])
    assert cur.early_rows == 0 and len(cur.fetchall()) == 5000
    cur.execute(EARLY_SQL, [5000])
    assert cur.early_rows == 4096
    cur.close()
    with pytest.raises(dbapi.InterfaceError, match="closed"):
        cur.fetchall()


def test_a_batch_that_cannot_be_built_is_left_for_the_fetch(conn, pg):
    """A value the decoder refuses (a timestamp past year 10K) in the second batch: the first
    batch was built, the rest stays wire rows, and fetchall raises psycopg's error there."""
    from django_rustpg import dbapi

    sql = ("SELECT g, CASE WHEN g = 3000 THEN 'infinity'::timestamp ELSE '2020-01-01'::timestamp END"
           " FROM generate_series(1, 5000) g")
    with pytest.raises(Exception) as stock:
        pg.execute(sql).fetchall()
    cur = conn.cursor()
    cur.execute(sql)
    assert cur.early_rows == 2048
    with pytest.raises(dbapi.DataError) as ours:
        cur.fetchall()
    assert str(ours.value) == str(stock.value)


def test_early_build_on_a_pooled_session_the_server_ended_while_idle(dsn_params, pg):
    """A pooled session died while idle: the read runs again on a fresh session (the stock
    behaviour of a fresh connection), and its rows are built early there too."""
    import time

    from django_rustpg import dbapi

    first = dbapi.connect(**dsn_params)
    first.autocommit = True
    cur = first.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    first.close()  # the session goes back to the pool, idle
    pg.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    again = dbapi.connect(**dsn_params)
    again.autocommit = True
    try:
        cur = again.cursor()
        cur.execute(EARLY_SQL, [5000])
        assert cur.early_rows == 4096
        assert cur.fetchall() == pg.execute(EARLY_SQL.replace("%s", "5000")).fetchall()
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] != pid
    finally:
        again.close()


def test_executemany_in_autocommit_is_all_or_nothing(conn, pg):
    # psycopg pipelines executemany as one implicit transaction: a failing row leaves none
    # of the batch behind, and a batch that succeeds is committed.
    table = f"many_{uuid.uuid4().hex[:8]}"
    pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
    try:
        cur = conn.cursor()
        with pytest.raises(psycopg.errors.UniqueViolation):
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(1, "a"), (2, "b"), (1, "dup"), (3, "c")])
        assert pg.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", iter([(1, "a"), (2, "b")]))
        assert cur.rowcount == 2
        assert pg.execute(f"SELECT id, v FROM {table} ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        pg.execute(f"DROP TABLE {table}")


@pytest.mark.parametrize("autocommit", [True, False])
def test_nul_in_the_query_text_is_refused_and_the_connection_kept(conn, autocommit):
    conn.autocommit = autocommit
    cur = conn.cursor()
    for query in ("SELECT 'a\x00b'", b"SELECT 'a\x00b'"):
        with pytest.raises(psycopg.ProgrammingError, match="NUL"):
            cur.execute(query)
    cur.execute("SELECT 1")
    assert cur.fetchall() == [(1,)]
    assert not conn.closed
    conn.rollback()


def test_named_cursor_executed_again_redeclares(dsn_params):
    c = dbapi.connect(**dsn_params)  # autocommit off, as Django inside atomic()
    try:
        cur = c.cursor("again", scrollable=False)
        cur.execute("SELECT g FROM generate_series(1, 3) g")
        assert cur.fetchone() == (1,)
        cur.execute("SELECT g * 10 FROM generate_series(1, %s) g", [2])
        assert cur.fetchall() == [(10,), (20,)]
        assert cursors_of(c)[0][0] == "again" and len(cursors_of(c)) == 1
        c.commit()
    finally:
        c.close()


def test_a_statement_refused_before_sending_leaves_no_earlier_result(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1, 2")
    with pytest.raises(psycopg.ProgrammingError, match="placeholders"):
        cur.execute("SELECT %s, %s", [1])
    assert cur.description is None
    with pytest.raises(psycopg.ProgrammingError):
        cur.fetchall()


@pytest.mark.parametrize("statement", [
    "SET client_encoding = 'LATIN1'",
    "SET SESSION client_encoding TO 'WIN1252'",
    "SELECT set_config('client_encoding', 'LATIN1', false)",
])
@pytest.mark.parametrize("autocommit", [True, False])
def test_client_encoding_other_than_utf8_is_refused_and_undone(conn, statement, autocommit):
    # The driver speaks UTF-8 only: text would be stored and read mangled ('café' as 'cafÃ©').
    conn.autocommit = autocommit
    cur = conn.cursor()
    with pytest.raises(psycopg.NotSupportedError, match="client_encoding .* not supported"):
        cur.execute(statement)
    cur.execute("SELECT length(%s), %s = 'caf' || chr(233), current_setting('client_encoding')", ["é", "café"])
    assert cur.fetchall() == [(1, True, "UTF8")]
    conn.rollback()


# ---------------------------------------------------------------- against psycopg, step by step


def _steps(conn, run):
    """What `run(conn, step)` observed: each step's result (or exception class), the cursor's
    rowcount and rownumber after it."""
    seen = []

    def step(label, fn, cur=None):
        try:
            got = fn()
            got = None if hasattr(got, "fetchone") else got
        except Exception as e:  # noqa: BLE001
            got = ("raises", type(e).__name__, getattr(getattr(e, "diag", None), "sqlstate", None))
        seen.append((label, got, cur.rowcount if cur else None, cur.rownumber if cur else None))

    run(conn, step)
    seen.append(("status", conn.info.transaction_status))
    return seen


def _same_as_psycopg(dsn_params, pg_conninfo, run, autocommit=False):
    ours = dbapi.connect(**dsn_params)
    stock = psycopg.connect(pg_conninfo, cursor_factory=psycopg.ClientCursor)
    try:
        ours.autocommit = stock.autocommit = autocommit
        expected = _steps(stock, run)
        assert _steps(ours, run) == expected
        return expected
    finally:
        ours.close()
        stock.close()


@pytest.mark.parametrize("statement", [
    "CREATE TEMP TABLE rc_tmp (x int)", "DO $$ BEGIN END $$", "SET work_mem = '8MB'", "RESET work_mem",
    "SHOW work_mem", "CREATE TEMP TABLE rc_tmp2 AS SELECT 1 AS x", "LISTEN rc_chan", "SELECT 1 WHERE false",
    "VALUES (1), (2)", "SET TIME ZONE 'UTC'; SELECT 1", "",
])
@pytest.mark.parametrize("autocommit", [True, False])
def test_rowcount_after_utility_statements_is_psycopgs(dsn_params, pg_conninfo, statement, autocommit):
    # -1 where the command tag carries no count (it was 0 here), as PQcmdTuples reads tags.
    def run(conn, step):
        cur = conn.cursor()
        step("execute", lambda: cur.execute(statement), cur)
        step("again with no parameters", lambda: cur.execute(statement, []), cur)

    steps = _same_as_psycopg(dsn_params, pg_conninfo, run, autocommit)
    if statement.startswith(("CREATE TEMP TABLE rc_tmp (", "DO", "SET work")):
        assert steps[0][2] == -1


def test_executemany_rowcount_is_psycopgs(dsn_params, pg_conninfo):
    # The sum of the command tags' counts (SHOW counts 0), kept when a run fails; a text of
    # several statements is refused, as through psycopg's extended protocol.
    def run(conn, step):
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE many_rc (id int PRIMARY KEY)")
        step("show", lambda: cur.executemany("SHOW work_mem", [[], []]), cur)
        step("inserts", lambda: cur.executemany("INSERT INTO many_rc VALUES (%s)", [(1,), (2,)]), cur)
        step("fails on the third", lambda: cur.executemany("INSERT INTO many_rc VALUES (%s)", [(3,), (4,), (1,)]), cur)
        step("rollback", conn.rollback)
        step("several statements", lambda: cur.executemany("SELECT 1; SELECT 2", [[], []]), cur)
        step("rollback", conn.rollback)

    steps = _same_as_psycopg(dsn_params, pg_conninfo, run)
    assert [s[2] for s in steps[:3]] == [0, 2, 2]


def _named_steps(conn, step):
    cur = conn.cursor("steps", scrollable=False)
    step("rowcount before", lambda: cur.rowcount, cur)
    step("executemany", lambda: cur.executemany("SELECT %s", [[1]]), cur)
    step("fetch before execute", cur.fetchone, cur)
    step("rollback", conn.rollback)
    step("execute", lambda: cur.execute("SELECT 10 / (5 - g) FROM generate_series(1, 9) g"), cur)
    step("fetchone", cur.fetchone, cur)
    step("fetchmany", lambda: cur.fetchmany(2), cur)
    step("fetchone meets the error", cur.fetchone, cur)
    step("rollback", conn.rollback)
    cur.itersize = 2
    step("execute", lambda: cur.execute("SELECT g FROM generate_series(1, 9) g"), cur)
    step("description", lambda: [(d.name, d.type_code) for d in cur.description], cur)
    step("next", lambda: next(cur), cur)
    step("fetchone (after iteration's page)", cur.fetchone, cur)
    step("next (from the page)", lambda: next(cur), cur)
    step("next (a new page)", lambda: next(cur), cur)
    step("scroll", lambda: cur.scroll(2), cur)
    step("fetchone", cur.fetchone, cur)
    step("scroll absolute", lambda: cur.scroll(7, "absolute"), cur)
    step("fetchall", cur.fetchall, cur)
    step("fetchone at the end", cur.fetchone, cur)
    step("commit", conn.commit)
    step("fetchone after commit", cur.fetchone, cur)
    step("fetchall after commit", cur.fetchall, cur)
    step("execute", lambda: cur.execute("SELECT g FROM generate_series(1, 3) g"), cur)
    step("scroll back", lambda: cur.scroll(-1), cur)
    step("rollback", conn.rollback)
    step("close", cur.close)
    step("fetchone after close", cur.fetchone, cur)


def test_named_cursor_step_by_step_as_psycopg(dsn_params, pg_conninfo):
    """Each fetch is the FETCH psycopg sends (no read-ahead: an error in a later row, or the
    cursor gone with its transaction, is met at the same call); rowcount stays -1;
    iteration's pages are apart from fetchone; scroll MOVEs; executemany is refused."""
    steps = _same_as_psycopg(dsn_params, pg_conninfo, _named_steps)
    assert {s[2] for s in steps if s[0] != "status"} <= {-1, None}


def test_scroll_forward_on_a_client_side_result_as_psycopg(dsn_params, pg_conninfo):
    # (Back over fetched rows is NotSupportedError here: they are not kept; README.)
    def run(conn, step):
        cur = conn.cursor()
        step("before execute", lambda: cur.scroll(1), cur)
        cur.execute("SELECT generate_series(1, 7)")
        step("relative", lambda: cur.scroll(2), cur)
        step("fetchone", cur.fetchone, cur)
        step("absolute", lambda: cur.scroll(5, "absolute"), cur)
        step("out of range", lambda: cur.scroll(3), cur)
        step("bad mode", lambda: cur.scroll(1, "sideways"), cur)
        step("fetchall", cur.fetchall, cur)
        conn.rollback()

    _same_as_psycopg(dsn_params, pg_conninfo, run)
