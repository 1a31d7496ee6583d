"""A computed report: its named tidy tables, messages, meta and timings (Report), and their
JSON form, which the site stores and reads back (table_frame). Needs only pandas: the report
pages read stored reports without the statistics that computed them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FORMAT_VERSION = 1


@dataclass
class Report:
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    messages: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(m["level"] == "error" for m in self.messages)

    def note(self, level: str, part: str, text: str) -> None:
        self.messages.append({"level": level, "part": part, "text": text})

    def to_dict(self) -> dict:
        """JSON-ready: tables as lists of records (column order in `columns`), NaN as null."""
        return {
            "format_version": FORMAT_VERSION,
            "tables": {
                k: [_clean_record(r) for r in v.to_dict("records")] for k, v in self.tables.items()
            },
            "columns": {k: list(map(str, v.columns)) for k, v in self.tables.items()},
            "messages": self.messages,
            "meta": _clean(self.meta),
            "timings": self.timings,
        }

    @classmethod
    def from_dict(cls, raw: dict) -> Report:
        tables = {k: table_frame(rows, raw["columns"][k]) for k, rows in raw["tables"].items()}
        return cls(tables, list(raw["messages"]), dict(raw["meta"]), dict(raw["timings"]))


def table_frame(rows: list[dict], columns: list[str] | None) -> pd.DataFrame:
    """One table from its records as `to_dict` wrote them: the frame the site's page and
    downloads show, and the bundle's and the CSV command's tables/*.csv and summaries."""
    return pd.DataFrame(rows, columns=columns)


def _clean(value):
    """numpy scalars to Python, NaN/inf to None (JSON and PostgreSQL jsonb have no NaN), -0.0 to
    0.0 (jsonb has no negative zero either: the stored tables read back as written)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float):
        return value + 0.0  # -0.0 + 0.0 is 0.0
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _clean_record(record: dict) -> dict:
    return {str(k): _clean(v) for k, v in record.items()}
