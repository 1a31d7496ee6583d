"""URL map: one include per app, plus login, admin and language switching."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from evalsite import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # The participant pages first: most of the site's requests, resolved against fewer patterns.
    path("", include("evalsite.studies.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("datasets/", include("evalsite.datasets.urls")),
    path("stimuli/", include("evalsite.stimuli.urls")),
    path("reports/", include("evalsite.reports.urls")),
    path("retrieval/", include("evalsite.retrieval.urls")),
    path("jobs/", include("evalsite.jobs.urls")),
]

handler400 = "evalsite.views.bad_request"
handler404 = "evalsite.views.page_not_found"
handler500 = "evalsite.views.server_error"
