"""Forwarded headers count only when the request comes from a trusted proxy.

Behind the TLS-terminating proxy (CSN_BEHIND_PROXY) the site reads the client's address from
X-Forwarded-For (evalsite/login_throttle.py: the login lockout and the entry limit) and HTTPS
from X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER). Any client that reaches gunicorn's port
directly could send both, so they are dropped from every request whose direct peer
(REMOTE_ADDR) is not in CSN_TRUSTED_PROXIES. A peer with no address (gunicorn on a Unix socket,
which only processes on that machine with the file's permissions can reach) counts as trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def from_trusted_proxy(request: HttpRequest) -> bool:
    """Whether the request's direct peer is one of CSN_TRUSTED_PROXIES."""
    peer = request.META.get("REMOTE_ADDR") or ""
    if not peer:
        return True
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # not an address: nothing to match, so nothing to trust
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    return any(address in network for network in _networks(tuple(settings.CSN_TRUSTED_PROXIES)))


@lru_cache(maxsize=8)
def _networks(spelled: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in spelled)


class TrustedProxyMiddleware:
    """First in MIDDLEWARE: removes the X-Forwarded-* headers of a request from an untrusted
    peer before SecurityMiddleware (HTTPS redirect) or anything else reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not from_trusted_proxy(request):
            for key in [k for k in request.META if k.startswith("HTTP_X_FORWARDED_")]:
                del request.META[key]
        return self.get_response(request)
