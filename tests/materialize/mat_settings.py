"""Django settings for the native-materialization equivalence tests (issue #5).

Three aliases on one dedicated database (``django_rustpg_materialize``):

* ``default``: ENGINE django_rustpg, native materialization on (the path under test);
* ``plain``: ENGINE django_rustpg with ``OPTIONS["materialize"] = False`` (Django's own
  iterables, same driver, so any difference to ``default`` is the materializer's);
* ``stock``: Django's own postgresql backend on psycopg 3 (never touched by the native path).
"""
import os
from urllib.parse import parse_qs, unquote, urlsplit

DB_NAME = os.environ.get("MATERIALIZE_TEST_DB", "django_rustpg_materialize")


def server():
    """HOST/PORT/USER/PASSWORD of the server, from DATABASE_URL or PG* or 127.0.0.1:5432."""
    cfg = {
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    }
    url = os.environ.get("DATABASE_URL")
    if url:
        u = urlsplit(url)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        cfg.update(
            USER=unquote(u.username) if u.username else q.get("user", cfg["USER"]),
            PASSWORD=unquote(u.password) if u.password else q.get("password", cfg["PASSWORD"]),
            HOST=q.get("host") or (unquote(u.hostname) if u.hostname else cfg["HOST"]),
            PORT=str(q.get("port") or u.port or cfg["PORT"]),
        )
    return cfg


def _db(engine, **options):
    return {"ENGINE": engine, "NAME": DB_NAME, **server(), "OPTIONS": options, "TEST": {"NAME": DB_NAME}}


SECRET_KEY = "materialize-tests"
DEBUG = False
USE_TZ = True
# Not UTC, so that any confusion between the session zone, the connection's zone and the
# current zone shows up in datetime values.
TIME_ZONE = "America/Chicago"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {
    "default": _db("django_rustpg"),
    "plain": _db("django_rustpg", materialize=False),
    "stock": _db("django.db.backends.postgresql"),
}
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.postgres",
    "mat_app",
]
MEDIA_ROOT = "/tmp/mat_media"


class WriteRouter:
    """Sends writes to ``WRITE_ALIAS`` while it is set (the session fixture writes its data
    through ``stock``, so the data does not depend on the driver's parameter binding), and
    reads to ``READ_ALIAS`` while that is set (counting the calls, for the routing tests)."""

    WRITE_ALIAS = None
    READ_ALIAS = None
    read_calls = 0

    def db_for_write(self, model, **hints):
        return WriteRouter.WRITE_ALIAS

    def db_for_read(self, model, **hints):
        if WriteRouter.READ_ALIAS is None:
            return None
        WriteRouter.read_calls += 1
        return WriteRouter.READ_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True


DATABASE_ROUTERS = ["mat_settings.WriteRouter"]
