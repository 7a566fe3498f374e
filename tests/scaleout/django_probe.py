"""Connects through Django with the given settings and prints the server port (or the error).

    python django_probe.py ENGINE HOST PORT OPTIONS_JSON
"""

import json
import sys

import django
from django.conf import settings

engine, host, port, options = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
settings.configure(
    DATABASES={"default": {"ENGINE": engine, "NAME": "postgres", "USER": "postgres", "HOST": host, "PORT": port,
                           "OPTIONS": options}},
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()
from django.db import connection  # noqa: E402

try:
    with connection.cursor() as cur:
        cur.execute("SELECT inet_server_port()")
        print(json.dumps({"port": cur.fetchone()[0]}))
except Exception as e:  # noqa: BLE001 - reported to the test
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
