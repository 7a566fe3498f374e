"""django_rustpg: a Django database backend for PostgreSQL with a Rust driver.

Use it with ``DATABASES = {"default": {"ENGINE": "django_rustpg", ...}}``.
"""

__all__ = ["__version__"]

from ._native import __version__  # noqa: E402
