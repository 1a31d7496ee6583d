"""Site-wide pages: the landing page, a health check and the refusal of a form posted without
the CSRF cookie (`csrf_failure`, settings.CSRF_FAILURE_VIEW)."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from evalsite.studies.participant_render import no_store

# The participant side's views (the study link and the participant's pages): their refusal speaks
# of the study; a researcher's page gets the same refusal in neutral words.
PARTICIPANT_VIEWS = {"studies:entry", "studies:participant"}


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    """A trivial view: the load benchmark's reference for throughput."""
    return JsonResponse({"ok": True})


@no_store
def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form posted without a valid CSRF token: in practice a browser that blocks or cleared
    the site's cookies. Instead of Django's bare page (which says nothing of the study), a 403
    in the site's style, in the browser's language, that says what was lost (the form posted
    now, nothing before) and how to go on. `reason` (Django's, for a log) is not shown."""
    match = request.resolver_match
    participant = match is not None and match.view_name in PARTICIPANT_VIEWS
    return render(
        request, "studies/participant/cookies_needed.html", {"participant": participant}, status=403
    )
