from django.db.backends.postgresql.client import DatabaseClient as PGDatabaseClient


class DatabaseClient(PGDatabaseClient):
    executable_name = "psql"
