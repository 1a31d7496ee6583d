"""The report's notes (warnings and infos that say how far to trust a result) as the page and
the standalone summary lay them out: counted in one line above the results, and listed, grouped by
the part of the analysis that wrote them, next to links to the tables that part made. The demo's
report held 18 (one reliability warning per instrument, power and mixed-model infos) and listed
them before its first result; errors are not notes: they stay in view, above the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

# The tables each part of the analysis (a note's "part", evalsite.reports.analysis.report) makes.
# A part named after a table ("crossed", "exclusions", "gee") concerns that table; "input" notes
# are about the answers and concern no one table.
PART_TABLES = {
    "agreement": ("reliability", "noise_ceiling"),
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
    """The errors, then the notes' disclosure, as the standalone summary's HTML ('' for none);
    the page's template (reports/report.html) lays them out alike."""
    parts = [
        f"<p class='error'><b>error</b> ({escape(m['part'])}): {escape(m['text'])}</p>"
        for m in errors(messages)
    ]
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
