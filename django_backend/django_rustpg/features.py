from django.db.backends.postgresql.features import DatabaseFeatures as PGDatabaseFeatures
from django.utils.functional import cached_property


class DatabaseFeatures(PGDatabaseFeatures):
    @cached_property
    def uses_server_side_binding(self):
        # The driver always binds on the server.
        return True

    @cached_property
    def django_test_skips(self):
        skips = dict(super().django_test_skips)
        return skips

    @cached_property
    def django_test_expected_failures(self):
        expected = set(super().django_test_expected_failures)
        # The driver gives identical typed values one placeholder, so PostgreSQL sees
        # SELECT and GROUP BY expressions with parameters as equal (Django #34255).
        expected.discard(
            "aggregation.tests.AggregateTestCase.test_group_by_nested_expression_with_params"
        )
        return expected
