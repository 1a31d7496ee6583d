"""Participant pages: one URL per participant (/p/<token>/) that shows the current step, and the
study link that creates or resumes the participant and binds it to the browser.

Every POST names the step it answers; a POST for a step the participant already left changes
nothing and redirects (POST-redirect-GET), so reloads, double clicks and replayed requests are
harmless. The one exception is "Leave the study", honoured from any page that shows it. Pages
and audio are served only to the browser session the participant entered with (or re-entered
with its recruitment id, where flow.may_resume allows it). What each step shows and does is in
`participant_steps`, the sounds in `participant_audio`, the rendering helpers in
`participant_render`, a researcher's previews of a draft in `participant_previews`.
"""

from __future__ import annotations

import functools
import time

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from evalsite.studies import flow, flow_trials, flow_withdraw, participant_sql
from evalsite.studies.entry_limit import NO_KEY, address_key, record_entry, refuses_new
from evalsite.studies.models import Participant, Study
from evalsite.studies.participant_previews import (
    draft_page_over,
    note_preview,
    preview_gone,
    previewing,
)
from evalsite.studies.participant_render import (
    no_store,
    not_accepting,
    page_language,
    refused,
    render_welcome,
)
from evalsite.studies.participant_steps import (
    GET_HANDLERS,
    POST_HANDLERS,
    TRIAL_STEPS,
    post_answer,
    post_browser_check,
)
from evalsite.studies.storable_text import storable, storable_or_empty

# The participant tokens a browser entered as travel in a signed cookie (HMAC with SECRET_KEY:
# it cannot be forged or edited), so a participant request needs no session read from the
# database. Browsers bound before the cookie existed are still recognised by their session.
BINDING_COOKIE = "csn_participants"
SESSION_KEY = "csn_participants"
# A browser holds one participant per study (the next one entering drops the one before: a lab
# computer shared by several people), and none who left the study: leaving unbinds at once, and
# this signed cookie (the token) shows only the page saying they left, for its reloads, for
# LEFT_PAGE_SECONDS or until the next participant enters. docs/site.md "One browser, several
# participants".
LEFT_COOKIE = "csn_left"
LEFT_PAGE_SECONDS = 10 * 60


@no_store
@require_http_methods(["GET", "HEAD", "POST"])
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    """The study link: captures recruitment parameters, creates or resumes the participant.

    A GET resumes a participant it names or the browser entered, and otherwise only shows the
    welcome page (the browser check): the participant is made when its form is posted back to
    this link, query string and all, so that link previewers and mail scanners, which fetch a
    link but post no form, make no participant, are not counted as started and use none of the
    address's entry allowance. The posted browser check is the new participant's first step.
    """
    if not storable(slug):  # %00: no study has it, and PostgreSQL refuses to look it up
        raise Http404
    study = get_object_or_404(Study, slug=slug)
    if not all(storable(request.GET.get(key, "")) for key in flow.PROLIFIC_KEYS):
        return _invalid_link(request, study)
    over = draft_page_over(request, study, study.status)
    if over is not None:  # a preview link, or a draft's welcome page continued after it left draft
        return over
    known = list(dict.fromkeys(request.session.get(SESSION_KEY, []) + _bound(request)))
    # this study's participants the browser holds (several only if bound before one per study)
    ours = dict(
        study.participants.filter(token__in=known).order_by("pk").values_list("token", "step")
    )
    has_id = any(request.GET.get(k) for k in ("PROLIFIC_PID", "pid"))
    # Without an id, only one who has not ended is resumed: after one who finished, left or was
    # screened out, the link is the next person's at this browser, as in a fresh browser.
    unended = [token for token, step in ours.items() if step not in Participant.FINAL_STEPS]
    if unended and not has_id:
        return redirect("studies:participant", unended[-1])
    # A closed or paused study still lets its started participants come back and finish; the
    # same lookup decides who may come back and who is resumed.
    found = flow.find_existing(study, request.GET) if has_id else None
    if study.status == Study.Status.DRAFT:  # previews only: a known id lets no one else in
        allowed = previewing(request, study)
    else:
        allowed = study.is_open or found is not None
    if not allowed:
        return not_accepting(request, study, study.status)
    if found is None and request.method != "POST":
        return render_welcome(request, study)  # nothing stored (the docstring says why)
    key = NO_KEY  # the hashed address a new participant is counted under (entry_limit)
    if found is None and study.status != Study.Status.DRAFT:  # new, and no researcher's preview
        key = address_key(request, study)
        if refuses_new(study, key):
            # The id may be a double click's whose first click made the participant (and was
            # counted) since `found` was looked up: that one is resumed below, not refused.
            found = flow.find_existing(study, request.GET) if has_id else None
            if found is None:
                return _too_many_new(request, study)
    user_agent = storable_or_empty(request.headers.get("User-Agent", ""))
    language = page_language(study, request)
    # every parameter is kept (docs/site.md), but one that cannot be stored (NUL in its name or
    # value: not one a recruitment system sends) is dropped
    params = {k: v for k, v in request.GET.dict().items() if storable(k) and storable(v)}
    try:
        p = flow.create(study, params, user_agent, language) if found is None else None
    except flow.StatusChanged as changed:  # since `allowed` was decided
        if changed.status == Study.Status.OPEN:  # a draft opened: as anyone's, a preview's refused
            return draft_page_over(request, study, changed.status) or redirect(
                request.get_full_path()
            )
        return not_accepting(request, study, changed.status)  # closed or paused
    if p is None:
        # Not created: another entry with the same id made the participant since `found` was
        # looked up (a double click, two tabs); it is resumed by the same rules.
        found = found or flow.find_existing(study, request.GET)
        if found is None or not flow.may_resume(found, request.GET, known):
            return _other_session(request, study)
        p = flow.resume(found, user_agent)
    else:
        record_entry(p, key)
    if request.method == "POST" and request.POST.get("step") == Participant.Step.BROWSER_CHECK:
        post_browser_check(request, p)  # acts only while p is at the browser check
    response = redirect("studies:participant", p.token)
    _bind_entered(request, response, p.token, dropped=set(ours) - {p.token})
    if p.is_preview:
        note_preview(request, response, f"{study.slug}:{p.token}")
    return response


