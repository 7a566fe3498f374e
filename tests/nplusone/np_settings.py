"""Django settings for the N+1 detector tests (database: django_rustpg_nplusone)."""
import os
from urllib.parse import parse_qs, unquote, urlsplit

BASE_DIR = os.path.dirname(os.path.abspath(__file__))


def _database():
    url = os.environ.get("DATABASE_URL")
    db = {"ENGINE": "django_rustpg", "NAME": "postgres", "USER": "postgres", "PASSWORD": "",
          "HOST": os.environ.get("PGHOST", "127.0.0.1"), "PORT": os.environ.get("PGPORT", "5432")}
    if url:
        u = urlsplit(url)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        db.update(
            NAME=unquote(u.path.lstrip("/")) or "postgres",
            USER=unquote(u.username) if u.username else q.get("user", "postgres"),
            PASSWORD=unquote(u.password) if u.password else q.get("password", ""),
            HOST=q.get("host") or (unquote(u.hostname) if u.hostname else "127.0.0.1"),
            PORT=str(q.get("port") or u.port or 5432),
        )
    db["TEST"] = {"NAME": os.environ.get("NPLUSONE_TEST_DB", "django_rustpg_nplusone")}
    return db


SECRET_KEY = "nplusone-tests"
DEBUG = True
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": _database()}
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    # The admin (with what it needs): its changelist's repeated COUNT(*) is the
    # framework finding test_framework.py checks.
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.postgres",
    "django_rustpg.nplusone",
    "shop",
]
MIDDLEWARE = [
    "django_rustpg.nplusone.middleware.NPlusOneMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "shop.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": True, "OPTIONS": {
    "context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ],
}}]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_RUSTPG_NPLUSONE = {"MODE": "warn", "THRESHOLD": 2}
