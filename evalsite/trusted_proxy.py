"""Forwarded headers count only when the request comes from a trusted proxy.

Behind the TLS-terminating proxy (CSN_BEHIND_PROXY) the site reads the client's address from
X-Forwarded-For (evalsite/login_throttle.py: the login lockout and the entry limit) and HTTPS
from X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER). Any client that reaches gunicorn's port
directly could send both, so they are dropped from every request whose direct peer
(REMOTE_ADDR) is not in CSN_TRUSTED_PROXIES. A peer with no address (gunicorn on a Unix socket,
which only processes on that machine with the file's permissions can reach) counts as trusted.

Behind the proxy, a drop is logged once per peer address: a proxy on another host or container
that is not listed loses X-Forwarded-Proto, and every HTTPS request then redirects to itself
(SECURE_SSL_REDIRECT), with nothing else in the log to say why. The process remembers the
WARNED_PEERS_MAX addresses seen most lately; an address forgotten is warned about again.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger(__name__)

# The peers already warned about in this process, least lately seen first. Capped: clients
# reaching gunicorn directly can send the headers from any number of addresses, and each would
# otherwise stay here for ever. The least lately seen is forgotten, not the newest ignored, so a
# proxy that moves after that many such clients is still warned about.
WARNED_PEERS_MAX = 64
_warned_peers: OrderedDict[str, None] = OrderedDict()
_warned_lock = threading.Lock()


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
            dropped = [k for k in request.META if k.startswith("HTTP_X_FORWARDED_")]
            for key in dropped:
                del request.META[key]
            if dropped and settings.CSN_BEHIND_PROXY:
                _warn_once(request.META.get("REMOTE_ADDR", ""), dropped)
        return self.get_response(request)


def _warn_once(peer: str, keys: list[str]) -> None:
    with _warned_lock:
        if peer in _warned_peers:
            _warned_peers.move_to_end(peer)  # seen lately: forgotten last
            return
        _warned_peers[peer] = None
        if len(_warned_peers) > WARNED_PEERS_MAX:
            _warned_peers.popitem(last=False)
    # HTTP_X_FORWARDED_PROTO -> X-Forwarded-Proto, as the proxy spelled it
    names = ", ".join(sorted(k[len("HTTP_") :].replace("_", "-").title() for k in keys))
    log.warning(
        "Dropped %s from %s: the address is not in CSN_TRUSTED_PROXIES (%s). If the proxy runs "
        "there, add that address to CSN_TRUSTED_PROXIES: until then every HTTPS request "
        "redirects to itself and the login lockout counts the proxy's address. Logged once "
        "per address.",
        names,
        peer,
        ", ".join(settings.CSN_TRUSTED_PROXIES),
    )
