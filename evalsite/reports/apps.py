"""The reports app."""

from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "evalsite.reports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Load the project's Celery app with Django so @shared_task binds to it (evalsite/__init__
        # no longer imports it eagerly, to keep evalsite.reports.analysis free of Django).
        from evalsite import celery  # noqa: F401
        from evalsite.reports import signals  # noqa: F401  (trial changes queue the report)
