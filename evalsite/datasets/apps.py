from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "evalsite.datasets"
    default_auto_field = "django.db.models.BigAutoField"
