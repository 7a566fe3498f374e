from django.db.backends.postgresql.creation import DatabaseCreation as PGDatabaseCreation


class DatabaseCreation(PGDatabaseCreation):
    pass