def _bind_entered(request: HttpRequest, response: HttpResponse, token: str, dropped: set[str]):
    """Bind the browser to the participant `token` that entered by the link, dropping `dropped`
    (the study's other participants it held: one per study), and the page of one who left."""
    known = list(dict.fromkeys(request.session.get(SESSION_KEY, []) + _bound(request)))
    tokens = [t for t in known if t not in dropped and t != token] + [token]
    if tokens != _bound(request):
        _bind(response, tokens)
    _unbind_session(request, dropped)
    if LEFT_COOKIE in request.COOKIES:
        response.delete_cookie(LEFT_COOKIE, samesite=settings.SESSION_COOKIE_SAMESITE)


def _unbind_session(request: HttpRequest, tokens: set[str]) -> None:
    """Drop `tokens` from the binding in the server-side session of a browser bound before the
    binding cookie existed (nothing read or written for a browser without one)."""
    held = request.session.get(SESSION_KEY, [])
    if any(t in tokens for t in held):
        request.session[SESSION_KEY] = [t for t in held if t not in tokens]


def _unbind_left(request: HttpRequest, response: HttpResponse, token: str) -> None:
    """Unbind the participant `token`, who left the study, from this browser at once; the page
    saying so stays readable by its reloads (LEFT_COOKIE)."""
    _bind(response, [t for t in _bound(request) if t != token])
    _unbind_session(request, {token})
    response.set_signed_cookie(
        LEFT_COOKIE, token, salt=LEFT_COOKIE, max_age=LEFT_PAGE_SECONDS,
        secure=settings.SESSION_COOKIE_SECURE, httponly=True,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )  # fmt: skip


def _left_page(request: HttpRequest, token: str) -> HttpResponse | None:
    """The page saying the participant `token` left, to the browser it left from (LEFT_COOKIE),
    for a GET; None (refused) otherwise. It shows nothing else and takes no form."""
    if request.method not in ("GET", "HEAD"):
        return None
    try:
        left = request.get_signed_cookie(LEFT_COOKIE, salt=LEFT_COOKIE, max_age=LEFT_PAGE_SECONDS)
    except (KeyError, signing.BadSignature):  # absent, tampered with, or expired
        return None
    p = participant_sql.participant_by_token(token) if left == token else None
    if p is None or p.step != Participant.Step.WITHDRAWN:
        return None
    return _switch_language(request, p) or GET_HANDLERS[p.step](request, p)


def _switch_language(request: HttpRequest, p: Participant) -> HttpResponse | None:
    """The page's language link (?lang=, one of the study's languages): stores it as the
    participant's and redirects to the page without it; None for any other request."""
    lang = request.GET.get("lang")
    if not lang or lang not in (p.study.setting("languages") or []):
        return None
    Participant.objects.filter(pk=p.pk).update(language=lang)
    return redirect("studies:participant", p.token)


def _bind(response: HttpResponse, tokens: list[str]) -> None:
    """Bind the browser to the participants `tokens` (the last 20) with the signed cookie."""
    response.set_signed_cookie(
        BINDING_COOKIE, ",".join(tokens[-20:]), salt=BINDING_COOKIE,
        max_age=settings.SESSION_COOKIE_AGE, secure=settings.SESSION_COOKIE_SECURE,
        httponly=True, samesite=settings.SESSION_COOKIE_SAMESITE,
    )  # fmt: skip


def _too_many_new(request: HttpRequest, study: Study) -> HttpResponse:
    """The refusal of a new participant over the limit per address (entry_limit): 429, saying
    what the person can do and nothing of the participants counted."""
    translation.activate(page_language(study, request))
    return refused(request, _(
        "Too many new sessions of this study were started from your network in a short time. "
        "Please try again in a few minutes."
    ), status=429)  # fmt: skip


