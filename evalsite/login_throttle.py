"""Who a login attempt comes from, for django-axes' lockout (settings: AXES_*).

Experimenter accounts see every participant's answers, so their login pages (the site's and the
admin's) lock a username out from an address after repeated wrong passwords. Axes keys the
lockout on the client's address; behind the TLS-terminating proxy the production settings assume
(CSN_BEHIND_PROXY), REMOTE_ADDR is the proxy's own address for every client, so it is read from
X-Forwarded-For instead.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind the proxy the right-most X-Forwarded-For
    entry. The right-most one is the address the proxy itself saw and appended (nginx:
    `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`); entries to its left come
    from the client, which could write any address there to dodge its own lockout."""
    if settings.CSN_BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")
