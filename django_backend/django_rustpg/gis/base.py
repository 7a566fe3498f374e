"""DatabaseWrapper for ENGINE "django_rustpg.gis": Django's PostGIS backend (features,
operations, introspection, schema editor) over django_rustpg's DatabaseWrapper (driver,
pool, materialization, N+1).

Geometry, geography and raster columns come back as the server's text output (hex
EWKB / hex WKB raster), which is what stock's psycopg registration (TextLoader) gives and
what GeoDjango's converters parse. Parameters go as hex EWKB text typed with the
database's geometry/geography/raster OIDs, as Django's PostGIS dumpers send them.
"""

from django.contrib.gis.db.backends.postgis import base as postgis_base
from django.contrib.gis.db.backends.postgis.adapter import PostGISAdapter
from django.contrib.gis.db.backends.postgis.features import DatabaseFeatures as PostGISFeatures
from django.contrib.gis.db.backends.postgis.introspection import PostGISIntrospection
from django.contrib.gis.db.backends.postgis.operations import PostGISOperations
from django.contrib.gis.db.backends.postgis.schema import PostGISSchemaEditor
from django.db.backends.base.base import NO_DB_ALIAS

from .. import base as rust_base
from ..features import DatabaseFeatures as RustFeatures
from ..introspection import DatabaseIntrospection as RustIntrospection
from ..operations import DatabaseOperations as RustOperations
from ..schema import DatabaseSchemaEditor as RustSchemaEditor

POSTGIS_TYPES = ("geometry", "geography", "raster")


class DatabaseFeatures(PostGISFeatures, RustFeatures):
    pass


class DatabaseIntrospection(PostGISIntrospection, RustIntrospection):
    pass


class DatabaseSchemaEditor(PostGISSchemaEditor, RustSchemaEditor):
    pass


class Adapter(PostGISAdapter):
    """PostGISAdapter that tells the driver its parameter type and text (hex EWKB)."""

    oids = {}  # type name -> OID, set per database by the operations' factory

    def __rustpg_param__(self):
        if not self.is_geometry:
            return (self.oids.get("raster", 0), self.ewkb.hex())
        return (self.oids.get("geography" if self.geography else "geometry", 0), self.ewkb.hex())


class DatabaseOperations(PostGISOperations, RustOperations):
    @property
    def Adapter(self):
        # A subclass per database: type OIDs differ between databases.
        oids = self.connection.postgis_oids()
        cls = self.connection._adapter_classes.get(tuple(sorted(oids.items())))
        if cls is None:
            cls = type("Adapter", (Adapter,), {"oids": oids})
            self.connection._adapter_classes[tuple(sorted(oids.items()))] = cls
        return cls


class DatabaseWrapper(rust_base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
    introspection_class = DatabaseIntrospection
    # (database alias -> {type name: OID}), shared like Django's PostGIS TypeInfo cache.
    _postgis_oids = {}

    def __init__(self, *args, **kwargs):
        if kwargs.get("alias", "") == NO_DB_ALIAS:
            self.features_class = RustFeatures
            self.ops_class = RustOperations
            self.introspection_class = RustIntrospection
        super().__init__(*args, **kwargs)
        self._adapter_classes = {}

    def prepare_database(self):
        super().prepare_database()
        with self.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = %s", ["postgis"])
            if cursor.fetchone():
                return
            cursor.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        self._postgis_oids.pop(self.alias, None)  # new types: discover again

    def postgis_oids(self):
        oids = self._postgis_oids.get(self.alias)
        if not oids:
            with self.cursor() as cursor:
                cursor.execute(
                    "SELECT typname, oid FROM pg_type WHERE typname = ANY(%s) "
                    "AND typnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'postgis')",
                    [list(POSTGIS_TYPES)],
                )
                oids = {name: int(oid) for name, oid in cursor.fetchall()}
            if oids:
                self._postgis_oids[self.alias] = oids
        return oids


# Django's PostGIS wrapper class, for code that checks it (kept importable, not subclassed:
# its connection setup registers psycopg adapters this driver does not use).
PostGISDatabaseWrapper = postgis_base.DatabaseWrapper