def _invalid_link(request: HttpRequest, study: Study) -> HttpResponse:
    """The refusal of a link whose recruitment id cannot be an id (a NUL character: no
    recruitment system sends one, and PostgreSQL cannot store it): 400, nothing created."""
    translation.activate(page_language(study, request))
    return refused(request, _(
        "This study link is not valid. Please open the study again from the page where you "
        "found it (for example, Prolific)."
    ), status=400)  # fmt: skip


def _other_session(request: HttpRequest, study: Study) -> HttpResponse:
    """The refusal of a link naming a participant that started in another session
    (flow.may_resume); it says nothing of that participant, not even its step."""
    translation.activate(page_language(study, request))
    return refused(request, _(
        "This link does not match the session in which the study was started. Please open the "
        "study again from the page where you first started it (for example, Prolific)."
    ))  # fmt: skip


def _bound(request: HttpRequest) -> list[str]:
    """Tokens in this browser's binding cookie ([] when absent, expired or tampered with)."""
    raw = request.COOKIES.get(BINDING_COOKIE)
    if not raw:
        return []
    try:
        tokens, signed_at = _verified_binding(raw)
    except signing.BadSignature:
        return []
    if time.time() - signed_at > settings.SESSION_COOKIE_AGE:  # as TimestampSigner's max_age
        return []
    return list(tokens)


@functools.lru_cache(maxsize=4096)
def _verified_binding(raw: str) -> tuple[tuple[str, ...], int]:
    """The tokens of a binding cookie's value and when it was signed; BadSignature when the
    signature does not match (raised, so never cached). A browser sends the same value with every
    request, and checking its HMAC was ~5 % of an answer's CPU in-process: each value is checked
    once per process (at most 4,096 kept), its age on every request (`_bound`)."""
    probe = HttpRequest()
    probe.COOKIES[BINDING_COOKIE] = raw
    value = probe.get_signed_cookie(BINDING_COOKIE, salt=BINDING_COOKIE)  # no max_age: see _bound
    signed_at = signing.b62_decode(raw.rsplit(":", 2)[1])  # value:timestamp:signature
    return tuple(value.split(",")) if value else (), signed_at


def _not_mine(request: HttpRequest) -> HttpResponse:
    """The refusal of a participant page this browser did not enter (another person's link, or
    its own cookies cleared or blocked since): how to come back, nothing of the participant."""
    return refused(request, _("This page belongs to another session."), detail=_(
        "If you started the study in this browser, its cookies may have been cleared or blocked. "
        "Please allow cookies for this site, then open the study again from the page where you "
        "first started it (for example, Prolific). Your answers so far are kept."
    ))  # fmt: skip


def _is_mine(request: HttpRequest, token: str) -> bool:
    return token in _bound(request) or token in request.session.get(SESSION_KEY, [])


def own_participant(request: HttpRequest, token: str) -> Participant | None:
    """The participant with this token when this browser entered it (its pages and sounds are
    served to no one else); None otherwise."""
    return participant_sql.participant_by_token(token) if _is_mine(request, token) else None


def _is_answer(request) -> bool:
    return request.POST.get("step") in TRIAL_STEPS and "action" not in request.POST


@no_store
def page(request: HttpRequest, token: str) -> HttpResponse:
    if not _is_mine(request, token):
        return _left_page(request, token) or preview_gone(request, token) or _not_mine(request)
    if request.method == "POST" and _is_answer(request):
        said = post_answer(request, token)  # one statement, without loading the participant
        # this page (no URL reversal per answer); saying why when the answer was refused
        return HttpResponseRedirect(request.path + (f"?{said}" if said else ""))
    p = participant_sql.participant_by_token(token)
    if p is None:
        return preview_gone(request, token) or _not_mine(request)
    switched = _switch_language(request, p)
    if switched is not None:
        return switched
    if request.method == "POST":
        if request.POST.get("action") == "withdraw":
            return _leave(request, p)
        if request.POST.get("step") == p.step:
            handler = POST_HANDLERS.get(p.step)
            if handler is not None:
                response = handler(request, p)
                if response is not None:
                    return response
        return redirect("studies:participant", p.token)
    if p.step not in TRIAL_STEPS:  # trial pages record the view together with their own writes
        flow_trials.touch(p, timezone.now())
    return GET_HANDLERS[p.step](request, p)


def _leave(request: HttpRequest, p: Participant) -> HttpResponse:
    """The participant's "Leave the study", their explicit choice: honoured from any page that
    shows the button, a tab left open at an earlier step included (from the step it is at now). The
    browser is unbound from one who left (a double click's second request finds it left)."""
    if request.POST.get("step") in Participant.WITHDRAWABLE_STEPS:
        flow_withdraw.withdraw(p)
    response = redirect("studies:participant", p.token)
    if p.step == Participant.Step.WITHDRAWN:
        _unbind_left(request, response, p.token)
    return response
