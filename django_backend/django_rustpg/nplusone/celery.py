"""One N+1 scope per Celery task, through the ``task_prerun``/``task_postrun`` signals.

Installed by the app config (``"django_rustpg.nplusone"`` in INSTALLED_APPS, ``CELERY``
on) or by calling ``install()`` in your Celery app module. Findings are logged per task
(also in "raise" mode: a worker cannot usefully raise after the task ran).
"""

import logging

from . import scope
from . import settings as np_settings

logger = logging.getLogger("django_rustpg.nplusone")

_open = {}
_installed = False


def task_prerun(sender=None, task_id=None, task=None, **kwargs):
    try:
        if np_settings.load().mode == "off":
            return
        name = getattr(task, "name", None) or getattr(sender, "name", None) or "task"
        cm = scope(f"celery:{name}", mode="warn")
        _open[task_id] = (cm, cm.__enter__())
    except Exception:  # never break a task
        logger.exception("django_rustpg.nplusone: could not open a scope for task %s", task_id)


def task_postrun(sender=None, task_id=None, task=None, **kwargs):
    item = _open.pop(task_id, None)
    if item is None:
        return None
    cm, report = item
    try:
        cm.__exit__(None, None, None)
    except Exception:
        logger.exception("django_rustpg.nplusone: could not close the scope of task %s", task_id)
    return report


def install(quiet=False):
    """Connects the signal handlers; False when Celery is not installed (and ``quiet``)."""
    global _installed
    try:
        from celery import signals
    except ImportError:
        if quiet:
            return False
        raise
    if not _installed:
        signals.task_prerun.connect(task_prerun, weak=False, dispatch_uid="django_rustpg_nplusone_prerun")
        signals.task_postrun.connect(task_postrun, weak=False, dispatch_uid="django_rustpg_nplusone_postrun")
        _installed = True
    return True
