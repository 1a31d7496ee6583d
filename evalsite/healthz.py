"""/healthz, answered before any other middleware: a load balancer's or supervisor's probe of
gunicorn's port speaks plain HTTP and often sends the machine's address as its Host, which is
none of ALLOWED_HOSTS. Behind the host check it got 400 and logged a DisallowedHost traceback on
every probe; behind the HTTPS redirect, a 301. It reads and sets nothing (no session, cookie,
language or database), so it needs none of what the middleware gives. The load benchmark's
reference request (docs/experimenter.md, "Load benchmark")."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

PATH = "/healthz"  # exactly: /healthz/ and everything else go through the middleware


class HealthCheck:
    """First in MIDDLEWARE: GET or HEAD of exactly /healthz gets {"ok": true}, whatever its
    Host and scheme; any other request goes on down the chain."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == PATH and request.method in ("GET", "HEAD"):
            return JsonResponse({"ok": True})
        return self.get_response(request)
