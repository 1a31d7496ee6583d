"""X-Forwarded-For and X-Forwarded-Proto count only from a trusted proxy (CSN_TRUSTED_PROXIES):
a client that reaches gunicorn directly can neither pick the address the login lockout and the
entry limit count nor make a plain-HTTP request look like HTTPS."""

import logging

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from evalsite import trusted_proxy
from evalsite.login_throttle import client_ip

pytestmark = pytest.mark.django_db

OUTSIDER = "198.51.100.4"  # reaches gunicorn's port directly
PROXY = "127.0.0.1"  # the default trusted proxy: loopback
SPOOFED = {"HTTP_X_FORWARDED_FOR": "203.0.113.7", "HTTP_X_FORWARDED_PROTO": "https"}
BEHIND_PROXY = {
    "CSN_BEHIND_PROXY": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
}


def _seen(remote_addr: str):
    """The request as the view saw it, after the middleware (the landing page: /healthz is
    answered before it, evalsite.healthz)."""
    response = Client(REMOTE_ADDR=remote_addr, **SPOOFED).get(reverse("home"))
    assert response.status_code == 200
    return response.wsgi_request


@override_settings(**BEHIND_PROXY)
def test_forwarded_headers_from_an_untrusted_peer_are_ignored():
    request = _seen(OUTSIDER)
    assert client_ip(request) == OUTSIDER
    assert not request.is_secure()
    assert "HTTP_X_FORWARDED_FOR" not in request.META


@override_settings(**BEHIND_PROXY)
def test_forwarded_headers_from_a_trusted_proxy_count():
    request = _seen(PROXY)
    assert client_ip(request) == "203.0.113.7"
    assert request.is_secure()


@override_settings(**BEHIND_PROXY, CSN_TRUSTED_PROXIES=["10.0.0.0/24", "2001:db8::1"])
@pytest.mark.parametrize(
    ("peer", "trusted"),
    [("10.0.0.9", True), ("2001:db8::1", True), ("10.0.1.9", False), ("127.0.0.1", False)],
)
def test_the_trusted_proxies_are_the_configured_networks(peer, trusted):
    request = _seen(peer)
    assert client_ip(request) == ("203.0.113.7" if trusted else peer)
    assert request.is_secure() is trusted


@override_settings(CSN_BEHIND_PROXY=True)
def test_the_throttle_ignores_a_forwarded_address_from_an_untrusted_peer(rf):
    # Also when called without the middleware (axes calls it with the request it is given).
    request = rf.get("/", HTTP_X_FORWARDED_FOR="203.0.113.7", REMOTE_ADDR=OUTSIDER)
    assert client_ip(request) == OUTSIDER


@override_settings(CSN_BEHIND_PROXY=True, AXES_FAILURE_LIMIT=3)
def test_a_guesser_reaching_gunicorn_directly_cannot_dodge_the_lockout_with_x_forwarded_for():
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("ada", password="a-long-enough-password-7")
    statuses = []
    for n in range(4):
        client = Client(REMOTE_ADDR=OUTSIDER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        form = {"username": "ada", "password": "wrong"}
        statuses.append(client.post(reverse("login"), form).status_code)
    assert statuses == [200, 200, 429, 429]


@override_settings(**BEHIND_PROXY, SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["eval.example.org"])
def test_it_warns_once_per_peer_that_a_proxy_outside_the_trusted_ones_lost_its_headers(caplog):
    # A proxy on another host or container, not listed: every HTTPS request redirects to itself.
    # The warning is what tells the operator why; once per address, not once per request.
    proxy = "172.18.0.5"
    client = Client(REMOTE_ADDR=proxy, HTTP_HOST="eval.example.org", **SPOOFED)
    with caplog.at_level(logging.WARNING, logger="evalsite.trusted_proxy"):
        for _ in range(3):
            response = client.get(reverse("home"))
            assert response.status_code == 301
            assert response["Location"] == "https://eval.example.org" + reverse("home")
    warnings = [r.getMessage() for r in caplog.records if r.name == "evalsite.trusted_proxy"]
    assert len(warnings) == 1, warnings
    for part in (proxy, "X-Forwarded-For", "X-Forwarded-Proto", "CSN_TRUSTED_PROXIES"):
        assert part in warnings[0]


@override_settings(**BEHIND_PROXY)
def test_it_says_nothing_of_requests_from_a_trusted_proxy_or_without_forwarded_headers(caplog):
    with caplog.at_level(logging.WARNING, logger="evalsite.trusted_proxy"):
        _seen(PROXY)
        Client(REMOTE_ADDR="198.51.100.77").get(reverse("home"))
    assert not [r for r in caplog.records if r.name == "evalsite.trusted_proxy"]


@override_settings(**BEHIND_PROXY)
def test_it_remembers_a_bounded_number_of_peers_and_still_warns_of_a_new_one(caplog, monkeypatch):
    # Clients reaching gunicorn directly may send the headers from any number of addresses (a
    # scanner sending X-Forwarded-For); a proxy that moves afterwards is still warned about.
    monkeypatch.setattr(trusted_proxy, "_warned_peers", type(trusted_proxy._warned_peers)())
    scanners = [f"10.9.{n // 256}.{n % 256}" for n in range(trusted_proxy.WARNED_PEERS_MAX + 10)]
    moved_proxy = "172.18.0.9"
    with caplog.at_level(logging.WARNING, logger="evalsite.trusted_proxy"):
        for address in scanners:
            _seen(address)
        _seen(moved_proxy)  # new: warned about
        _seen(moved_proxy)  # once
        _seen(scanners[-1])  # seen lately: still remembered
        _seen(scanners[0])  # forgotten long ago, to keep the memory bounded: warned again
    warned = [r.args[1] for r in caplog.records if r.name == "evalsite.trusted_proxy"]
    assert warned == [*scanners, moved_proxy, scanners[0]]
    assert len(trusted_proxy._warned_peers) == trusted_proxy.WARNED_PEERS_MAX
