"""Site-wide pages: the landing page, a health check and the refusal of a form that fails
Django's CSRF check (`csrf_failure`, settings.CSRF_FAILURE_VIEW)."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
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
    """A form that failed the CSRF check: instead of Django's bare page (which says nothing of
    the study), a 403 in the site's style, in the browser's language, that says what was lost
    (the form posted now, nothing before) and how to go on. Only a missing CSRF cookie means the
    browser blocks or cleared cookies; any other `reason` (the token stale after signing in or
    out in another tab, missing from the form, a foreign origin or referer) comes with the
    cookies there, and reloading the page gives the form a valid token. Django has already
    logged `reason` (django.security.csrf); it is not shown."""
    match = request.resolver_match
    participant = match is not None and match.view_name in PARTICIPANT_VIEWS
    page = "cookies_needed" if reason == REASON_NO_CSRF_COOKIE else "page_out_of_date"
    return render(
        request, f"studies/participant/{page}.html", {"participant": participant}, status=403
    )
