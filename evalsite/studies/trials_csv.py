"""Trials from a CSV file: the experimenter's bulk import (docs/experimenter.md, "Trials")."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django import forms

from csn_model import CONDITIONS
from evalsite.stimuli.models import Clip
from evalsite.studies.forms import study_clips
from evalsite.studies.models import Study, Trial

TRIAL_CSV_COLUMNS = ("reference", "candidate_a", "candidate_b", "instrument")
TRIAL_CSV_OPTIONAL = ("is_practice", "catch_kind", "expected", "model_choice", "model_margin")


class TrialCSVForm(forms.Form):
    """Bulk trials: a CSV with a header row; clips named by token, id or name."""

    csv_file = forms.FileField(label="Trials CSV")

    def __init__(self, *args, study: Study, **kwargs):
        super().__init__(*args, **kwargs)
        self.study = study

    def clean_csv_file(self) -> list[Trial]:
        upload = self.cleaned_data["csv_file"]
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(f"{upload.name}: expected UTF-8 text") from None
        trials, errors = parse_trials_csv(text, upload.name, self.study)
        if errors:
            shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
            raise forms.ValidationError(shown)
        if not trials:
            raise forms.ValidationError(f"{upload.name}: no trial rows below the header")
        return trials


def parse_trials_csv(text: str, filename: str, study: Study) -> tuple[list[Trial], list[str]]:
    """Unsaved trials from CSV text, and one message per bad row (file, line, field, expected)."""
    reader = csv.reader(io.StringIO(text, newline=""))  # newline="": as the csv module asks
    header = next(reader, [])
    missing = [c for c in TRIAL_CSV_COLUMNS if c not in header]
    if missing:
        expected = f"{', '.join(TRIAL_CSV_COLUMNS)} (optional: {', '.join(TRIAL_CSV_OPTIONAL)})"
        return [], [f"{filename}: header lacks {', '.join(missing)}; expected {expected}"]
    lookup = _clip_lookup(study)
    trials, errors = [], []
    for line, fields in _records(reader):
        trial, row_errors = _trial_from_row(dict(zip(header, fields)), study, lookup)
        errors += [f"{filename}, line {line}: {e}" for e in row_errors]
        if trial is not None:
            trials.append(trial)
    return trials, errors


def _records(reader) -> Iterator[tuple[int, list[str]]]:
    """(the line a record starts on, its fields) for each record left in `reader`, blank lines
    skipped. The reader's line_num counts the lines read so far, and a record spans several
    when a quoted field holds a line break: the line after those read before it is its first."""
    while True:
        line = reader.line_num + 1
        fields = next(reader, None)
        if fields is None:
            return
        if fields:
            yield line, fields


def _clip_lookup(study: Study) -> dict[str, Clip]:
    lookup: dict[str, Clip] = {}
    for clip in study_clips(study):
        for key in (clip.name, str(clip.pk), clip.token):  # later keys win: token over id, name
            if key:
                lookup[key] = clip
    return lookup


def _trial_from_row(row: dict, study: Study, lookup: dict) -> tuple[Trial | None, list[str]]:
    errors, clips = [], {}
    for col in ("reference", "candidate_a", "candidate_b"):
        key = (row.get(col) or "").strip()
        clips[col] = lookup.get(key)
        if clips[col] is None:
            errors.append(
                f"field {col!r} = {key!r}: expected the token, id or name of a ready clip"
            )
    instrument = (row.get("instrument") or "").strip()
    allowed = study.instruments or list(CONDITIONS)
    if instrument not in allowed:
        errors.append(f"field 'instrument' = {instrument!r}: expected one of {', '.join(allowed)}")
    kind = (row.get("catch_kind") or "").strip()
    if kind not in {"", "identical", "attention"}:
        errors.append(f"field 'catch_kind' = {kind!r}: expected empty, identical or attention")
    choice = {}
    for col in ("expected", "model_choice"):
        choice[col] = (row.get(col) or "").strip().lower()
        if choice[col] not in {"", "a", "b"}:
            errors.append(f"field {col!r} = {row.get(col)!r}: expected a, b or empty")
    practice = (row.get("is_practice") or "").strip().lower()
    if practice not in {"", "0", "1", "true", "false", "yes", "no"}:
        errors.append(f"field 'is_practice' = {practice!r}: expected true/false or 1/0")
    margin_text = (row.get("model_margin") or "").strip()
    margin = None
    try:
        margin = float(margin_text) if margin_text else None
    except ValueError:
        errors.append(f"field 'model_margin' = {margin_text!r}: expected a number or empty")
    if (kind or practice in {"1", "true", "yes"}) and not choice["expected"]:
        errors.append("field 'expected' is empty: catch and practice trials need their answer")
    if errors:
        return None, errors
    trial = Trial(
        study=study,
        reference=clips["reference"],
        candidate_a=clips["candidate_a"],
        candidate_b=clips["candidate_b"],
        instrument=instrument,
        is_practice=practice in {"1", "true", "yes"},
        is_catch=bool(kind),
        catch_kind=kind,
        expected=choice["expected"],
        model_choice=choice["model_choice"] or None,
        model_margin=margin,
    )
    return trial, []
