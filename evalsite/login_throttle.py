"""Who a login attempt comes from, for django-axes' lockout (settings: AXES_*).

Experimenter accounts see every participant's answers, so their login pages (the site's and the
admin's) lock a username out from an address after repeated wrong passwords. Axes keys the
lockout on the client's address; behind the TLS-terminating proxy the production settings assume
(CSN_BEHIND_PROXY), REMOTE_ADDR is the proxy's own address for every client, so it is read from
X-Forwarded-For instead.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

from evalsite.trusted_proxy import from_trusted_proxy


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind the proxy the right-most X-Forwarded-For
    entry when the request came from a trusted proxy (evalsite/trusted_proxy.py: from any other
    peer the header is the client's own). The right-most entry is the address the proxy itself
    saw and appended (nginx:
    `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`); entries to its left come
    from the client, which could write any address there to dodge its own lockout. An entry that
    is no address (`unknown`, a name) falls back to REMOTE_ADDR: axes stores the address in an
    address column, which would refuse it and fail the login."""
    if settings.CSN_BEHIND_PROXY and from_trusted_proxy(request):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        address = _address(forwarded.rsplit(",", 1)[-1])
        if address:
            return address
    return request.META.get("REMOTE_ADDR")


def _address(entry: str) -> str | None:
    """`entry` as a bare IP address, its port dropped (`1.2.3.4:80`, `[2001:db8::1]:80`, as some
    proxies write it); None if it is none."""
    entry = entry.strip()
    if entry.startswith("["):  # [v6] or [v6]:port
        entry = entry[1:].split("]", 1)[0]
    elif entry.count(":") == 1:  # v4:port (a bare v6 address has several colons)
        entry = entry.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None
