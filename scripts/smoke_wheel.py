#!/usr/bin/env python3
"""Smoke test of an installed django-rustpg wheel (run by `make wheels` in a fresh venv, from
outside the source tree so the installed package is the one imported): import, connect,
one ORM query. Needs DATABASE_URL (scripts/find_pg.py --run sets it)."""
import os
import sys
import uuid
from urllib.parse import unquote, urlsplit

import django
from django.conf import settings

import django_rustpg
from django_rustpg import dbapi

assert "site-packages" in django_rustpg.__file__, f"not the installed wheel: {django_rustpg.__file__}"

url = urlsplit(os.environ["DATABASE_URL"])
params = dict(
    host=url.hostname or "127.0.0.1", port=url.port or 5432,
    user=unquote(url.username or "postgres"), password=unquote(url.password or ""),
)
name = f"rustpg_wheel_{uuid.uuid4().hex[:8]}"

admin = dbapi.connect(dbname=url.path.lstrip("/") or "postgres", **params)
admin.autocommit = True
admin.cursor().execute(f'CREATE DATABASE "{name}"')
try:
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes"],
        DATABASES={"default": {"ENGINE": "django_rustpg", "NAME": name, "USER": params["user"],
                               "PASSWORD": params["password"], "HOST": params["host"], "PORT": params["port"]}},
        USE_TZ=True,
    )
    django.setup()
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "contenttypes", verbosity=0)
    ContentType.objects.get_or_create(app_label="smoke", model="wheel")
    rows = list(ContentType.objects.filter(app_label="smoke").values_list("model", flat=True))
    objs = list(ContentType.objects.order_by("id"))
    assert rows == ["wheel"], rows
    assert objs and all(o._state.db == "default" for o in objs)
    connection.close()
    dbapi.close_all_pools()
    print(f"smoke ok: django_rustpg {django_rustpg.__version__} on Python {sys.version.split()[0]}, "
          f"Django {django.get_version()}: {len(objs)} rows")
finally:
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
