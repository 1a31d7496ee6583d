"""Participant-side forms (the questionnaire and the answer payload)."""

from __future__ import annotations

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from evalsite.studies.flow import ClientLog


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


class AnswerForm(forms.Form):
    index = forms.IntegerField(min_value=0)
    choice = forms.ChoiceField(choices=[("A", "A"), ("B", "B")])
    log = forms.CharField(required=False, max_length=20000)

    def client_log(self) -> ClientLog:
        """The client's trial log, tolerant of missing keys, bounded in size and type."""
        try:
            raw = json.loads(self.cleaned_data.get("log") or "{}")
        except json.JSONDecodeError:
            raw = {}
        if not isinstance(raw, dict):
            raw = {}

        def num(value, cast, lo, hi):
            try:
                return min(max(cast(value), lo), hi)
            except (TypeError, ValueError):
                return None

        plays = raw.get("plays") if isinstance(raw.get("plays"), dict) else {}
        heard = raw.get("heard") if isinstance(raw.get("heard"), dict) else {}
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
    choice = forms.TypedChoiceField(choices=[(1, "1"), (2, "2"), (3, "3")], coerce=int)
    rt_ms = forms.IntegerField(required=False, min_value=0, max_value=3_600_000)
