"""/healthz for a load balancer's probe whose Host is none of ALLOWED_HOSTS.

A probe of gunicorn's port often sends the machine's address as its Host. Behind Django's host
check it got 400 (the participants' bad-request page) and logged a DisallowedHost traceback on
every probe. This middleware, first in MIDDLEWARE, answers such a probe of exactly /healthz
itself ({"ok": true}: it reads and sets nothing, so it needs none of what the middleware gives).

A /healthz with an allowed Host goes on down the whole chain to `views.healthz`, as it always
did: it is the load benchmark's reference, "a trivial Django view" through the same middleware
as an answer (docs/experimenter.md, "Load benchmark"), and answering it here would make the
reference cheaper than in every run recorded before. What that adds to every request: one
comparison of the path; to /healthz, one host validation (`request.get_host()`)."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse

PATH = "/healthz"  # exactly: /healthz/ and everything else go through the middleware


class HealthCheck:
    """First in MIDDLEWARE: GET or HEAD of exactly /healthz with a Host outside ALLOWED_HOSTS
    gets {"ok": true}; any other request goes on down the chain."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == PATH and request.method in ("GET", "HEAD"):
            try:
                request.get_host()
            except DisallowedHost:
                return JsonResponse({"ok": True})
        return self.get_response(request)
