"""A stand-in for psycopg's per-connection ``adapters`` map.

``django.contrib.postgres`` registers hstore and citext on every new connection by calling
psycopg's ``register_hstore(info, conn)`` / ``TypeInfo.register(conn)``. The driver decodes
those types natively (it resolves extension types by name), so registration only needs to
tell it which OID dict parameters should be sent as.
"""


class _Types:
    def add(self, info):
        pass

    def get(self, key):
        return None


class AdaptersShim:
    def __init__(self, connection):
        self._connection = connection
        self.types = _Types()

    def register_dumper(self, cls, dumper):
        if cls is dict and getattr(dumper, "oid", 0):
            self._connection.register_hstore(dumper.oid)

    def register_loader(self, oid, loader):
        pass
