"""Participant-side forms: the questionnaire, the screening answer, and the answer payload."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from django import forms
from django.utils.translation import gettext_lazy as _

from evalsite.studies.participant_writes import ClientLog
from evalsite.studies.storable_text import may_hold_unstorable, storable_json


class QuestionnaireForm(forms.Form):
    musical_training = forms.ChoiceField(
        label=_("How many years of musical training (instrument or voice) have you had?"),
        choices=[
            ("", "—"),
            ("none", _("None")),
            ("lt2", _("Less than 2 years")),
            ("2to5", _("2 to 5 years")),
            ("gt5", _("More than 5 years")),
            ("professional", _("I am a professional musician")),
        ],
    )
    plays_instrument = forms.CharField(
        label=_("Which instruments do you play, if any? (optional)"), required=False, max_length=200
    )
    device = forms.ChoiceField(
        label=_("Which device are you using?"),
        choices=[
            ("", "—"),
            ("laptop", _("Laptop")),
            ("desktop", _("Desktop computer")),
            ("tablet", _("Tablet")),
            ("other", _("Other")),
        ],  # fmt: skip
    )
    headphones = forms.ChoiceField(
        label=_("What are you listening with?"),
        choices=[
            ("", "—"),
            ("over_ear", _("Over-ear headphones")),
            ("on_ear", _("On-ear headphones")),
            ("in_ear", _("In-ear headphones / earbuds")),
            ("speakers", _("Loudspeakers")),
        ],  # fmt: skip
    )


# An answer POST is read by hand, not through a Django form: it is the site's most frequent
# request, and a form's per-request copy of its fields cost more CPU (~0.13 ms measured) than the
# checks themselves. The rules are a form's: a non-negative index, the slot's id, a choice of A
# or B, a log of at most MAX_LOG_CHARS characters; anything else stores nothing.
MAX_LOG_CHARS = 20_000
MAX_INDEX = 1_000_000  # above any trial list; keeps a forged number inside the column's type
MAX_SLOT_DIGITS = 18  # a forged id stays inside the id column's type (bigint)


@dataclass(frozen=True)
class AnswerPost:
    index: int  # the slot answered, by its number
    slot: int  # and by its id: a number names another slot after a renumbering (design_return)
    choice: str  # the displayed position chosen: "A" or "B"
    log: ClientLog


def parse_answer(data) -> AnswerPost | None:
    """The answer in a trial page's POST data, or None when any field is malformed."""
    index, choice, log = data.get("index", ""), data.get("choice", ""), data.get("log", "")
    index, slot = index.strip(), data.get("slot", "")
    if not (index.isascii() and index.isdigit()) or int(index) > MAX_INDEX:
        return None
    if not (slot.isascii() and slot.isdigit()) or len(slot) > MAX_SLOT_DIGITS:
        return None
    if choice not in ("A", "B") or len(log) > MAX_LOG_CHARS:
        return None
    return AnswerPost(int(index), int(slot), choice, client_log(log))


def _finite(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def client_log(text: str) -> ClientLog:
    """The client's trial log (JSON), tolerant of missing keys, bounded in size and type. A
    string PostgreSQL cannot store (NUL, a lone surrogate) is kept as null, a key holding one is
    dropped (`storable_text`)."""
    try:  # NaN and infinities become null: PostgreSQL's JSON has no such numbers
        raw = json.loads(text or "{}", parse_constant=lambda _: None, parse_float=_finite)
        if may_hold_unstorable(text):
            raw = storable_json(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, an integer over Python's 4,300
        raw = {}  # digits, or brackets nested deeper than the parser (or the walk) recurses
    if not isinstance(raw, dict):
        raw = {}

    def num(value, cast, lo, hi):
        try:  # an integer too large for a float (float(), math.isfinite) is unknown too
            number = cast(value)
            if not math.isfinite(number):
                return None
        except (TypeError, ValueError, OverflowError):
            return None
        return min(max(number, lo), hi)  # inside each column's type

    plays, heard = raw.get("plays"), raw.get("heard")
    plays = plays if isinstance(plays, dict) else {}
    heard = heard if isinstance(heard, dict) else {}
    return ClientLog(
        response_ms=num(raw.get("response_ms"), int, 0, 3_600_000),
        plays={k: num(plays.get(k), int, 0, 1000) or 0 for k in ("r", "A", "B")},
        heard={k: num(heard.get(k), float, 0.0, 1.0) for k in ("r", "A", "B")},
        blur_events=num(raw.get("blur_events"), int, 0, 1000) or 0,
        audio_sample_rate=num(raw.get("audio_sample_rate"), int, 1, 1_000_000),
        raw=raw,
    )


class ScreeningForm(forms.Form):
    n = forms.IntegerField(min_value=0)
    draw = forms.IntegerField(required=False, min_value=0)  # which draw of trial n was shown
    choice = forms.TypedChoiceField(choices=[(1, "1"), (2, "2"), (3, "3")], coerce=int)
    rt_ms = forms.IntegerField(required=False, min_value=0, max_value=3_600_000)
