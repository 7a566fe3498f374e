from django.db.backends.postgresql.operations import DatabaseOperations as PGDatabaseOperations

from . import _native


class DatabaseOperations(PGDatabaseOperations):
    compiler_module = "django_rustpg.compiler"

    def compose_sql(self, sql, params):
        # Client-side literals, for DDL and display only: statements always bind.
        return _native.mogrify(sql, params, self._hstore_oid())

    def last_executed_query(self, cursor, sql, params):
        # What the cursor was really given (after execute wrappers), with literals.
        try:
            text = cursor.last_executed_query()
        except Exception:
            text = None
        if text is not None:
            return text
        try:
            return self.compose_sql(sql, params)
        except Exception:
            return None

    def _hstore_oid(self):
        conn = self.connection.connection
        return getattr(conn, "hstore_oid", None) if conn is not None else None
