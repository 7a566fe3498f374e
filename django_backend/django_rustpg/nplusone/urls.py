"""``path("__nplusone__/", include("django_rustpg.nplusone.urls"))`` (DEBUG only)."""
from django.urls import path

from .report import report_view

app_name = "nplusone"
urlpatterns = [path("", report_view, name="report")]
