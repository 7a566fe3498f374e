"""Django configured on django_rustpg for backend-level tests; psycopg may not connect."""

import os
from urllib.parse import parse_qs, urlparse

import django
import pytest
from django.conf import settings

URL = os.environ.get("DATABASE_URL", "")


def _database(url):
    u = urlparse(url)
    q = parse_qs(u.query)
    return {
        "ENGINE": "django_rustpg",
        "NAME": (u.path or "/postgres").lstrip("/") or "postgres",
        "USER": u.username or "postgres",
        "PASSWORD": u.password or "",
        "HOST": q.get("host", [u.hostname or ""])[0],
        "PORT": str(u.port or q.get("port", [""])[0] or ""),
    }


if not settings.configured:
    if not URL:
        if os.environ.get("CI"):
            pytest.exit("DATABASE_URL is not set (make test sets it)", returncode=3)
    settings.configure(
        DATABASES={"default": _database(URL or "postgresql://postgres@127.0.0.1:5432/postgres")},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.postgres"],
        USE_TZ=True,
        SECRET_KEY="backend-tests",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


@pytest.fixture(autouse=True, scope="session")
def no_libpq_connections():
    """psycopg is imported for its value classes only: any libpq connection fails the run."""
    import psycopg

    def refuse(*args, **kwargs):
        raise AssertionError("django_rustpg opened a libpq connection through psycopg")

    saved = psycopg.Connection.connect, psycopg.connect
    psycopg.Connection.connect = classmethod(lambda cls, *a, **k: refuse())
    psycopg.connect = refuse
    yield
    psycopg.Connection.connect, psycopg.connect = saved
