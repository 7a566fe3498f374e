"""Tables and a logged-in superuser for the HTTP endpoint scenarios, on top of djbench.seed.

    BENCH_ENGINE=psycopg3 DJANGO_SETTINGS_MODULE=djbench.settings_http python -m djbench.http_seed

Prints the session cookie (one line of JSON) that wrk sends to the admin.
"""
import json
import os
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings_http")

SESSION_KEY = "djbenchadminsession0000000000001"


def main():
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY as USER_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.utils import timezone

    # The contrib apps' tables (shop has no migrations: djbench.seed made its tables).
    call_command("migrate", verbosity=0, interactive=False)
    user, _ = User.objects.get_or_create(username="bench", defaults=dict(is_staff=True, is_superuser=True))
    user.set_password("bench")
    user.save()
    data = {USER_KEY: str(user.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
            HASH_SESSION_KEY: user.get_session_auth_hash()}
    Session.objects.update_or_create(session_key=SESSION_KEY, defaults=dict(
        session_data=SessionStore().encode(data), expire_date=timezone.now() + timedelta(days=1)))
    print(json.dumps({"cookie": f"{settings.SESSION_COOKIE_NAME}={SESSION_KEY}"}))


if __name__ == "__main__":
    main()
