"""Helpers for the practice-trial tests: spare attention sets for the generated catalogue
(conftest.make_catalogue), and the check that no practice trial gives another trial away."""

from __future__ import annotations

from evalsite.stimuli.audio import clip_from_array
from evalsite.studies.models import Study, Trial
from tests.evalsite.studies.conftest import SR, tone


def add_spare_attention_sets(catalogue) -> None:
    """One more attention set per instrument than `conftest.make_study`'s catch trials use
    (drums on Piece04 vs Piece05, guitar on Piece05 vs Piece04), built like make_catalogue's."""
    mixes = {c.piece: c for c in catalogue.clips.filter(meta={})}
    for n, (instrument, x, y) in enumerate([("drums", 4, 5), ("guitar", 5, 4)]):
        group = f"Piece{x:02d}+Piece{y:02d}:{instrument}"
        for role, freq in (("same", 220 * 1.25**x), ("different", 220 * 1.25**y)):
            clip_from_array(
                tone(freq, 300 + n) + tone(330, 400 + n), SR, catalogue, -23.0,
                name=f"spare attention {role}", piece=f"Piece{x:02d}",
                parts={instrument: f"Piece{x if role == 'same' else y:02d}"},
                meta={"kind": "attention", "group": group, "condition": instrument, "role": role,
                      "reference": mixes[f"Piece{x:02d}"].pk},
            )  # fmt: skip


def _clips(t: Trial) -> set[int]:
    return {t.reference_id, t.candidate_a_id, t.candidate_b_id}


def _candidates(t: Trial) -> set[int]:
    return {t.candidate_a_id, t.candidate_b_id}


def assert_practice_gives_nothing_away(study: Study) -> None:
    """No practice trial has the clip set of another trial, nor a candidate of a catch trial with
    a right answer (identical, attention)."""
    practice = list(study.trials.filter(is_practice=True))
    others = list(study.trials.filter(is_practice=False))
    answered = [t for t in others if t.catch_kind in ("identical", "attention")]
    for p in practice:
        assert all(_clips(p) != _clips(t) for t in others), (p, "shares a clip set")
        shared = [(t.catch_kind, _candidates(p) & _candidates(t)) for t in answered]
        assert not [s for s in shared if s[1]], (p, shared)
