"""A study's export downloads: each file by name (`EXPORT_FILES`), or all of them in one zip.

The tables come from `export_answers` (answers, participants), `export_provenance` (clip manifest,
consent versions, config snapshot) and `design.realised_design`; `CODEBOOK` (`export_codebook`)
documents every column. This module only writes them out: CSV safe to open in a spreadsheet
(`to_csv`) or JSON with the values as stored (`to_json`). Each download, the zip as a whole, is
read from one snapshot of the database (`db_snapshot.read_snapshot`), the answers once.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable
from functools import cached_property

import numpy as np
import pandas as pd

from evalsite.studies.db_snapshot import read_snapshot
from evalsite.studies.design import realised_design
from evalsite.studies.export_answers import full_answers_dataframe, participants_dataframe
from evalsite.studies.export_codebook import CODEBOOK
from evalsite.studies.export_provenance import (
    config_snapshot,
    consent_versions_dataframe,
    manifest_dataframe,
)
from evalsite.studies.models import Study

# A text cell starting with one of these would run as a formula when a CSV file is opened in a
# spreadsheet (OWASP "CSV injection"): participants control ids (the study link), free text and
# browser reports. Every CSV export writes such a cell with a leading apostrophe (`to_csv`);
# JSON files keep the values as stored. Recruitment ids (Prolific's are hex) never start so.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(value):
    """A text `value` with a leading apostrophe when a spreadsheet would read it as a formula;
    anything else unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def to_csv(frame: pd.DataFrame) -> bytes:
    """CSV bytes of `frame` for people and spreadsheets: text cells that would run as a formula
    get a leading apostrophe (FORMULA_START); numbers are written as they are. Text columns are
    object, string and categorical ones: pandas 3 gives text a `str` dtype, which "object" alone
    matches only by a fallback pandas 4 drops."""
    text = frame.select_dtypes(include=["object", "string", "category"]).columns
    return frame.assign(**{c: frame[c].map(_inert) for c in text}).to_csv(index=False).encode()


def to_json(frame: pd.DataFrame) -> bytes:
    """JSON bytes of `frame`, one object per row, with the values as stored: floats in Python's
    shortest exact form (pandas' `to_json` rounds them to 10 decimals: 3e-11 becomes 0.0), missing
    values (NaN, NA, NaT, None) as null, timestamps as `to_csv` writes them, text unchanged."""
    columns = {name: _json_column(frame[name]) for name in frame.columns}
    records = [dict(zip(columns, values)) for values in zip(*columns.values())]
    return json.dumps(records, indent=1, ensure_ascii=False).encode()


def _json_column(column: pd.Series) -> list:
    if column.dtype.kind in "mM":  # datetime64 (with or without a zone) and timedelta64
        # The CSV writer's own text for the column (it drops a time that is midnight throughout).
        lines = column.to_csv(index=False, header=False).splitlines()
        return [text if pd.notna(v) else None for text, v in zip(lines, column, strict=True)]
    return [_json_value(v) for v in column.tolist()]


def _json_value(value):
    """`value` as the json module writes it; NaN, infinities and pandas' missing markers as None
    (JSON has no NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return None if value is pd.NA or value is pd.NaT else value


class StudyTables:
    """The tables of `study` that several export files are written from, each read once: built
    inside one `read_snapshot`, answers.csv, answers.json and participants.csv hold the same
    answers, and design.csv marks exactly those slots answered."""

    def __init__(self, study: Study):
        self.study = study

    @cached_property
    def answers(self) -> pd.DataFrame:
        return full_answers_dataframe(self.study)

    @cached_property
    def consent_versions(self) -> pd.DataFrame:
        return consent_versions_dataframe(self.study)


EXPORT_FILES: dict[str, tuple[str, Callable[[StudyTables], bytes]]] = {
    "answers.csv": ("text/csv", lambda t: to_csv(t.answers)),
    "answers.json": ("application/json", lambda t: to_json(t.answers)),
    "codebook.json": ("application/json", lambda t: json.dumps(CODEBOOK, indent=1).encode()),
    "config.json": (
        "application/json",
        lambda t: json.dumps(config_snapshot(t.study), indent=1, ensure_ascii=False).encode(),
    ),
    "participants.csv": (
        "text/csv",
        lambda t: to_csv(participants_dataframe(t.study, t.answers)),
    ),
    "manifest.csv": ("text/csv", lambda t: to_csv(manifest_dataframe(t.study))),
    "consent_versions.csv": ("text/csv", lambda t: to_csv(t.consent_versions)),
    # the exact texts: a CSV cell may carry the formula guard's apostrophe, and a version is the
    # hash of the text as shown (a consent text that is a bullet list starts with "-")
    "consent_versions.json": ("application/json", lambda t: to_json(t.consent_versions)),
    "design.csv": ("text/csv", lambda t: to_csv(realised_design(t.study))),
}


def export_file(study: Study, name: str) -> bytes:
    """One export file of `study` by name (a key of `EXPORT_FILES`), its tables read from one
    snapshot of the database (participants.csv reads answers and participants)."""
    with read_snapshot():
        return EXPORT_FILES[name][1](StudyTables(_as_stored(study)))


def export_zip(study: Study) -> bytes:
    """All export files in one zip, under a folder named for the study, read from one snapshot
    of the database: taken while participants answer, its files still agree with each other."""
    buffer = io.BytesIO()
    with read_snapshot():
        tables = StudyTables(_as_stored(study))
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, (_, write) in EXPORT_FILES.items():
                archive.writestr(f"study-{study.pk}/{name}", write(tables))
    return buffer.getvalue()


def _as_stored(study: Study) -> Study:
    """`study` read again inside the snapshot: config.json and the loudness target of
    manifest.csv are then those of the same moment as the answers."""
    return Study.objects.select_related("owner").get(pk=study.pk)
