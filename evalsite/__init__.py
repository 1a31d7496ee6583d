"""The csn-eval Django project: stimuli, studies, reports, retrieval."""

# The Celery app (cookiecutter-django's `celery_app`) is loaded when Django starts, by
# evalsite.reports.apps.ReportsConfig.ready, and on first access here (`celery -A evalsite`), not
# at import: the pure analysis package (evalsite.reports.analysis) must import without Django.


def __getattr__(name: str):
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(f"module 'evalsite' has no attribute {name!r}")


__all__ = ("celery_app",)
