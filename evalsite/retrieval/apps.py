from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "evalsite.retrieval"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from evalsite.retrieval import signals  # noqa: F401  (connects the auto-embed receiver)
