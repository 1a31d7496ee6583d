from django.apps import AppConfig


class StimuliConfig(AppConfig):
    name = "evalsite.stimuli"
    default_auto_field = "django.db.models.BigAutoField"
