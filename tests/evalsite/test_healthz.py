"""/healthz answers 200 to a load balancer's probe whatever Host it sends (many send the
machine's address, not one of ALLOWED_HOSTS) and over plain HTTP, without a DisallowedHost
traceback in the log; every other path keeps Django's host check."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, override_settings

from evalsite import views

pytestmark = pytest.mark.django_db

# As settings.py sets them in production (tests/test_settings.py checks the redirect exemption).
PRODUCTION = {"ALLOWED_HOSTS": ["eval.example.org"], "SECURE_SSL_REDIRECT": True, "DEBUG": False,
              "SECURE_REDIRECT_EXEMPT": [r"^healthz$"]}  # fmt: skip


@override_settings(**PRODUCTION)
@pytest.mark.parametrize("host", ["eval.example.org", "127.0.0.1:8013", "10.0.0.7"])
@pytest.mark.parametrize("method", ["get", "head"])
def test_it_answers_a_load_balancer_probe_whatever_its_host_header(caplog, host, method):
    with caplog.at_level(logging.DEBUG, logger="django.security"):
        response = getattr(Client(HTTP_HOST=host), method)("/healthz")
    assert response.status_code == 200  # over plain HTTP too: no redirect to HTTPS
    if method == "get":
        assert response.json() == {"ok": True}
    assert not [r for r in caplog.records if r.name.startswith("django.security")]


@override_settings(**PRODUCTION)
@pytest.mark.parametrize("path", ["/", "/healthz/", "/healthzz", "/healthz/x", "/admin/"])
def test_it_leaves_every_other_path_to_the_host_check(path):
    assert Client(HTTP_HOST="10.0.0.7").get(path).status_code == 400


@override_settings(**PRODUCTION)
def test_it_leaves_a_healthz_with_an_allowed_host_to_the_view_through_every_middleware():
    """The load benchmark's reference is a trivial Django view behind the same middleware as an
    answer (docs/experimenter.md); the probe's shortcut must not make it cheaper."""
    response = Client(HTTP_HOST="eval.example.org").get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert response.resolver_match.func is views.healthz
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware ran
