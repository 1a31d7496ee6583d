from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "evalsite.retrieval"
    default_auto_field = "django.db.models.BigAutoField"
