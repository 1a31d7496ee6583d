from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "evalsite.jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from evalsite.jobs import checks  # noqa: F401  registers the deploy checks
