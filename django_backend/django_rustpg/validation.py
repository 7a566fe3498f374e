"""``manage.py check --database <alias>``: configuration errors and pool sizing."""

import os

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.validation import BaseDatabaseValidation

from .options import DEFAULT_POOL_MAX_SIZE, validate_options


class DatabaseValidation(BaseDatabaseValidation):
    def check(self, **kwargs):
        issues = super().check(**kwargs)
        settings_dict = self.connection.settings_dict
        try:
            validate_options(settings_dict["OPTIONS"], settings_dict)
        except ImproperlyConfigured as e:
            return [*issues, checks.Error(str(e), obj=self.connection.alias, id="django_rustpg.E001")]
        return [*issues, *self._check_pool_against_max_connections()]

    def _check_pool_against_max_connections(self):
        options = self.connection.settings_dict["OPTIONS"]
        pool = options.get("pool")
        if pool is False:
            return []
        max_size = pool.get("max_size", DEFAULT_POOL_MAX_SIZE) if isinstance(pool, dict) else DEFAULT_POOL_MAX_SIZE
        # gunicorn and most PaaS runners read the worker count from WEB_CONCURRENCY.
        processes = int(os.environ.get("WEB_CONCURRENCY") or 1)
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int"
            )
            max_connections, reserved = cursor.fetchone()
        available = max_connections - reserved
        if max_size * processes <= available:
            return []
        return [
            checks.Warning(
                f"The pool for database {self.connection.alias!r} may open up to {max_size} sessions "
                f"per process × {processes} process(es) = {max_size * processes}, more than the "
                f"server's max_connections ({max_connections}, {reserved} reserved for superusers).",
                hint="Lower OPTIONS['pool']['max_size'], raise max_connections, or put PgBouncer in "
                "front (the worker count is read from WEB_CONCURRENCY).",
                obj=self.connection.alias,
                id="django_rustpg.W001",
            )
        ]
