"""Settings for one engine, chosen by BENCH_ENGINE; the server comes from DATABASE_URL."""
import os
from urllib.parse import parse_qs, unquote, urlsplit

BENCH_DB = os.environ.get("BENCH_DB", "django_rustpg_bench")

# name -> (ENGINE, OPTIONS). psycopg2 runs from its own virtualenv: Django picks
# psycopg 3 whenever it is importable, so the engine string alone cannot select it.
ENGINES = {
    "rustpg": ("django_rustpg", {}),
    "psycopg3": ("django.db.backends.postgresql", {}),
    "psycopg3_pool": ("django.db.backends.postgresql", {"pool": True}),
    "psycopg2": ("django.db.backends.postgresql", {}),
    # Prepared plans on both sides (benches/latency.py's prep5 group); Django's default is None.
    # Stock Django binds client-side unless told otherwise, and psycopg prepares only
    # statements whose text repeats: server_side_binding is what lets it prepare at all.
    "rustpg_prep5": ("django_rustpg", {"prepare_threshold": 5}),
    "psycopg3_prep5": ("django.db.backends.postgresql", {"prepare_threshold": 5, "server_side_binding": True}),
}
ENGINE_NAME = os.environ.get("BENCH_ENGINE", "psycopg3")


def server_params(url=None):
    """DATABASE_URL -> HOST/PORT/USER/PASSWORD (HOST may be a socket directory)."""
    u = urlsplit(url or os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    return {
        "HOST": q.get("host") or unquote(u.hostname or "") or "127.0.0.1",
        "PORT": str(q.get("port") or u.port or 5432),
        "USER": unquote(u.username or "") or q.get("user") or "postgres",
        "PASSWORD": unquote(u.password or "") or q.get("password", ""),
    }


_engine, _options = ENGINES[ENGINE_NAME]
DATABASES = {
    "default": {
        "ENGINE": _engine,
        "NAME": BENCH_DB,
        "OPTIONS": dict(_options),
        "CONN_MAX_AGE": 0,  # Django's default; pool=True requires it
        **server_params(),
    }
}

SECRET_KEY = "bench"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["djbench.shop"]
MIDDLEWARE = []
ROOT_URLCONF = "djbench.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING_CONFIG = None
