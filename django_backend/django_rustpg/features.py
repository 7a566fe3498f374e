import django
from django.db.backends.postgresql.features import DatabaseFeatures as PGDatabaseFeatures
from django.utils.functional import cached_property

_SSC = "backends.postgresql.test_server_side_cursors.ServerSideCursorsPostgres."


class DatabaseFeatures(PGDatabaseFeatures):
    @cached_property
    def uses_server_side_binding(self):
        # The driver always binds on the server.
        return True

    # Django 6.1 derives a 65,535-parameter cap from server-side binding and splits
    # bulk_create(), bulk_update(), in_bulk() and deletes into batches under it. The driver
    # renders a statement past the protocol's 65,535 parameters client-side, as stock's
    # default binding does, so the batches (and statements) stay stock's default ones.
    max_query_params = None

    @cached_property
    def django_test_skips(self):
        skips = {
            reason: tests
            for reason, tests in super().django_test_skips.items()
            # last_executed_query() renders what the cursor was really given.
            if reason != "The actual query cannot be determined for server side bindings"
        }
        return skips

    @cached_property
    def django_test_expected_failures(self):
        expected = set(super().django_test_expected_failures)
        # Identical parameter values share one placeholder, so PostgreSQL sees the SELECT
        # and GROUP BY expressions as equal (Django #34255): this passes here.
        expected.discard(
            "aggregation.tests.AggregateTestCase.test_group_by_nested_expression_with_params"
        )
        expected.update(
            {
                # These count the rows of pg_cursors while the counting query itself runs.
                # psycopg sends parameterless queries with the simple protocol; the
                # driver always uses the extended protocol, whose unnamed portal is listed
                # in pg_cursors, so every count is one higher. The named cursors themselves
                # are as expected (name, not holdable, not scrollable, not binary).
                _SSC + "test_server_side_cursor",
                _SSC + "test_values",
                _SSC + "test_values_list",
                _SSC + "test_values_list_flat",
                _SSC + "test_values_list_fields_not_equal_to_names",
                _SSC + "test_server_side_cursor_many_cursors",
                _SSC + "test_server_side_cursors_setting",
                _SSC + "test_closed_server_side_cursor",
                # Assert psycopg cursor classes: Django's ServerBindingCursor, and a
                # subclass of Django's psycopg Cursor as OPTIONS["cursor_factory"] (which
                # this backend rejects with ImproperlyConfigured: it needs its own cursor).
                "backends.postgresql.tests.Tests.test_connect_server_side_binding",
                "backends.postgresql.tests.Tests.test_connect_custom_cursor_factory",
            }
        )
        if django.VERSION >= (5, 0):
            # Asserts that psycopg's server-side binding makes a DISTINCT/ORDER BY query
            # with a string parameter fail. Here it fails too: untyped strings are not
            # shared between placeholders (see bind.rs), so ORDER BY COALESCE(f, $2)
            # differs from the select list's COALESCE(f, $1).
            expected.add(_SSC + "test_server_side_binding")
        if "max_query_params" in PGDatabaseFeatures.__dict__:
            # Asserts psycopg's coupling of server-side binding with a 65,535-parameter cap;
            # here max_query_params is None (see above), so batches are stock's default ones.
            expected.add("backends.postgresql.test_features.FeaturesTests."
                         "test_max_query_params_respects_server_side_params")
        return expected
