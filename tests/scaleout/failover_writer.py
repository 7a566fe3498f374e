"""Writer process for the failover tests: N threads insert rows through Django, as requests.

    python failover_writer.py ENGINE HOSTS PORTS CONTROL_DIR [THREADS]

ENGINE is django_rustpg or django.db.backends.postgresql (psycopg 3). Every iteration is a
request: close_old_connections() before and after (CONN_MAX_AGE=0, Django's default), one
autocommit INSERT of a unique (thread, n). The test creates CONTROL_DIR/stop to end the run;
the process then writes CONTROL_DIR/result.json: every acknowledged write with its time and server port, and
every error with its time and class (Django's class / the driver's class).
"""

import json
import os
import sys
import threading
import time

engine, hosts, ports, control = sys.argv[1:5]
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 8

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DATABASES={
        "default": {
            "ENGINE": engine,
            "NAME": "postgres",
            "USER": "postgres",
            "HOST": hosts,
            "PORT": ports,
            "OPTIONS": {"target_session_attrs": "read-write", "connect_timeout": 2},
        }
    },
    INSTALLED_APPS=[],
    USE_TZ=True,
    SECRET_KEY="failover",
)
django.setup()

from django.db import close_old_connections, connection  # noqa: E402

acked, errors = [], []
lock = threading.Lock()
stop_file = os.path.join(control, "stop")


def error_class(e):
    cause = e.__cause__ or e.__context__
    name = type(e).__name__
    if cause is not None and type(cause).__name__ != name:
        name += "/" + type(cause).__name__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(e, "sqlstate", None)
    return f"{name}[{sqlstate}]" if sqlstate else name


def writer(tid):
    n = 0
    while not os.path.exists(stop_file):
        n += 1
        close_old_connections()
        try:
            with connection.cursor() as cur:
                cur.execute("INSERT INTO failover_writes (thread, n) VALUES (%s, %s) RETURNING inet_server_port()",
                            [tid, n])
                port = cur.fetchone()[0]
            with lock:
                acked.append((tid, n, time.time(), port))
        except Exception as e:  # noqa: BLE001 - every failure is counted by class
            with lock:
                errors.append((time.time(), error_class(e), str(e).splitlines()[0][:200] if str(e) else ""))
            time.sleep(0.02)
        finally:
            close_old_connections()
    connection.close()


ts = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(os.path.join(control, "result.json"), "w") as f:
    json.dump({"acked": acked, "errors": errors}, f)
