"""Participant pages: one URL per participant (/p/<token>/) that shows the current step.

Every POST names the step it answers; a POST for a step the participant already left changes
nothing and redirects (POST-redirect-GET), so reloads, double clicks and replayed requests are
harmless. Pages and audio are served only to the browser session the participant entered with
(or re-entered with its recruitment id, where flow.may_resume allows it).
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from evalsite.stimuli.audio import normalise, normalised_path, wav_bytes
from evalsite.stimuli.serving import serve_audio
from evalsite.studies import flow, screening
from evalsite.studies.models import Participant, Study
from evalsite.studies.participant_forms import QuestionnaireForm, ScreeningForm, parse_answer
from evalsite.studies.permissions import visible_studies

Step = Participant.Step
# The participant tokens a browser entered as travel in a signed cookie (HMAC with SECRET_KEY:
# it cannot be forged or edited), so a participant request needs no session read from the
# database. Browsers bound before the cookie existed are still recognised by their session.
BINDING_COOKIE = "csn_participants"
SESSION_KEY = "csn_participants"
INSTRUMENTS = {"drums": gettext_lazy("drums"), "bass": gettext_lazy("bass"),
               "piano": gettext_lazy("piano"), "guitar": gettext_lazy("guitar"),
               "others": gettext_lazy("other instruments")}  # fmt: skip
PHONE_UA = re.compile(r"iPhone|iPod|Android.*Mobile|Windows Phone")  # not tablets
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


def _language(study: Study, request: HttpRequest) -> str:
    languages = study.setting("languages") or ["en"]
    wanted = request.GET.get("lang") or translation.get_language_from_request(request)
    return wanted if wanted in languages else languages[0]


def _render(request, p: Participant, template: str, context: dict | None = None, status=200):
    translation.activate(p.language)
    request.LANGUAGE_CODE = p.language
    ctx = {"p": p, "study": p.study, "languages": p.study.setting("languages"),
           "page_url": reverse("studies:participant", args=[p.token]),
           "can_leave": p.step in Participant.WITHDRAWABLE_STEPS}  # fmt: skip
    if ctx["can_leave"]:
        ctx["study_keeps_withdrawn"] = p.study.setting("withdrawn_answers") == "keep"
    response = render(
        request, f"studies/participant/{template}", ctx | (context or {}), status=status
    )
    response["Content-Language"] = p.language
    return response


def _refused(request, message: str, status: int = 403) -> HttpResponse:
    return render(request, "studies/participant/refused.html", {"message": message}, status=status)


@no_store
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    """The study link: captures recruitment parameters, creates or resumes the participant."""
    study = get_object_or_404(Study, slug=slug)
    known = list(dict.fromkeys(request.session.get(SESSION_KEY, []) + _bound(request)))
    mine = study.participants.filter(token__in=known).last()
    has_id = any(request.GET.get(k) for k in ("PROLIFIC_PID", "pid"))
    if mine is not None and not has_id:
        return redirect("studies:participant", mine.token)
    # A closed or paused study still lets its started participants come back and finish; the
    # same lookup decides who may come back and who is resumed.
    found = flow.find_existing(study, request.GET) if has_id else None
    if study.status == Study.Status.DRAFT:  # previews only: a known id lets no one else in
        allowed = _previewing(request, study)
    else:
        allowed = study.is_open or found is not None
    if not allowed:
        translation.activate(_language(study, request))
        return _refused(request, _("This study is not open at the moment. Please try again later."))
    user_agent = request.headers.get("User-Agent", "")
    if found is None:
        p = flow.create(study, request.GET.dict(), user_agent, _language(study, request))
    elif flow.may_resume(found, request.GET, known):
        p = flow.resume(found, user_agent)
    else:
        return _other_session(request, study)
    if study.status == Study.Status.DRAFT and not p.is_preview:
        Participant.objects.filter(pk=p.pk).update(is_preview=True)
    response = redirect("studies:participant", p.token)
    if p.token not in _bound(request):
        response.set_signed_cookie(
            BINDING_COOKIE, ",".join((known + [p.token])[-20:]), salt=BINDING_COOKIE,
            max_age=settings.SESSION_COOKIE_AGE, secure=settings.SESSION_COOKIE_SECURE,
            httponly=True, samesite=settings.SESSION_COOKIE_SAMESITE,
        )  # fmt: skip
    return response


def _other_session(request: HttpRequest, study: Study) -> HttpResponse:
    """The refusal of a link naming a participant that started in another session
    (flow.may_resume); it says nothing of that participant, not even its step."""
    translation.activate(_language(study, request))
    return _refused(request, _(
        "This link does not match the session in which the study was started. Please open the "
        "study again from the page where you first started it (for example, Prolific)."
    ))  # fmt: skip


def _previewing(request: HttpRequest, study: Study) -> bool:
    """A researcher who can see a draft study may take it before it opens (a preview): nobody
    else can enter a draft, and what previews store is deleted when it opens or closes
    (experimenter.study_status)."""
    return (
        study.status == Study.Status.DRAFT
        and visible_studies(request.user).filter(pk=study.pk).exists()
    )


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


def _is_mine(request: HttpRequest, token: str) -> bool:
    return token in _bound(request) or token in request.session.get(SESSION_KEY, [])


def _own(request: HttpRequest, token: str) -> Participant | None:
    return flow.participant_by_token(token) if _is_mine(request, token) else None


@no_store
def page(request: HttpRequest, token: str) -> HttpResponse:
    if not _is_mine(request, token):
        return _refused(request, _("This page belongs to another session."))
    if request.method == "POST" and _is_answer(request):
        early = post_answer(request, token)  # one statement, without loading the participant
        # this page (no URL reversal per answer); saying why when the answer came too early
        return HttpResponseRedirect(request.path + ("?early=1" if early else ""))
    p = flow.participant_by_token(token)
    if p is None:
        return _refused(request, _("This page belongs to another session."))
    lang = request.GET.get("lang")
    if lang and lang in (p.study.setting("languages") or []):
        Participant.objects.filter(pk=p.pk).update(language=lang)
        return redirect("studies:participant", p.token)
    if request.method == "POST":
        if request.POST.get("action") == "withdraw" and request.POST.get("step") == p.step:
            flow.withdraw(p)
            return redirect("studies:participant", p.token)
        if request.POST.get("step") == p.step:
            handler = POST_HANDLERS.get(p.step)
            if handler is not None:
                response = handler(request, p)
                if response is not None:
                    return response
        return redirect("studies:participant", p.token)
    if p.step not in TRIAL_STEPS:  # trial pages record the view together with their own writes
        flow.touch(p, timezone.now())
    return GET_HANDLERS[p.step](request, p)


# -- steps: GET ---------------------------------------------------------------------------------
def _simple(template):
    return lambda request, p: _render(request, p, template)


def get_consent(request, p):
    return _render(request, p, "consent.html")


def get_questionnaire(request, p, form=None):
    return _render(request, p, "questionnaire.html", {"form": form or QuestionnaireForm()})


def get_screening(request, p):
    draw = flow.view_screening(p)  # a reload draws a new trial, never a second hearing
    kind, i = flow.screening_position(p)  # all from the state the view was counted in
    cfg = screening.config()
    n = len(p.screening.get("answers", []))
    audio = reverse("studies:screening_audio", args=[p.token, n, draw])
    return _render(request, p, "screening.html", {"kind": kind, "i": i, "n": n, "draw": draw,
                   "audio": audio, "number": i + 1, "total": cfg.trials})  # fmt: skip


def get_instructions(request, p):
    # "drums, bass" in English, "ドラム、ベース" in Japanese: the separator is translated too
    names = [INSTRUMENTS.get(i, i) for i in p.study.instruments]
    has_practice = bool(p.study.setting("practice_trials")) and (
        p.study.trials.filter(is_practice=True).exists()
    )
    translation.activate(p.language)
    listed = pgettext("list separator", ", ").join(str(n) for n in names)
    return _render(request, p, "instructions.html",
                   {"instrument_names": listed, "has_practice": has_practice})  # fmt: skip


def get_trial(request, p):
    at = flow.position(p)  # the current slot and progress, once per request
    slot, feedback = at.slot, p.state.get("feedback")
    flow.touch(p, timezone.now(), slot)
    if p.step == Step.PRACTICE and not feedback and (slot is None or not slot.trial.is_practice):
        flow.advance(p, Step.PRACTICE, Step.TRIALS)  # practice over (e.g. reload after feedback)
    if slot is None and not feedback:
        flow.finish_if_complete(p)
        return redirect("studies:participant", p.token)
    pct = round(100 * at.done / max(at.total, 1))
    ctx = {"slot": slot, "feedback": feedback, "progress_done": at.done,
           "progress_total": at.total, "progress_pct": pct,
           "early": request.GET.get("early") == "1"}  # fmt: skip
    if feedback:
        ctx["feedback_instrument"] = INSTRUMENTS.get(feedback["instrument"], feedback["instrument"])
    if slot is not None:
        ctx["instrument"] = INSTRUMENTS.get(slot.trial.instrument, slot.trial.instrument)
        ctx["audio"] = {k: reverse("studies:audio", args=[p.token, slot.index, k]) for k in "rAB"}
    return _render(request, p, "trial.html", ctx)


def get_done(request, p):
    return _render(request, p, "done.html", {"prolific_url": flow.prolific_redirect(p)})


def get_screened_out(request, p):
    url = flow.prolific_screen_out_redirect(p)
    return _render(request, p, "screened_out.html", {"prolific_url": url})


def get_withdrawn(request, p):
    kept = p.study.setting("withdrawn_answers") == "keep"
    return _render(request, p, "withdrawn.html", {"kept": kept, "prolific": bool(p.prolific_pid)})


# -- steps: POST --------------------------------------------------------------------------------
def post_browser_check(request, p):
    report = {
        k: request.POST.get(k, "")[:200] for k in ("web_audio", "touch", "screen", "ua_mobile")
    }
    rate = request.POST.get("sample_rate", "")  # isdigit() alone passes "²", which int() refuses
    sample_rate = int(rate) if rate.isascii() and rate.isdigit() and len(rate) <= 7 else None
    ua = request.headers.get("User-Agent", "")
    phone = report["ua_mobile"] == "1" or bool(PHONE_UA.search(ua))
    fields = {"browser": report | {"phone": phone}, "audio_sample_rate": sample_rate}
    if report["web_audio"] != "1":
        flow.advance(p, Step.BROWSER_CHECK, Step.REFUSED, state={"reason": "web_audio"}, **fields)
    elif phone and p.study.setting("refuse_phones"):
        flow.advance(p, Step.BROWSER_CHECK, Step.REFUSED, state={"reason": "phone"}, **fields)
    else:
        flow.advance(p, Step.BROWSER_CHECK, Step.CONSENT, **fields)


def post_consent(request, p):
    if request.POST.get("decision") == "agree":
        flow.advance(p, Step.CONSENT, Step.QUESTIONNAIRE, consented_at=timezone.now())
    elif request.POST.get("decision") == "decline":
        flow.advance(p, Step.CONSENT, Step.DECLINED)


def post_questionnaire(request, p):
    form = QuestionnaireForm(request.POST)
    if not form.is_valid():
        return get_questionnaire(request, p, form)
    flow.advance(p, Step.QUESTIONNAIRE, Step.CALIBRATION, questionnaire=form.cleaned_data)


def post_calibration(request, p):
    flow.advance(p, Step.CALIBRATION, flow.after_calibration(p))


def post_screening(request, p):
    form = ScreeningForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        draw = data["draw"] or 0  # a page from before draws were numbered posts none: 0
        flow.record_screening(p, data["n"], draw, data["choice"], data.get("rt_ms"))


def post_instructions(request, p):
    flow.start_trials(p)


def post_trial(request, p):
    """Acknowledging practice feedback (answers take `post_answer`)."""
    if request.POST.get("action") == "continue":
        Participant.objects.filter(pk=p.pk).update(state={})
        p.state = {}
        slot = flow.current_slot(p)
        if slot is None:
            flow.finish_if_complete(p)
        elif p.step == Step.PRACTICE and not slot.trial.is_practice:
            flow.advance(p, Step.PRACTICE, Step.TRIALS)
    return None


def _is_answer(request) -> bool:
    return request.POST.get("step") in TRIAL_STEPS and "action" not in request.POST


def post_answer(request, token: str) -> bool:
    """Store an answer: one statement that also checks the participant is at the posted step,
    the answer is to its current slot (a replayed, stale or forged POST stores nothing) and its
    page has been open long enough to play the clips (True: refused for that, and counted).
    Only a practice answer (feedback) or the last one (completion) reads more."""
    answer = parse_answer(request.POST)
    if answer is None:
        return False
    now = timezone.now()
    step = request.POST["step"]
    stored = flow.store_answer(token, step, answer.index, answer.choice, answer.log, now)
    if stored is None:  # the same page is shown again: locked until its clips have played
        return flow.note_early_answer(token, answer.index, now)
    if not (stored.is_practice or stored.is_last):
        return False
    p = flow.participant_by_token(token)
    if stored.is_practice:
        slot = p.slots.select_related("trial").get(trial_id=stored.trial_id)
        p.state = {"feedback": flow.practice_feedback(slot, answer.choice)}
        Participant.objects.filter(pk=p.pk).update(state=p.state)
    else:  # no unanswered slot after this one: the list may be complete
        flow.finish_if_complete(p)
    return False


TRIAL_STEPS = (Step.PRACTICE, Step.TRIALS)
GET_HANDLERS = {
    Step.BROWSER_CHECK: _simple("browser_check.html"),
    Step.CONSENT: get_consent,
    Step.QUESTIONNAIRE: get_questionnaire,
    Step.CALIBRATION: _simple("calibration.html"),
    Step.SCREENING: get_screening,
    Step.INSTRUCTIONS: get_instructions,
    Step.PRACTICE: get_trial,
    Step.TRIALS: get_trial,
    Step.DONE: get_done,
    Step.SCREENED_OUT: get_screened_out,
    Step.DECLINED: _simple("declined.html"),
    Step.REFUSED: _simple("browser_refused.html"),
    Step.FULL: _simple("full.html"),
    Step.WITHDRAWN: get_withdrawn,
}
POST_HANDLERS = {
    Step.BROWSER_CHECK: post_browser_check,
    Step.CONSENT: post_consent,
    Step.QUESTIONNAIRE: post_questionnaire,
    Step.CALIBRATION: post_calibration,
    Step.SCREENING: post_screening,
    Step.INSTRUCTIONS: post_instructions,
    Step.PRACTICE: post_trial,
    Step.TRIALS: post_trial,
}


# -- audio --------------------------------------------------------------------------------------
def audio(request: HttpRequest, token: str, index: int, part: str) -> HttpResponse:
    """A clip of the participant's current trial, by display position only (r, A or B)."""
    p = _own(request, token)
    if p is None or p.step not in (Step.PRACTICE, Step.TRIALS):
        raise Http404
    slot = flow.current_slot(p)
    if slot is None or slot.index != index or part not in ("r", "A", "B"):
        raise Http404
    t = slot.trial
    shown_b = "b" if slot.displayed_first == "a" else "a"
    canonical = {"r": None, "A": slot.displayed_first, "B": shown_b}[part]
    clip = {None: t.reference, "a": t.candidate_a, "b": t.candidate_b}[canonical]
    try:
        path = normalised_path(clip, float(p.study.setting("loudness_target_lufs")))
    except FileNotFoundError:
        raise Http404 from None
    return serve_audio(request, path)


