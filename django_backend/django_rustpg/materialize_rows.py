"""A materialization plan's statement and objects, fetched through Django's own ``cursor_iter``.

``execute()`` runs the statement and decides the plan (inside the execute when the read may
be large and is built whole: its objects are then built while the result arrives).
``rows()`` stands where Django's ``execute_sql`` result is iterated: batches come from
``_PlanCursor.fetchmany`` (the driver's ``fetch_plan``: rows decoded and objects built in
Rust), chunked and closed by Django's code; the cyclic collector pauses while a batch is
built, and a queryset's full read without Python converters is built as one batch.
"""

import gc
from itertools import chain

from django.db.models.sql import compiler as sql_compiler
from django.db.models.sql.constants import CURSOR, GET_ITERATOR_CHUNK_SIZE

from . import _native


def execute(compiler, iterable, plan_for_rows):
    """Runs the query through Django's cursor wrapper: ``(cursor, plan_for_rows())``;
    ``(None, (None, None))`` when the result is known to be empty.

    ``plan_for_rows()`` decides how the rows are built; the statement's cursor calls it once
    bound (the compiler's select list is known then), so a large result read whole is
    built while it arrives. Called here instead when the execute did not."""
    connection = compiler.connection
    decided = []
    # The SQL execute_sql runs (from the compiler's as_sql); emptied once it returned, so a
    # cursor that kept the hook builds nothing later. (Not a reference to decide itself:
    # that cycle would wait for the collector.)
    statement = []

    def decide(sql):
        # Every cursor made while the hook is armed gets it: connecting may run statements
        # of its own first (Django's version check, connection_created receivers). Only
        # this statement's cursor may build with the plan.
        if decided or not statement or sql != statement[-1]:
            return None
        try:
            decided.append(plan_for_rows())
        except Exception as e:  # raised below, once the statement ran, as before
            decided.append(e)
            return None
        return _early_plan(decided[0], iterable, connection)

    # False: the rows are fetched with fetch_plan, so the cursor builds no tuples early.
    # None (fewer rows than one early batch: nothing is built early): no call at all.
    if iterable.chunked_fetch:
        connection._rustpg_plan_hook = False
    elif _fewer_than_a_batch(compiler.query):
        connection._rustpg_plan_hook = None
    else:
        connection._rustpg_plan_hook = decide
        as_sql = compiler.as_sql

        def as_sql_seen(*args, **kwargs):
            sql_params = as_sql(*args, **kwargs)
            statement.append(sql_params[0])
            return sql_params

        compiler.as_sql = as_sql_seen
    try:
        cursor = compiler.execute_sql(
            CURSOR, chunked_fetch=iterable.chunked_fetch, chunk_size=iterable.chunk_size
        )
    finally:
        statement.clear()
        connection._rustpg_plan_hook = None
        compiler.__dict__.pop("as_sql", None)
    if cursor is None:
        return None, (None, None)
    if not decided:
        return cursor, plan_for_rows()
    if isinstance(decided[0], Exception):
        raise decided[0]
    return cursor, decided[0]


def _fewer_than_a_batch(query):
    """A slice of fewer rows than the cursor offers to an early build at once."""
    return query.high_mark is not None and query.high_mark - query.low_mark < _native.EARLY_BATCH


def _early_plan(decided, iterable, connection):
    """The native plan of a read built up front; None when rows are fetched in chunks."""
    plan, converters = decided
    return plan if plan is not None and built_up_front(iterable, connection, converters) else None


class _PlanCursor:
    """Looks like a DB-API cursor to Django's ``cursor_iter``; fetchmany builds objects.
    ``whole``: every remaining row in one batch (a read built up front), whatever size
    cursor_iter asks for; its next call gets the empty batch that ends the iteration."""

    def __init__(self, cursor_wrapper, plan, whole):
        self._wrapper = cursor_wrapper
        self._fetch = cursor_wrapper.cursor.fetch_plan
        self._plan = plan
        self._whole = whole

    def fetchmany(self, size):
        # Decoding and converters can fail: raise Django's exception classes, as
        # CursorWrapper.fetchmany would.
        with self._wrapper.db.wrap_database_errors:
            if self._whole:
                return self._fetch(self._plan, None)  # rows() pauses the collector around all
            return _gc_paused(self._fetch, self._plan, size)

    def close(self):
        self._wrapper.close()


def _gc_paused(build, *args):
    """``build(*args)`` with no cyclic collection while it runs (else every ~700 new
    containers start one that walks them, and older generations, again); the first one
    after walks the batch once. The collector is left enabled only if it was. A plain
    function, not a context manager: it runs for every query, single-row ones included."""
    if not gc.isenabled():
        return build(*args)
    gc.disable()
    try:
        return build(*args)
    finally:
        gc.enable()


def rows(cursor_wrapper, plan, iterable, converters):
    """An iterator of the plan's objects. ``converters``: the plan's ``(column, converters,
    expression, native_json)`` entries. A read built up front is fetched here; chunks
    otherwise come as it is iterated."""
    # Through Django's own cursor_iter (looked up at call time), so the chunking and
    # cleanup are Django's and its tests' mocks see the same calls.
    connection = cursor_wrapper.db
    whole = built_up_front(iterable, connection, converters)
    chunks = sql_compiler.cursor_iter(
        _PlanCursor(cursor_wrapper, plan, whole),
        connection.features.empty_fetchmany_value,
        None,
        iterable.chunk_size or GET_ITERATOR_CHUNK_SIZE,
    )
    if whole:
        # One fetch_plan call for the whole result: 100-row batches cost a Python call,
        # an error wrapper and a collector pause each (1,000 of them for 100k rows).
        chunks = _gc_paused(list, chunks)
    return chain.from_iterable(chunks)


def built_up_front(iterable, connection, converters):
    """QuerySet._fetch_all's read (Django reads every row before building the first object)
    with no Python code per row (converters run lazily in Django, between objects; Django's
    own JSON converter is pure): building every object then is invisible but for one
    collector pause instead of one per chunk."""
    return (
        not (iterable.chunked_fetch and connection.features.can_use_chunked_reads)
        and iterable.chunk_size == GET_ITERATOR_CHUNK_SIZE
        and all(len(convs) == (1 if native_json else 0) for _, convs, _, native_json in converters)
    )
