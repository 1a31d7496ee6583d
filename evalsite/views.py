"""Site-wide pages: the landing page and a health check."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    """A trivial view: the load benchmark's reference for throughput."""
    return JsonResponse({"ok": True})
