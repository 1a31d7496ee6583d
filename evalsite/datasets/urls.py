from django.urls import path

from evalsite.datasets import views

app_name = "datasets"
urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:slug>/", views.detail, name="detail"),
    path("<slug:slug>/audio/<path:relpath>", views.audio, name="audio"),
]
