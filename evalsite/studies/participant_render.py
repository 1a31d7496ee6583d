"""What every participant page shares in its response: a page of the current step rendered in
the participant's language (`render_step`), the refusal page (`refused`, and `not_accepting` for
a study not open) and headers that keep a participant page out of every cache (`no_store`).
Kept apart from the views so that the step handlers (`participant_steps`), the entry and page
views (`participant`, `participant_previews`) and the load benchmark's bare views
(`loadtest_views`) use one copy.
"""

from __future__ import annotations

import functools

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from evalsite.studies.models import Participant, Study

# A participant page must never come back from a cache (Back would show a trial already answered):
# the headers Django's never_cache sets, written once. never_cache formats the current date and
# parses and rebuilds Cache-Control on every response: ~8 % of an answer's CPU in-process.
NO_STORE_HEADERS = {"Cache-Control": "max-age=0, no-cache, no-store, must-revalidate, private",
                    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}  # fmt: skip


def no_store(view):
    """never_cache with constant headers (NO_STORE_HEADERS); headers the view set are kept."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        for name, value in NO_STORE_HEADERS.items():
            response.setdefault(name, value)
        return response

    return wrapped


def page_language(study: Study, request: HttpRequest) -> str:
    """The study's language this request asks for (`?lang=`, else the browser's), else its
    first."""
    languages = study.setting("languages") or ["en"]
    wanted = request.GET.get("lang") or translation.get_language_from_request(request)
    return wanted if wanted in languages else languages[0]


def language_links(languages: list[str], path: str, query: QueryDict | None = None) -> list:
    """(code, url) of each language's version of the page at `path`: its query string (the
    study link's recruitment parameters, where it has them) with `lang` set."""
    links = []
    for code in languages:
        q = query.copy() if query is not None else QueryDict(mutable=True)
        q["lang"] = code
        links.append((code, f"{path}?{q.urlencode()}"))
    return links


def render_step(request, p: Participant, template: str, context: dict | None = None, status=200):
    """A participant page (`studies/participant/<template>`) in the participant's language."""
    translation.activate(p.language)
    request.LANGUAGE_CODE = p.language
    page_url = reverse("studies:participant", args=[p.token])
    languages = p.study.setting("languages") or []
    ctx = {"p": p, "study": p.study, "language": p.language, "step": p.step,
           "language_links": language_links(languages, page_url) if len(languages) > 1 else [],
           "page_url": page_url, "can_leave": p.step in Participant.WITHDRAWABLE_STEPS}  # fmt: skip
    if ctx["can_leave"]:
        ctx["study_keeps_withdrawn"] = p.answers_on_leave() == "keep"
    response = render(
        request, f"studies/participant/{template}", ctx | (context or {}), status=status
    )
    response["Content-Language"] = p.language
    return response


def refused(request, message: str, status: int = 403, detail: str = "") -> HttpResponse:
    """The page that refuses a request, with `message` and what to do about it, `detail` (both
    already translated)."""
    ctx = {"message": message, "detail": detail}
    return render(request, "studies/participant/refused.html", ctx, status=status)


def render_welcome(request: HttpRequest, study: Study) -> HttpResponse:
    """The study link's welcome page (the browser check) before any participant exists: its
    form posts back to the link with the link's query string (participant.entry)."""
    language = page_language(study, request)
    translation.activate(language)
    request.LANGUAGE_CODE = language
    languages = study.setting("languages") or []
    links = language_links(languages, request.path, request.GET) if len(languages) > 1 else []
    ctx = {"study": study, "language": language, "step": Participant.Step.BROWSER_CHECK,
           "language_links": links, "preview": study.status == Study.Status.DRAFT}  # fmt: skip
    response = render(request, "studies/participant/browser_check.html", ctx)
    response["Content-Language"] = language
    return response


def not_accepting(request: HttpRequest, study: Study, status: str) -> HttpResponse:
    """The page refusing a newcomer to a study with `status` (not open)."""
    translation.activate(page_language(study, request))
    return refused(request, not_accepting_text(status))


def not_accepting_text(status: str) -> str:
    """What the study's link says to a newcomer while the study is in `status` (not open), in the
    active language: the preview refusals say it too (participant_previews)."""
    if status == Study.Status.CLOSED:  # final (no reopening): nothing to come back to
        return _(
            "This study is no longer accepting participants. Thank you for your interest. "
            "You can close this page."
        )
    return _("This study is not open at the moment. Please try again later.")
