"""The report's notes (warnings and infos that say how far to trust a result) as the page and
the standalone summary lay them out: counted in one line above the results, and listed, grouped by
the part of the analysis that wrote them, next to links to the tables that part made. The demo's
report held 18 (one reliability warning per instrument, power and mixed-model infos) and listed
them before its first result; errors are not notes: they stay in view, above the results.

A warning also stays in view where its figure is: under the heading of the first table its part
made (once, though a part makes several), or, when the page shows none of them, above the results
with the errors. A reader must not meet a table missing an instrument's row, or an interval left
empty, without the sentence saying why behind a closed box (review rdemo2). Infos stay folded."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

# The tables each part of the analysis (a note's "part", evalsite.reports.analysis.report) makes.
# A part named after a table ("crossed", "exclusions", "gee") concerns that table; "input" notes
# are about the answers and concern no one table.
PART_TABLES = {
    "agreement": ("reliability", "noise_ceiling"),
    "consent": ("consent", "participant_consent", "participant_rates"),
    "power": ("power_inputs", "power_plan"),
    "mixed": ("mixed", "mixed_laplace", "mixed_probability", "instrument_contrasts"),
    "diagnostics": ("position_bias", "fatigue", "psychometric", "catch", "test_retest"),
}


@dataclass
class NoteGroup:
    part: str
    tables: list[str]  # those of the part's tables that the page shows, in their order
    notes: list[dict] = field(default_factory=list)


def errors(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["level"] == "error"]


def notes(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["level"] != "error"]


def placed_warnings(
    messages: list[dict], shown: list[str]
) -> tuple[dict[str, list[dict]], list[dict]]:
    """The warnings in view: {table name: those under its heading}, and those of parts that made
    no table of `shown` (the page's tables, in reading order), for the top."""
    by_table: dict[str, list[dict]] = {}
    top: list[dict] = []
    for m in messages:
        if m["level"] != "warning":
            continue
        made = PART_TABLES.get(m["part"], (m["part"],))
        first = next((name for name in shown if name in made), None)
        if first is None:
            top.append(m)
        else:
            by_table.setdefault(first, []).append(m)
    return by_table, top


def warnings_html(warnings: list[dict]) -> str:
    """A list of warnings in view (the summary's; the page's template writes the same)."""
    if not warnings:
        return ""
    items = "".join(
        f"<li class='warning'><b>warning</b> ({escape(m['part'])}): {escape(m['text'])}</li>"
        for m in warnings
    )
    return f"<ul class='report-messages report-warnings'>{items}</ul>"


def count_line(messages: list[dict]) -> str:
    """'18 notes on these results: 10 warnings, 8 infos' ('' without notes)."""
    found = notes(messages)
    if not found:
        return ""
    levels: dict[str, int] = {}
    for m in found:
        levels[m["level"]] = levels.get(m["level"], 0) + 1
    each = ", ".join(_count(n, level) for level, n in sorted(levels.items(), key=_by_level))
    return f"{_count(len(found), 'note')} on these results: {each}"


def _by_level(item: tuple[str, int]) -> tuple[int, str]:
    order = {"warning": 0, "info": 1}
    return order.get(item[0], 2), item[0]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def note_groups(messages: list[dict], shown: list[str]) -> list[NoteGroup]:
    """The notes grouped by part, in the order the report wrote them; each group names the
    tables of `shown` (the page's, in reading order) that its part made."""
    groups: dict[str, NoteGroup] = {}
    for m in notes(messages):
        part = m["part"]
        if part not in groups:
            made = PART_TABLES.get(part, (part,))
            groups[part] = NoteGroup(part, [name for name in shown if name in made])
        groups[part].notes.append(m)
    return list(groups.values())


def notes_html(messages: list[dict], shown: list[str]) -> str:
    """The errors, the warnings placed at the top, then the notes' disclosure, as the standalone
    summary's HTML ('' for none); each table's own warnings go under its heading (summary.py);
    the page's template (reports/report.html) lays them out alike."""
    parts = [
        f"<p class='error'><b>error</b> ({escape(m['part'])}): {escape(m['text'])}</p>"
        for m in errors(messages)
    ]
    parts.append(warnings_html(placed_warnings(messages, shown)[1]))
    groups = note_groups(messages, shown)
    if groups:
        parts.append(
            f'<details class="report-notes"><summary>{escape(count_line(messages))}</summary><ul>'
        )
        for g in groups:
            links = ", ".join(f"<a href='#table-{escape(n)}'>{escape(n)}</a>" for n in g.tables)
            parts.append(
                f'<li class="notes-group"><b>{escape(g.part)}</b>'
                + (f", on {links}" if links else "")
                + ":<ul>"
                + "".join(
                    f"<li class='{escape(m['level'])}'><b>{escape(m['level'])}</b>: "
                    f"{escape(m['text'])}</li>"
                    for m in g.notes
                )
                + "</ul></li>"
            )
        parts.append("</ul></details>")
    return "".join(parts)
