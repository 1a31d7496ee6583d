"""What the report says about its input before any statistic: practice answers left out,
answers whose screen position is unknown, instruments the study judges with no answer at all,
instruments with no scored answer (messages on the report, never a silent drop). Called by
report.build_report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from . import consent
from .inputs import instruments_present

if TYPE_CHECKING:
    from .report import Report


def without_practice(report: Report, raw, source: str):
    """The site's full export (answers.csv download) also holds practice answers, flagged in
    `is_practice`; the statistics never use them."""
    if not isinstance(raw, pd.DataFrame) or "is_practice" not in raw.columns or raw.empty:
        return raw
    flag = raw["is_practice"].astype(str).str.strip().str.lower().isin({"true", "1", "1.0"})
    if flag.any():
        report.note("info", "input", f"{int(flag.sum())} practice answers in {source} left out")
    return raw[~flag]


def note_unknown_positions(report: Report, df: pd.DataFrame) -> None:
    """Without displayed_first an answer's screen position is unknown; say what leaves it out."""
    unknown = int(df["chosen_position"].isna().sum())
    if not unknown:
        return
    parts = (
        "the same_position_responding exclusion rule, position_bias and the mixed models' "
        "model_shown_first covariate"
    )
    if unknown == len(df):
        text = (
            "no answer records its screen position (displayed_first absent or empty): "
            f"{parts} are left out"
        )
    else:
        text = (
            f"{unknown} answers (of {len(df)}) do not record their screen position "
            f"(displayed_first empty): {parts} leave them out"
        )
    report.note("info", "input", text)


def note_unanswered_instruments(report: Report, df: pd.DataFrame, planned) -> None:
    """An instrument the study judges (`planned`, from the config) without a single answer (or
    only practice answers, left out before) appears in no table at all: name it, so that a
    reader does not take the instruments in the tables for all the study planned. No row, no
    estimate: there is nothing to estimate from."""
    seen = set(df["instrument"])
    missing = [inst for inst in dict.fromkeys(planned) if inst not in seen]
    report.meta["instruments_without_answers"] = missing
    for inst in missing:
        report.note(
            "warning",
            "input",
            f"{inst} has no answers (the study judges it; practice answers are not counted): it "
            "is in no table and has no estimate",
        )


def note_unscored_instruments(report: Report, df: pd.DataFrame, clean: pd.DataFrame) -> None:
    """An instrument answered in the study but with no scored answer is in none of the tables
    that score answers against the model; say which and why, rather than drop it silently."""
    scored_instruments = set(consent.scored(clean)["instrument"])
    kept = set(clean["instrument"])
    for inst in instruments_present(df):
        if inst in scored_instruments:
            continue
        why = (
            "every participant who answered it was excluded"
            if inst not in kept
            else "every answer is a catch trial or its trial has no model choice (model_choice "
            "empty)"
        )
        report.note(
            "warning",
            "consent",
            f"{inst} has no scored answers ({why}): it is left out of every table that scores "
            "answers against the model",
        )
