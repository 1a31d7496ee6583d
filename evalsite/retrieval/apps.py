from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "evalsite.retrieval"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # connect the auto-embed receiver and the one that removes a deleted snapshot's file
        from evalsite.retrieval import signals, snapshot  # noqa: F401
