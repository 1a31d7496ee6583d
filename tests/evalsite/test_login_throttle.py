"""Experimenter logins: repeated wrong passwords lock a username out from that address."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse

from evalsite.login_throttle import client_ip

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-password-7"


@pytest.fixture
def researcher():
    return get_user_model().objects.create_user("ada", password=PASSWORD)


def _login(client, password, url=None, **extra):
    return client.post(url or reverse("login"), {"username": "ada", "password": password}, **extra)


def _logged_in(client) -> bool:
    return client.get(reverse("studies:dashboard")).status_code == 200


@override_settings(AXES_FAILURE_LIMIT=3)
def test_wrong_passwords_lock_the_username_out_even_with_the_right_one(researcher):
    client = Client()
    for _ in range(2):
        assert _login(client, "wrong").status_code == 200  # the form again, with its error
    locked = _login(client, "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert _login(client, PASSWORD).status_code == 429
    assert not _logged_in(client)


@override_settings(AXES_FAILURE_LIMIT=3)
def test_a_lockout_binds_the_address_so_nobody_locks_a_researcher_out_from_elsewhere(researcher):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        _login(attacker, "wrong")
    assert _login(attacker, PASSWORD).status_code == 429
    researcher_browser = Client(REMOTE_ADDR="198.51.100.4")
    assert _login(researcher_browser, PASSWORD).status_code == 302
    assert _logged_in(researcher_browser)


@override_settings(AXES_FAILURE_LIMIT=3)
def test_a_successful_login_resets_the_count(researcher):
    client = Client()
    for _ in range(2):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3, AXES_COOLOFF_TIME=timedelta(minutes=15))
def test_the_lockout_ends_after_the_cool_off(researcher):
    client = Client()
    for _ in range(3):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 429
    # each attempt during the lockout restarts the wait; then 16 minutes pass with none
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16)
    )
    assert _login(client, PASSWORD).status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_the_admin_login_shares_the_lockout(researcher):
    researcher.is_staff = True
    researcher.save()
    client = Client()
    for _ in range(3):
        _login(client, "wrong")
    response = _login(client, PASSWORD, url="/admin/login/")
    assert response.status_code == 429


@override_settings(CSN_BEHIND_PROXY=True)
def test_behind_the_proxy_the_address_is_the_one_the_proxy_appended(rf):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7", REMOTE_ADDR="127.0.0.1")
    assert client_ip(request) == "203.0.113.7"  # not the client-written 10.9.9.9
    assert client_ip(rf.get("/", REMOTE_ADDR="127.0.0.1")) == "127.0.0.1"


@override_settings(CSN_BEHIND_PROXY=False)
def test_without_a_proxy_a_forwarded_header_is_ignored(rf):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="203.0.113.7", REMOTE_ADDR="198.51.100.4")
    assert client_ip(request) == "198.51.100.4"


@override_settings(CSN_BEHIND_PROXY=True, CSN_TRUSTED_PROXIES=["198.51.100.4"])
@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("203.0.113.7:51234", "203.0.113.7"),  # ip:port, as some proxies write it
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("2001:db8::7", "2001:db8::7"),
        ("unknown", "198.51.100.4"),  # Squid; no address: REMOTE_ADDR
        ("_hidden", "198.51.100.4"),
    ],
)
def test_a_forwarded_entry_is_read_as_a_bare_address_or_not_at_all(rf, forwarded, expected):
    request = rf.get("/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="198.51.100.4")
    assert client_ip(request) == expected


@override_settings(CSN_BEHIND_PROXY=True)
@pytest.mark.parametrize("password", ["wrong", PASSWORD])
def test_a_forwarded_entry_that_is_no_address_does_not_fail_the_login(researcher, password):
    client = Client(raise_request_exception=False, HTTP_X_FORWARDED_FOR="203.0.113.7:51234")
    assert _login(client, password).status_code == (200 if password == "wrong" else 302)
    client = Client(raise_request_exception=False, HTTP_X_FORWARDED_FOR="unknown")
    assert _login(client, password).status_code == (200 if password == "wrong" else 302)


@override_settings(AXES_FAILURE_LIMIT=1)
def test_the_lockout_page_speaks_japanese_to_a_japanese_browser(researcher):
    client = Client(HTTP_ACCEPT_LANGUAGE="ja")
    _login(client, "wrong")
    page = _login(client, PASSWORD).content.decode()
    assert "ログインの失敗が多すぎます" in page and "15分" in page
