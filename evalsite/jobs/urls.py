from django.urls import path

from evalsite.jobs import views

app_name = "jobs"
urlpatterns = [
    path("study/<int:pk>/", views.study_page, name="study"),
    path("study/<int:pk>/fragment", views.study_fragment, name="study_fragment"),
    path("study/<int:pk>.json", views.study_json, name="study_json"),
    path(
        "study/<int:pk>/<str:action>",
        views.queue,
        name="queue",
    ),
]
