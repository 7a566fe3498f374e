from django.apps import AppConfig


class NPlusOneConfig(AppConfig):
    """Optional: add "django_rustpg.nplusone" to INSTALLED_APPS to validate the settings
    at startup (``manage.py check`` fails on a bad IGNORE entry) and, when Celery is
    installed and ``CELERY`` is on, to open a scope per task."""

    name = "django_rustpg.nplusone"
    label = "django_rustpg_nplusone"
    verbose_name = "django_rustpg N+1 detection"

    def ready(self):
        from . import settings

        cfg = settings.load()
        if cfg.celery and cfg.mode != "off":
            from . import celery as np_celery

            np_celery.install(quiet=True)
