"""Threads that end without closing their connection, and `manage.py check --database`."""

import copy
import gc
import threading

import pytest
from django.db import connection, connections


def _wrapper(alias, **options):
    """This thread's DatabaseWrapper of a database alias added for the test."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["OPTIONS"] = {**settings_dict["OPTIONS"], **options}
    connections.settings[alias] = settings_dict
    return connections[alias]


def test_sessions_of_finished_threads_return_to_an_explicit_pool():
    pool = {"max_size": 2, "timeout": 3}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the cyclic GC must not be what frees them
    try:
        errors = []

        def request():
            w = _wrapper("threads", pool=pool, application_name="rel-threads")
            try:
                with w.cursor() as cur:
                    cur.execute("SELECT 1")
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            # never closed, like a thread Django serves and forgets

        for _ in range(5):
            t = threading.Thread(target=request)
            t.start()
            t.join()
        assert errors == []
    finally:
        if gc_was_enabled:
            gc.enable()


def test_check_database_warns_when_pool_exceeds_max_connections(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    w = _wrapper("check-big", pool={"max_size": 5000})
    try:
        issues = w.validation.check()
    finally:
        w.close()
    assert [i.id for i in issues] == ["django_rustpg.W001"]
    assert "max_connections" in issues[0].msg and "4 process(es)" in issues[0].msg


@pytest.mark.parametrize(
    "options, key",
    [
        ({"pool": {"min_size": 5, "max_size": 2}}, "min_size"),
        ({"pool": {"max_size": 0}}, "max_size"),
        ({"pool": {"timeout": -1}}, "timeout"),
        ({"isolation_level": "serializable"}, "isolation_level"),
        ({"isolation_level": 9}, "isolation_level"),
        ({"no_such_key": 1}, "no_such_key"),
    ],
)
def test_check_database_reports_configuration_errors_naming_the_key(options, key):
    w = _wrapper(f"check-bad-{key}-{len(str(options))}", **options)
    issues = w.validation.check()
    assert [i.id for i in issues] == ["django_rustpg.E001"]
    assert key in issues[0].msg


def test_sane_settings_pass_the_check():
    w = _wrapper("check-ok", pool={"max_size": 4})
    try:
        assert w.validation.check() == []
    finally:
        w.close()


def _select_1(w):
    with w.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchone()[0]


def _connect_elsewhere():
    """Any connect closes the sessions queued by finished threads."""
    other = _wrapper("threads-other")
    other.close()
    _select_1(other)
    other.close()


def test_a_pool_thread_that_opened_the_shared_main_wrapper_does_not_close_it_on_exit():
    from concurrent.futures import ThreadPoolExecutor

    main = connections["default"]  # the object, not the per-thread proxy
    main.close()
    with ThreadPoolExecutor(1) as ex:
        main.inc_thread_sharing()
        try:
            assert ex.submit(_select_1, main).result() == 1
        finally:
            main.dec_thread_sharing()
    # the worker thread ends here, after sharing ended: the session is still the main thread's
    _connect_elsewhere()
    assert _select_1(main) == 1


def test_a_thread_refused_the_main_wrapper_does_not_close_it_on_exit():
    from django.db import DatabaseError

    main = connections["default"]
    main.close()
    errors = []

    def misuse():
        try:
            _select_1(main)  # Django connects, then refuses the foreign thread
        except DatabaseError as e:
            errors.append(e)

    t = threading.Thread(target=misuse)
    t.start()
    t.join()
    assert len(errors) == 1
    _connect_elsewhere()
    assert _select_1(main) == 1  # as on Django's own backend
