"""The csn-eval Django project: stimuli, studies, reports, retrieval."""

from .celery import app as celery_app

__all__ = ("celery_app",)
