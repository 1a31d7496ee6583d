"""The tidy answers table the statistics read: its columns, their types, and checks that turn
malformed input into one clear message (naming the source, the field and what was expected).

The column vocabulary is fixed by `evalsite.studies.export_answers.answers_dataframe`
(`ANSWER_COLUMNS` in that module); this module only reads it and never touches the database.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import CONDITIONS

REQUIRED = ("participant", "trial", "instrument", "chosen")
OPTIONAL_DEFAULTS: dict[str, object] = {
    "study": "",
    "session": "",
    "trial_index": np.nan,
    "reference": "",
    "candidate_a": "",
    "candidate_b": "",
    # Absent or empty: the screen position is unknown (not "a"), so chosen_position stays empty
    # and the position rule, position_bias and model_shown_first leave that answer out.
    "displayed_first": None,
    "chosen_position": None,  # derived from chosen and displayed_first when absent
    "model_choice": None,
    "model_margin": np.nan,
    "agree": None,  # derived from chosen and model_choice when absent
    "is_catch": False,
    "catch_kind": "",
    "catch_correct": np.nan,
    "response_ms": np.nan,
    "plays_reference": np.nan,
    "plays_a": np.nan,
    "plays_b": np.nan,
    "screening_passed": True,
    "created_at": "",
}
COLUMNS = (
    "study",
    "participant",
    "session",
    "trial",
    "trial_index",
    "instrument",
    "reference",
    "candidate_a",
    "candidate_b",
    "displayed_first",
    "chosen",
    "chosen_position",
    "model_choice",
    "model_margin",
    "agree",
    "is_catch",
    "catch_kind",
    "catch_correct",
    "response_ms",
    "plays_reference",
    "plays_a",
    "plays_b",
    "screening_passed",
    "created_at",
)

_TRUE = {"1", "true", "t", "yes", "y", "1.0"}
_FALSE = {"0", "false", "f", "no", "n", "0.0"}


class ReportInputError(ValueError):
    """The answers table cannot be analysed; the message says which field and what was expected."""


def _as_bool(series: pd.Series, field: str, source: str, blank: bool) -> pd.Series:
    """Booleans from true/false text; an empty cell reads as `blank`."""
    if series.dtype == bool:
        return series
    text = pd.Series(
        ["" if _is_blank(v) else str(v).strip().lower() for v in series], index=series.index
    )
    bad = ~text.isin(_TRUE | _FALSE | {""})
    if bad.any():
        example = series[bad].iloc[0]
        raise ReportInputError(
            f"{source}: field {field!r} holds {example!r}; expected true/false (or 1/0)"
        )
    return text.isin(_TRUE) | ((text == "") & blank)


def _as_float(series: pd.Series, field: str, source: str) -> pd.Series:
    out = pd.to_numeric(series, errors="coerce")
    bad = out.isna() & series.notna() & (series.astype(str).str.strip() != "")
    if bad.any():
        raise ReportInputError(
            f"{source}: field {field!r} holds {series[bad].iloc[0]!r}; expected a number"
        )
    return out.astype(float)


def _is_blank(v) -> bool:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return True
    return str(v).strip() in {"", "None"}


def _as_choice(series: pd.Series, field: str, source: str, allowed: set[str], nullable: bool):
    text = pd.Series(
        [None if _is_blank(v) else str(v).strip() for v in series], index=series.index, dtype=object
    )
    bad = text.notna() & ~text.isin(allowed)
    if bad.any() or (not nullable and text.isna().any()):
        example = series[bad].iloc[0] if bad.any() else "(empty)"
        raise ReportInputError(
            f"{source}: field {field!r} holds {example!r}; expected one of {sorted(allowed)}"
        )
    return text


_TEXT = ("participant", "session", "trial", "reference", "candidate_a", "candidate_b")
_NUMBERS = (
    "trial_index",
    "model_margin",
    "catch_correct",
    "response_ms",
    "plays_reference",
    "plays_a",
    "plays_b",
)


def normalise_answers(raw: pd.DataFrame, source: str = "answers") -> pd.DataFrame:
    """Check and type the answers table; derived columns filled in when the export omits them.

    Raises ReportInputError for missing columns, unknown instruments, malformed values or no rows.
    """
    _check_shape(raw, source)
    df = raw.copy()
    for col, default in OPTIONAL_DEFAULTS.items():
        if col not in df.columns:
            df[col] = default
    _type_identifiers(df, source)
    _type_choices(df, source)
    for col in _NUMBERS:
        df[col] = _as_float(df[col], col, source)
    df["agree"] = _agree(df, source)
    df["is_catch"] = _as_bool(df["is_catch"], "is_catch", source, blank=False)
    # Empty is the export's NULL: no screening was run, so not screened out (as when absent).
    df["screening_passed"] = _as_bool(
        df["screening_passed"], "screening_passed", source, blank=True
    )
    df["catch_kind"] = df["catch_kind"].map(_text)
    if df["trial_index"].isna().all():
        df["trial_index"] = df.groupby("participant").cumcount().astype(float)
    df["chosen_clip"] = np.where(df["chosen"] == "a", df["candidate_a"], df["candidate_b"])
    df.loc[df["chosen_clip"] == "", "chosen_clip"] = df["trial"] + ":" + df["chosen"]
    return df[[*COLUMNS, "chosen_clip"]].reset_index(drop=True)


def _check_shape(raw: pd.DataFrame, source: str) -> None:
    """A table with the required columns and at least one row."""
    if not isinstance(raw, pd.DataFrame):
        raise ReportInputError(f"{source}: expected a table of answers, got {type(raw).__name__}")
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ReportInputError(
            f"{source}: missing column(s) {', '.join(missing)}; expected at least "
            f"{', '.join(REQUIRED)} (the export's columns: {', '.join(COLUMNS)})"
        )
    if len(raw) == 0:
        raise ReportInputError(f"{source}: the study has no answers yet; nothing to analyse")


def _text(v) -> str:
    """A cell as text; an empty cell (None or NaN) as ""."""
    return "" if v is None or v != v else str(v)


# A participant id written as a plain integer: an int64 written as it reads back ("-3", a 19-digit
# 9223372036854775807), as pandas.read_csv reads it. "007", "+3", "-0" or "3.0" is not one: read as
# a number it would no longer name its row; nor is an id beyond int64, which would lose digits.
_PLAIN_INTEGER = r"0|-?[1-9][0-9]{0,18}"
_INT64 = range(-(2**63), 2**63)


def _plain_integers(ids: pd.Series) -> bool:
    """Whether every id (text) is a plain integer."""
    written = pd.Series(ids.unique())
    return bool(written.str.fullmatch(_PLAIN_INTEGER).all()) and all(
        int(i) in _INT64 for i in written
    )


def _type_identifiers(df: pd.DataFrame, source: str) -> None:
    """Text identifiers (participant and trial required) and known instruments, in place.
    Participant ids that are all plain integers (the site's ids) become integers, so the report's
    tables give them as the export does and sort them numerically."""
    for col in _TEXT:
        df[col] = df[col].map(_text)
    if (df["participant"] == "").any() or (df["trial"] == "").any():
        raise ReportInputError(f"{source}: fields 'participant' and 'trial' must not be empty")
    if _plain_integers(df["participant"]):
        df["participant"] = df["participant"].astype("int64")
    df["instrument"] = df["instrument"].astype(str).str.strip()
    unknown = sorted(set(df["instrument"]) - set(CONDITIONS))
    if unknown:
        raise ReportInputError(
            f"{source}: field 'instrument' holds unknown instrument(s) {unknown}; "
            f"expected one of {list(CONDITIONS)}"
        )


def _type_choices(df: pd.DataFrame, source: str) -> None:
    """The a/b choices and the A/B screen position chosen (derived where left empty), in place."""
    df["chosen"] = _as_choice(df["chosen"], "chosen", source, {"a", "b"}, nullable=False)
    df["displayed_first"] = _as_choice(
        df["displayed_first"], "displayed_first", source, {"a", "b"}, nullable=True
    )
    df["model_choice"] = _as_choice(df["model_choice"], "model_choice", source, {"a", "b"}, True)
    derived_pos = np.where(
        df["displayed_first"].isna(),
        np.array(None, dtype=object),  # None as an array: the stubs take no bare None
        np.where(df["chosen"] == df["displayed_first"], "A", "B"),
    )
    blank = df["chosen_position"].map(_is_blank)
    df["chosen_position"] = df["chosen_position"].where(
        ~blank, pd.Series(derived_pos, index=df.index, dtype=object)
    )
    df["chosen_position"] = _as_choice(
        df["chosen_position"], "chosen_position", source, {"A", "B"}, nullable=True
    )


def _agree(df: pd.DataFrame, source: str) -> pd.Series:
    """Agreement with the model as 1/0, or NaN where the model has not chosen."""
    derived_agree = np.where(
        df["model_choice"].isna(), np.nan, (df["chosen"] == df["model_choice"]).astype(float)
    )
    # Derived per row where the export left the value out.
    agree = _as_float(df["agree"], "agree", source).fillna(pd.Series(derived_agree, index=df.index))
    bad_agree = agree.notna() & ~agree.isin([0.0, 1.0])
    if bad_agree.any():
        raise ReportInputError(f"{source}: field 'agree' must be 1, 0 or empty")
    return agree


def instruments_present(df: pd.DataFrame) -> list[str]:
    """Instruments in the data, in CONDITIONS order."""
    seen = set(df["instrument"])
    return [c for c in CONDITIONS if c in seen]
