from django.urls import path

from evalsite.stimuli import views

app_name = "stimuli"
urlpatterns: list = [
    # Researchers' preview of a clip (login; owner or a visible study). Not a participant URL.
    path("clip/<str:token>", views.clip_audio, name="clip_audio"),
]
