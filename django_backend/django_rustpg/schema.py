from django.db.backends.postgresql.schema import DatabaseSchemaEditor as PGDatabaseSchemaEditor

from . import _native


class DatabaseSchemaEditor(PGDatabaseSchemaEditor):
    def quote_value(self, value):
        return _native.mogrify("%s", [value])
