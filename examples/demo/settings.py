"""Settings for the demo: one line differs from a stock PostgreSQL project (ENGINE)."""

import os
from urllib.parse import parse_qs, unquote, urlparse

url = urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
query = parse_qs(url.query)

DATABASES = {
    "default": {
        "ENGINE": "django_rustpg",
        "NAME": os.environ.get("DEMO_DB", "django_rustpg_demo"),
        "USER": unquote(url.username or "postgres"),
        "PASSWORD": unquote(url.password or ""),
        "HOST": query.get("host", [url.hostname or ""])[0],
        "PORT": str(url.port or query.get("port", [""])[0] or ""),
    }
}
# The same database on Django's stock backend (psycopg 3), for the side-by-side table at the end.
DATABASES["stock"] = {**DATABASES["default"], "ENGINE": "django.db.backends.postgresql"}
INSTALLED_APPS = ["django.contrib.contenttypes", "demoapp"]
SECRET_KEY = "demo"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_RUSTPG_NPLUSONE = {"MODE": "warn", "THRESHOLD": 5}