def _cached_wav(name: str, make) -> Path:
    folder = Path(settings.MEDIA_ROOT) / "generated"
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{timezone.now().timestamp()}.tmp")
        tmp.write_bytes(wav_bytes(*make()))
        tmp.replace(path)
    return path


def screening_audio(request: HttpRequest, token: str, n: int, draw: int) -> HttpResponse:
    """The participant's current screening trial as its page drew it, rendered for each request
    (~9 ms, ~0.75 MB) and never written to disk: the stimuli are the participant's own (its
    seed), and files kept per participant added up to ~9 MB each. The draw is in the URL so that
    a reloaded page never plays a cached earlier draw."""
    p = _own(request, token)
    if p is None or p.step != Step.SCREENING or n != len(p.screening.get("answers", [])):
        raise Http404
    if draw != flow.screening_draw(p):
        raise Http404
    kind, i = flow.screening_position(p)
    signal = screening.render(p.seed, kind, i, screening.config(), draw)
    return serve_audio(request, wav_bytes(signal, screening.SR))


def calibration_audio(request: HttpRequest, token: str) -> HttpResponse:
    """Pink noise at the study's loudness target, for setting a comfortable volume."""
    p = _own(request, token)
    if p is None:
        raise Http404
    target = float(p.study.setting("loudness_target_lufs"))
    seconds = screening.config().calibration_s

    def make():
        noise, _gain = normalise(screening.calibration_noise(seconds), screening.SR, target)
        return noise, screening.SR

    return serve_audio(request, _cached_wav(f"calibration_{target:+.1f}_{seconds:g}.wav", make))
