"""Site-wide pages: the landing page, a health check, the page of a link to nothing
(`page_not_found`, urls.handler404) and the refusal of a form that fails Django's CSRF check
(`csrf_failure`, settings.CSRF_FAILURE_VIEW)."""

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseServerError,
    JsonResponse,
)
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.shortcuts import render
from django.template import loader
from django.utils import translation

from evalsite.site_language import PARTICIPANT_VIEWS
from evalsite.studies.participant import own_participant
from evalsite.studies.participant_render import no_store


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    """A trivial view: the load benchmark's reference for throughput, through the whole
    middleware. (A probe whose Host is none of ALLOWED_HOSTS is answered before it, by
    evalsite.healthz.HealthCheck.)"""
    return JsonResponse({"ok": True})


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400.html in the request's own language (server_error says why)."""
    return _error_page(request, "400.html", HttpResponseBadRequest)


def server_error(request: HttpRequest) -> HttpResponse:
    """500.html in the request's own language, read from its language cookie or Accept-Language
    here: a request that failed before LocaleMiddleware (a bad Host read by SecurityMiddleware's
    HTTPS redirect) would otherwise get the language the thread last served, another
    participant's. Like Django's default, rendered without context: nothing that can fail again."""
    return _error_page(request, "500.html", HttpResponseServerError)


def _error_page(request: HttpRequest, name: str, response_class) -> HttpResponse:
    language = translation.get_language_from_request(request)
    with translation.override(language):
        response = response_class(loader.get_template(name).render())
    # LocaleMiddleware would give the active language: English on a researcher's page
    # (site_language), where this page is in the browser's language all the same.
    response["Content-Language"] = language
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404.html, in the participant layout and words (most links to nothing are a participant's
    mistyped, cut or outdated study link), or in the site's layout for a signed-in researcher
    (another researcher's study is a 404 too), who has no Prolific page to go back to. That one is
    in English throughout, like its words: its lang and Content-Language too, not the browser's
    language that LocaleMiddleware activated (an address that resolves to no view never reaches
    site_language's middleware, which makes the researchers' pages English)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return render(request, "404.html", {"participant": None}, status=404)
    with translation.override("en"):
        response = render(request, "404.html", {"participant": False}, status=404)
    response["Content-Language"] = "en"  # LocaleMiddleware sets it only where it is not set
    return response


@no_store
def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form that failed the CSRF check: instead of Django's bare page (which says nothing of
    the study), a 403 in the site's style, that says what was lost
    (the form posted now, nothing before) and how to go on. Only a missing CSRF cookie means the
    browser blocks or cleared cookies; any other `reason` (the token stale after signing in or
    out in another tab, missing from the form, a foreign origin or referer) comes with the
    cookies there, and reloading the page gives the form a valid token. Django has already
    logged `reason` (django.security.csrf); it is not shown. It is in the language the
    participant reads the study in when this browser entered the participant whose page this is
    (as that page itself would be), else in the browser's language; on a researcher's page other
    than the login page, in English (site_language activated it)."""
    match = request.resolver_match
    participant = match is not None and match.view_name in PARTICIPANT_VIEWS
    page = "cookies_needed" if reason == REASON_NO_CSRF_COOKIE else "page_out_of_date"
    language = _own_participants_language(request)
    if language is not None:
        translation.activate(language)
        request.LANGUAGE_CODE = language
    response = render(
        request, f"studies/participant/{page}.html", {"participant": participant}, status=403
    )
    if language is not None:
        response["Content-Language"] = language
    return response


def _own_participants_language(request: HttpRequest) -> str | None:
    """The language of the participant whose page this request is for, when this browser entered
    that participant (the check their page makes); None otherwise, so that nothing is read of
    another browser's participant."""
    match = request.resolver_match
    if match is None or match.view_name != "studies:participant":
        return None
    p = own_participant(request, match.kwargs.get("token", ""))
    return p.language if p is not None else None
