"""The participant page's handlers, one pair per step: what a GET shows (`GET_HANDLERS`) and
what a POST for that step does (`POST_HANDLERS`), with the answer to a trial (`post_answer`, one
statement). The page view (`participant.page`) checks the browser and the posted step, then
dispatches here; each handler reads and moves the participant through the `flow` modules
(`flow`, `flow_screening`, `flow_trials`, `flow_prolific`) and the hot path's statements
(`participant_sql`, `participant_writes`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy, pgettext

from evalsite.studies import (
    design_fill,
    design_return,
    flow,
    flow_prolific,
    flow_screening,
    flow_trials,
    participant_sql,
    participant_writes,
    screening,
)
from evalsite.studies.consent import ON_LEAVE, consent_page, shown_version
from evalsite.studies.models import Participant
from evalsite.studies.participant_forms import QuestionnaireForm, ScreeningForm, parse_answer
from evalsite.studies.participant_render import render_step
from evalsite.studies.storable_text import storable_or_empty

Step = Participant.Step
INSTRUMENTS = {"drums": gettext_lazy("drums"), "bass": gettext_lazy("bass"),
               "piano": gettext_lazy("piano"), "guitar": gettext_lazy("guitar"),
               "others": gettext_lazy("other instruments")}  # fmt: skip
PHONE_UA = re.compile(r"iPhone|iPod|Android.*Mobile|Windows Phone")  # not tablets


# -- steps: GET ---------------------------------------------------------------------------------
def _simple(template):
    return lambda request, p: render_step(request, p, template)


def get_full(request, p):
    """The study-full page, saying why as it stands now: every trial has its answers (for good),
    or the trials still short of them are reserved by participants taking part now (a newcomer
    turned away at entry or at the instructions, or one whose trials others took while it was
    away), or they are free again. `retry`: the study's link takes this person in again once
    trials are free (turned away for now, `flow.turn_away`, or a link without an id, which
    makes a new participant). Short of answers, a closed study says it has closed, and a paused
    one says so to those `retry` would send back: `flow.resume` takes them in only while the
    study is open, so "open the link again" would only bring them back here."""
    answered = design_fill.answered_full(p.study)
    status, Status = p.study.status, p.study.Status
    retry = status != Status.CLOSED and (
        flow.FULL_FOR_NOW in p.state or not (p.prolific_pid or p.external_pid)
    )
    context = {
        "answered": answered,
        "reserved": not answered and design_fill.full_at_entry(p.study, timezone.now()),
        "retry": retry,
        "closed": not answered and status == Status.CLOSED,
        "paused": not answered and retry and status == Status.PAUSED,
        "minutes": -(-int(p.study.setting("reservation_timeout_s")) // 60),
    }
    return render_step(request, p, "full.html", context)


def get_consent(request, p, updated=False):
    """The consent page; `updated`: shown again because it changed since it was loaded, which
    the page says, so that the participant reads it again before agreeing."""
    page = consent_page(p.study, p.language)
    version = shown_version(p.study, page)  # stored when first shown; the form posts its name
    return render_step(
        request, p, "consent.html", {"page": page, "version": version.sha256, "updated": updated}
    )


def get_questionnaire(request, p, form=None):
    return render_step(request, p, "questionnaire.html", {"form": form or QuestionnaireForm()})


def get_screening(request, p):
    position = flow_screening.screening_position(p)
    if position is not None:
        # a reload draws a new trial, never a second hearing
        draw = flow_screening.view_screening(p)
        # all from the state the view was counted in
        position = flow_screening.screening_position(p)
    if position is None:  # nothing left to show: the last answer was stored a moment ago
        flow_screening.end_screening(p)  # (another tab), so the participant moves on from here
        return redirect("studies:participant", p.token)
    kind, i = position
    cfg = screening.config()
    n = len(p.screening.get("answers", []))
    audio = reverse("studies:screening_audio", args=[p.token, n, draw])
    return render_step(request, p, "screening.html", {"kind": kind, "i": i, "n": n, "draw": draw,
                   "audio": audio, "number": i + 1, "total": cfg.trials})  # fmt: skip


def get_instructions(request, p):
    # "drums, bass" in English, "ドラム、ベース" in Japanese: the separator is translated too
    names = [INSTRUMENTS.get(i, i) for i in p.study.instruments]
    has_practice = bool(p.study.setting("practice_trials")) and (
        p.study.trials.filter(is_practice=True).exists()
    )
    translation.activate(p.language)
    listed = pgettext("list separator", ", ").join(str(n) for n in names)
    return render_step(request, p, "instructions.html",
                   {"instrument_names": listed, "has_practice": has_practice})  # fmt: skip


def get_trial(request, p):
    at = participant_sql.position(p)  # the current slot and progress, once per request
    slot, feedback = at.slot, p.state.get("feedback")
    # A practice answer refused as its trial was answered in another window (post_answer). When
    # the feedback stored is not that trial's (the other window went on), the page says only
    # that, with a Continue to the current step: no later trial's feedback shown as its own.
    refused = request.GET.get("answered")
    elsewhere_only = refused is not None and (not feedback or refused != str(feedback["slot"]))
    # the feedback page is no view of the next trial: its first view is its own page's
    if flow_trials.touch(p, timezone.now(), slot, shows_slot=not (feedback or elsewhere_only)):
        return redirect("studies:participant", p.token)  # back after a lapse: trials taken out
    if p.step == Step.PRACTICE and not feedback and (slot is None or not slot.trial.is_practice):
        flow.advance(p, Step.PRACTICE, Step.TRIALS)  # practice over (e.g. reload after feedback)
    if slot is None and not feedback:
        flow_trials.finish_if_complete(p)
        return redirect("studies:participant", p.token)
    pct = round(100 * at.done / max(at.total, 1))
    if elsewhere_only:
        return render_step(request, p, "trial.html", {"answered_elsewhere_only": True,
                           "progress_done": at.done, "progress_total": at.total,
                           "progress_pct": pct})  # fmt: skip
    ctx = {"slot": slot, "feedback": feedback, "progress_done": at.done,
           "progress_total": at.total, "progress_pct": pct,
           "early": request.GET.get("early") == "1"}  # fmt: skip
    if feedback:
        # the answer came from a second window: this feedback is the first window's (post_answer)
        ctx["answered_elsewhere"] = refused == str(feedback["slot"])
        ctx["feedback_instrument"] = INSTRUMENTS.get(feedback["instrument"], feedback["instrument"])
    if slot is not None:
        ctx["instrument"] = INSTRUMENTS.get(slot.trial.instrument, slot.trial.instrument)
        # by the slot's id, which a renumbering keeps with its trial: one URL, one clip
        ctx["audio"] = {k: reverse("studies:audio", args=[p.token, slot.pk, k]) for k in "rAB"}
    return render_step(request, p, "trial.html", ctx)


def get_done(request, p):
    context = {
        "prolific_url": flow_prolific.prolific_redirect(p),
        "completion_code": flow_prolific.sent_code(p),
        "is_prolific": flow_prolific.is_prolific(p.study.setting("prolific_completion_url") or ""),
    }
    return render_step(request, p, "done.html", context)


def get_screened_out(request, p):
    url = flow_prolific.prolific_screen_out_redirect(p)
    return render_step(request, p, "screened_out.html", {"prolific_url": url})


def get_withdrawn(request, p):
    kept = p.answers_on_leave() == "keep"
    return render_step(
        request, p, "withdrawn.html", {"kept": kept, "prolific": bool(p.prolific_pid)}
    )


# -- steps: POST --------------------------------------------------------------------------------
def post_browser_check(request, p):
    report = {  # a value that cannot be stored (NUL) is unknown, as a missing one is
        k: storable_or_empty(request.POST.get(k, "")[:200])
        for k in ("web_audio", "touch", "screen", "ua_mobile")
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
        # The participant agrees to the page they were shown: its version (the consent text
        # and the site's paragraphs) and what it said leaving does ("on_leave"). Where the study
        # changed either since, the page is shown again as it is now, nothing recorded. A form
        # that posts neither (loaded before they were posted) agrees to the page as it is now.
        page = consent_page(p.study, p.language)
        posted_on_leave = request.POST.get("on_leave", page.on_leave)
        if posted_on_leave in set(ON_LEAVE) - {page.on_leave} or (
            request.POST.get("consent_version", page.sha256) != page.sha256
        ):
            return get_consent(request, p, updated=True)
        flow.advance(p, Step.CONSENT, Step.QUESTIONNAIRE, consented_at=timezone.now(),
                     withdrawn_answers=page.on_leave,
                     consent_version=shown_version(p.study, page))  # fmt: skip
    elif request.POST.get("decision") == "decline":
        flow.advance(p, Step.CONSENT, Step.DECLINED)


def post_questionnaire(request, p):
    form = QuestionnaireForm(request.POST)
    if not form.is_valid():
        return get_questionnaire(request, p, form)
    flow_screening.reach_calibration(p, form.cleaned_data)


def post_calibration(request, p):
    flow_screening.leave_calibration(p)


def post_screening(request, p):
    form = ScreeningForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        draw = data["draw"] or 0  # a page from before draws were numbered posts none: 0
        flow_screening.record_screening(p, data["n"], draw, data["choice"], data.get("rt_ms"))


def post_instructions(request, p):
    flow_trials.start_trials(p)


def post_trial(request, p):
    """Acknowledging practice feedback (answers take `post_answer`): the Continue names the slot
    whose feedback it acknowledges, and clears only that one. A Continue from an older page (a
    second tab still showing an earlier feedback) changes nothing: the current page is shown."""
    if request.POST.get("action") != "continue":
        return None
    if not flow_trials.acknowledge_feedback(p, request.POST.get("slot", "")):
        return None
    slot = flow_trials.current_slot(p)
    if slot is None:
        flow_trials.finish_if_complete(p)
    elif p.step == Step.PRACTICE and not slot.trial.is_practice:
        flow.advance(p, Step.PRACTICE, Step.TRIALS)
    return None


def post_answer(request, token: str) -> str:
    """Store an answer: one statement that also checks the participant is at the posted step,
    the answer is to its current slot (a replayed, stale or forged POST stores nothing) and its
    page has been open long enough to play the clips. Returns what the page it redirects to says
    (its query string): "early=1", refused for being too early (and counted); "answered=<slot>",
    a practice answer refused because that trial was answered already (in another window: the
    feedback shown is that answer's); "" otherwise. Only a practice answer (feedback), the last
    one (completion) or a refused one reads more."""
    answer = parse_answer(request.POST)
    if answer is None:
        return ""
    now = timezone.now()
    step = request.POST["step"]
    stored = participant_writes.store_answer(
        token, step, answer.index, answer.slot, answer.choice, answer.log, now
    )
    if stored is None and _came_back(token, now):  # its list was checked again: once more
        stored = participant_writes.store_answer(
            token, step, answer.index, answer.slot, answer.choice, answer.log, now
        )
        if stored is None:  # its trial was taken out (renumbered slots wait for their page)
            return ""
    if stored is None:
        if flow_trials.note_early_answer(token, answer.index, answer.slot, now):
            return "early=1"  # the same page again: locked until its clips have played
        # a practice trial answered in another window: its feedback is that window's answer
        answered = step == Step.PRACTICE and flow_trials.answered_already(token, answer.slot)
        return f"answered={answer.slot}" if answered else ""
    if not (stored.is_practice or stored.is_last):
        return ""
    p = participant_sql.participant_by_token(token)
    if p is None:  # deleted since its answer was stored (a preview as its study left draft)
        return ""
    if stored.is_practice:
        slot = p.slots.select_related(  # the clips: the feedback says how the trial was built
            "trial__reference", "trial__candidate_a", "trial__candidate_b"
        ).get(trial_id=stored.trial_id)
        p.state = {"feedback": flow_trials.practice_feedback(slot, answer.choice)}
        Participant.objects.filter(pk=p.pk).update(state=p.state)
    else:  # no unanswered slot after this one: the list may be complete
        flow_trials.finish_if_complete(p)
    return ""


def _came_back(token: str, now) -> bool:
    """After an answer was refused: whether it was refused because the participant's
    reservations had lapsed (it answers a page left open past the timeout); its list is then
    checked again and re-reserved (`design_return`) before the answer is tried once more."""
    p = participant_sql.participant_by_token(token)
    if p is None or p.step not in TRIAL_STEPS:
        return False
    slot = participant_sql.position(p).slot
    if slot is None or slot.reserved_until > now:
        return False
    design_return.recheck(p, now)
    return True


TRIAL_STEPS = (Step.PRACTICE, Step.TRIALS)
# Keyed by Step; looked up by Participant.step, the same strings (Step is a str enum).
GET_HANDLERS: dict[str, Callable[[HttpRequest, Participant], HttpResponse]] = {
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
    Step.FULL: get_full,
    Step.WITHDRAWN: get_withdrawn,
}
POST_HANDLERS: dict[str, Callable[[HttpRequest, Participant], HttpResponse | None]] = {
    Step.BROWSER_CHECK: post_browser_check,
    Step.CONSENT: post_consent,
    Step.QUESTIONNAIRE: post_questionnaire,
    Step.CALIBRATION: post_calibration,
    Step.SCREENING: post_screening,
    Step.INSTRUCTIONS: post_instructions,
    Step.PRACTICE: post_trial,
    Step.TRIALS: post_trial,
}
