from django.urls import path

from evalsite.retrieval import views

app_name = "retrieval"
urlpatterns = [
    path("", views.page, name="page"),
    path("api/search", views.api_search, name="api_search"),
    path("audio/<str:token>", views.audio, name="audio"),
]
