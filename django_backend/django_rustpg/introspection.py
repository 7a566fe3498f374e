from django.db.backends.postgresql.introspection import (
    DatabaseIntrospection as PGDatabaseIntrospection,
)


class DatabaseIntrospection(PGDatabaseIntrospection):
    pass
