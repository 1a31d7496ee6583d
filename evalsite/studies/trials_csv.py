"""Trials from a CSV file: the experimenter's bulk import (docs/experimenter.md, "Trials")."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterator

from django import forms

from csn_model import CONDITIONS
from evalsite.stimuli.models import Clip
from evalsite.studies import trial_identity
from evalsite.studies.forms import study_clips, trial_clip_errors
from evalsite.studies.models import Study, Trial

TRIAL_CSV_COLUMNS = ("reference", "candidate_a", "candidate_b", "instrument")
TRIAL_CSV_OPTIONAL = (
    "is_practice", "catch_kind", "expected", "model_choice", "model_margin", "model_designed",
)  # fmt: skip
TRUE, FALSE = {"1", "true", "yes"}, {"", "0", "false", "no"}


class TrialCSVForm(forms.Form):
    """Bulk trials: a CSV with a header row; clips named by token, id or name."""

    csv_file = forms.FileField(label="Trials CSV")

    def __init__(self, *args, study: Study, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.study = study
        self.user = user
        self.rows: list[tuple[str, Trial]] = []  # the valid file's trials, with their lines

    def clean_csv_file(self) -> list[Trial]:
        upload = self.cleaned_data["csv_file"]
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(f"{upload.name}: expected UTF-8 text") from None
        self.rows, errors = parse_trial_rows(text, upload.name, self.study, self.user)
        trials = [trial for _where, trial in self.rows]
        if errors:
            raise forms.ValidationError(shown_errors(errors))
        if not trials:
            raise forms.ValidationError(f"{upload.name}: no trial rows below the header")
        return trials


def shown_errors(errors: list[str], at_most: int = 20) -> list[str]:
    """The first `at_most` problems of a file, and how many more there are."""
    more = len(errors) - at_most
    return errors[:at_most] + ([f"... and {more} more"] if more > 0 else [])


def parse_trials_csv(text: str, filename: str, study: Study, user) -> tuple[list[Trial], list[str]]:
    """Unsaved trials from CSV text whose clips are among those `user` may use (study_clips), and
    one message per problem (file, line, column or field, expected). TrialCSVForm refuses a file
    with any message as a whole."""
    rows, errors = parse_trial_rows(text, filename, study, user)
    return [trial for _where, trial in rows], errors


def parse_trial_rows(
    text: str, filename: str, study: Study, user
) -> tuple[list[tuple[str, Trial]], list[str]]:
    """As parse_trials_csv, each trial with where it is ('t.csv, line 3'); a row naming the
    trial of an earlier row is a problem (trial_identity)."""
    reader = csv.reader(io.StringIO(text, newline=""))  # newline="": as the csv module asks
    try:
        header = next(reader, [])
    except csv.Error as exc:
        return [], [f"{filename}, line 1: {_unreadable(exc)}"]
    while header and not header[-1].strip():  # trailing commas, as spreadsheets write them
        header.pop()
    header_errors = _header_errors(header)
    if header_errors:
        return [], [f"{filename}, line 1: {e}" for e in header_errors]
    lookup = _clip_lookup(study, user)
    rows, errors = [], []
    for line, fields, unreadable in _records(reader):
        if unreadable:
            errors.append(f"{filename}, line {line}: {unreadable}")
            break
        row_errors = _extra_fields(fields, len(header))
        trial, field_errors = _trial_from_row(dict(zip(header, fields)), study, lookup)
        errors += [f"{filename}, line {line}: {e}" for e in row_errors + field_errors]
        if trial is not None:
            rows.append((f"{filename}, line {line}", trial))
    return rows, errors + trial_identity.repeated_rows(rows)


def _header_errors(header: list[str]) -> list[str]:
    """A column the import does not know (a typo would drop its values unseen) or names twice,
    and the required columns missing."""
    known = (*TRIAL_CSV_COLUMNS, *TRIAL_CSV_OPTIONAL)
    errors = []
    for i, name in enumerate(header):
        if name not in known:
            errors.append(
                f"column {i + 1} = {name!r}: not a known column; expected one of {', '.join(known)}"
            )
        elif header.index(name) < i:
            errors.append(
                f"column {i + 1} = {name!r}: repeats column {header.index(name) + 1}; "
                "expected each column once"
            )
    missing = [c for c in TRIAL_CSV_COLUMNS if c not in header]
    if missing:
        expected = f"{', '.join(TRIAL_CSV_COLUMNS)} (optional: {', '.join(TRIAL_CSV_OPTIONAL)})"
        errors.append(f"header lacks {', '.join(missing)}; expected {expected}")
    return errors


def _records(reader) -> Iterator[tuple[int, list[str], str]]:
    """(the line a record starts on, its fields, "") for each record left in `reader`, blank
    lines skipped; a record the csv module cannot read (a cell over its field size limit) ends
    them with (its line, [], why). The reader's line_num counts the lines read so far, and a
    record spans several when a quoted field holds a line break: the line after those read
    before it is its first."""
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            yield line, [], _unreadable(exc)
            return
        if fields is None:
            return
        if fields:
            yield line, fields, ""


def _unreadable(exc: csv.Error) -> str:
    return f"not readable as CSV ({exc}); nothing from here on was read"


def _extra_fields(fields: list[str], n: int) -> list[str]:
    """Fields beyond the header's columns are refused unless empty (a spreadsheet's trailing
    commas)."""
    extra = [i for i in range(n, len(fields)) if fields[i].strip()]
    if not extra:
        return []
    return [
        f"column {extra[0] + 1} = {fields[extra[0]]!r}: {len(fields)} fields, the header has {n}; "
        f"expected at most {n} (or empty ones after them)"
    ]


def _clip_lookup(
    study: Study, user
) -> tuple[dict[str, Clip], dict[str, Clip], dict[str, list[Clip]]]:
    """The clips `user` may use in `study` by token, by id and by name (names need not be
    unique)."""
    by_token, by_id, by_name = {}, {}, defaultdict(list)
    for clip in study_clips(study, user):
        by_token[clip.token] = clip
        by_id[str(clip.pk)] = clip
        if clip.name:
            by_name[clip.name].append(clip)
    return by_token, by_id, by_name


def _find_clip(lookup: tuple, col: str, key: str) -> tuple[Clip | None, str]:
    """A clip by token, else id, else name (a clip's id never finds another clip named so), and
    "" or why none."""
    by_token, by_id, by_name = lookup
    clip = by_token.get(key) or by_id.get(key)
    named = by_name.get(key, [])
    if clip is None and len(named) == 1:
        clip = named[0]
    if clip is not None:
        return clip, ""
    if named:
        return None, (
            f"field {col!r} = {key!r}: {len(named)} ready clips have this name; "
            "expected the token or id of one of them"
        )
    return None, f"field {col!r} = {key!r}: expected the token, id or name of a ready clip"


def _trial_from_row(row: dict, study: Study, lookup: tuple) -> tuple[Trial | None, list[str]]:
    errors, clips = [], {}
    for col in ("reference", "candidate_a", "candidate_b"):
        clips[col], error = _find_clip(lookup, col, (row.get(col) or "").strip())
        errors += [error] if error else []
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
    margin, error = _margin((row.get("model_margin") or "").strip())
    errors += [error] if error else []
    by_model, error = _model_designed(row, main=not kind and practice not in TRUE)
    errors += [error] if error else []
    if kind and practice in {"1", "true", "yes"}:  # practice answers count in no catch rate
        errors.append(
            f"field 'is_practice' = {practice!r} with field 'catch_kind' = {kind!r}: a practice "
            "trial is not a catch trial; expected is_practice false or catch_kind empty"
        )
    if (kind or practice in {"1", "true", "yes"}) and not choice["expected"]:
        errors.append("field 'expected' is empty: catch and practice trials need their answer")
    ref, a, b = clips["reference"], clips["candidate_a"], clips["candidate_b"]
    if ref and a and b and not errors:
        conflicts = trial_clip_errors(
            ref, a, b, catch_kind=kind, expected=choice["expected"],
            is_practice=practice in {"1", "true", "yes"},
        )  # fmt: skip
        for col, error in conflicts.items():
            errors.append(f"field {col!r} = {(row.get(col) or '').strip()!r}: {error}")
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
        model_designed=by_model,
    )
    return trial, []


def _model_designed(row: dict, main: bool) -> tuple[bool, str]:
    """Whether a model chose the candidates (Trial.model_designed: the shared-candidate rule,
    docs/site.md), and "" or why not: a true/false word or empty, true on a main trial only."""
    text = (row.get("model_designed") or "").strip()
    if text.lower() not in TRUE | FALSE:
        return (
            False,
            f"field 'model_designed' = {text!r}: expected true/false, 1/0, yes/no or empty",
        )
    if text.lower() in TRUE and not main:
        return False, (
            f"field 'model_designed' = {text!r}: the shared-candidate rule concerns main trials "
            "only; expected false or empty on a practice or catch trial"
        )
    return text.lower() in TRUE, ""


def _margin(text: str) -> tuple[float | None, str]:
    """The model margin, and "" or why not: a finite number or empty (nan and inf parse)."""
    try:
        margin = float(text) if text else None
    except ValueError:
        margin = math.nan
    if margin is not None and not math.isfinite(margin):
        return None, f"field 'model_margin' = {text!r}: expected a finite number or empty"
    return margin, ""
