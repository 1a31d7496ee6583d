"""Write a report to a folder: every table as CSV and JSON (full precision) and in report.json,
plots as SVG, and Markdown/HTML summaries. Used by the CSV command and the site's bundle."""

from __future__ import annotations

import json
from pathlib import Path

from ..analysis.report import Report
from .plots import all_plots
from .summary import html_summary, markdown_summary


def report_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=1, allow_nan=False)


def as_stored(report: Report) -> Report:
    """The report as report.json and the site's snapshot hold it (NaN and inf null, shown blank):
    tables and summaries written from it agree cell for cell with the page and downloads."""
    return Report.from_dict(report.to_dict())


def write_report(report: Report, out: Path, plots: dict[str, str] | None = None) -> list[Path]:
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    written = []
    data = report.to_dict()
    stored = Report.from_dict(data)  # as_stored: what the site shows
    for name, table in stored.tables.items():
        path = out / "tables" / f"{name}.csv"
        table.to_csv(path, index=False)
        (out / "tables" / f"{name}.json").write_text(json.dumps(data["tables"][name], indent=1))
        written += [path, out / "tables" / f"{name}.json"]
    (out / "report.json").write_text(json.dumps(data, indent=1, allow_nan=False))
    plots = all_plots(report) if plots is None else plots
    if plots:
        (out / "plots").mkdir(exist_ok=True)
    for name, svg in plots.items():
        (out / "plots" / f"{name}.svg").write_text(svg)
        written.append(out / "plots" / f"{name}.svg")
    (out / "summary.md").write_text(markdown_summary(stored))
    (out / "summary.html").write_text(html_summary(stored, plots))
    return written + [out / "report.json", out / "summary.md", out / "summary.html"]
