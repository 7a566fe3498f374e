"""ENGINE "django_rustpg.gis": GeoDjango's PostGIS backend on the Rust driver."""
