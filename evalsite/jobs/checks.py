"""Deploy checks (`manage.py check --deploy`) for the services a production site relies on.

Production refuses to start without DATABASE_URL and CELERY_BROKER_URL (settings), but an
explicit SQLite database or file broker, or data folders left inside the code checkout, are
legal and wrong for a deployment: these warn. They live in the jobs app because the web
processes and every worker share these services and folders.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Warning, register

_SHARED = "the web processes and the workers on other machines cannot share it"


@register(deploy=True)
def check_production_services(app_configs=None, **kwargs) -> list[Warning]:
    if settings.CSN_ENV != "production":
        return []
    warnings = []
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        warnings.append(
            Warning(
                f"DATABASE_URL names SQLite ({settings.DATABASES['default']['NAME']}): one file on "
                f"one machine, {_SHARED}",
                hint="DATABASE_URL=postgresql://user:password@host:5432/name",
                id="csn.W001",
            )
        )
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        warnings.append(
            Warning(
                f"CELERY_BROKER_URL names the file broker (folders in CSN_HOME): {_SHARED}",
                hint="CELERY_BROKER_URL=redis://host:6379/0",
                id="csn.W002",
            )
        )
    return warnings + _inside_checkout_warnings()


def _inside_checkout_warnings() -> list[Warning]:
    """MEDIA_ROOT (uploaded and generated audio) or STATIC_ROOT inside the code checkout (the
    default CSN_HOME, ./.csn, is): a fresh clone or redeploy, `git clean -xdf` or
    `make demo ARGS=--reset` (which removes CSN_HOME) deletes it."""
    checkout = Path(settings.BASE_DIR).resolve()
    warnings = []
    for name in ("MEDIA_ROOT", "STATIC_ROOT"):
        folder = Path(getattr(settings, name)).resolve()
        if folder.is_relative_to(checkout):
            warnings.append(
                Warning(
                    f"{name} ({folder}) is inside the code checkout ({checkout}): a fresh clone, "
                    "`git clean -xdf` or `make demo ARGS=--reset` deletes it",
                    hint=f"{name}=/srv/csn/{name.split('_')[0].lower()} or another folder outside "
                    "the checkout",
                    id="csn.W003",
                )
            )
    return warnings
