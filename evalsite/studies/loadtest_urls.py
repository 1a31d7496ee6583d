"""The site's URLs plus the load benchmark's bare-write and bare-POST references and its
clients' list of slot ids (loadtest_settings.py only).
Appended after the site's own patterns, so that those resolve exactly as in production."""

from django.urls import path

from evalsite.studies.loadtest_views import bare_post, bare_write, slot_ids
from evalsite.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    *site_urlpatterns,
    path("loadtest/bare-write", bare_write),
    path("loadtest/bare-post", bare_post),
    path("loadtest/slots/<str:token>", slot_ids),
]
