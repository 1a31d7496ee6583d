"""Human-readable summaries of a report (Markdown and standalone HTML). Rounding happens here
only; the tables and downloads keep full precision."""

from __future__ import annotations

import html
import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..analysis.config import ReportConfig
from .notes import notes_html, placed_warnings, warnings_html

if TYPE_CHECKING:  # types only: the report page renders stored tables without loading pandas
    import pandas as pd

    from ..analysis.result import Report

# Table titles; {level} is the report's confidence as a percentage (see `title`).
TITLES = {
    "consent": "Consent per instrument (answer level; Wilson and Clopper-Pearson {level}, exact "
    "binomial test against 0.5, Holm across instruments)",
    "crossed": "Consent with participants and trials crossed (moment estimates of the variance "
    "components, Gao & Owen 2017; Wald {level} on the logit scale, t test against 0.5 on "
    "Satterthwaite df, Holm across "
    "instruments)",
    "participant_consent": "Consent on participant-level agreement rates (one-sample t test)",
    "bootstrap": "Cluster bootstrap (participants x trials) intervals for consent",
    "mixed": "Mixed-effects logistic regression by variational Bayes (log-odds; crossed random "
    "intercepts; descriptive, posterior intervals too narrow)",
    "mixed_laplace": "Mixed-effects logistic regression by Laplace approximation (log-odds; "
    "crossed random intercepts)",
    "mixed_probability": "Mixed model (Laplace): instrument probabilities for an average "
    "participant/trial",
    "instrument_contrasts": "Mixed model (Laplace): pairwise differences of instrument log-odds "
    "(Wald t on Welch df, Holm across pairs)",
    "gee": "GEE check (log-odds; exchangeable within participant, bias-reduced robust SE; a "
    "cross-check, clustered by participant only)",
    "reliability": "Agreement among people (identity-coded; trial bootstrap {level})",
    "noise_ceiling": "Leave-one-rater-out noise ceiling and the model relative to it",
    "exclusions": "Excluded participants (pre-registered rules)",
    "position_bias": "Position bias (share choosing screen position A; participants and trials "
    "crossed, Wald {level} on the logit scale, t test against 0.5 on Satterthwaite df, Holm "
    "across instruments)",
    "fatigue": "Fatigue (consent by trial-index bin)",
    "psychometric": "Consent by model margin (bins)",
    "catch": "Catch-trial pass rates",
    "test_retest": "Test-retest consistency on repeated comparisons",
    "power_inputs": "Power planner: pilot inputs",
    "power_plan": "Power planner: participants needed (power at alpha_per_instrument = alpha / "
    "instruments, Bonferroni's bound for the Holm-adjusted tests)",
}
ORDER = list(TITLES)
# Shown under a table's heading: how to read its tests. The answer- and participant-level tests
# of consent leave out a source of dependence, so their p-values are too small (docs/statistics.md).
MIXED_NOTE = (
    "Instrument terms: each instrument's log-odds at its own trials' mean margin (covariates "
    "centred within instrument); Wald test of log-odds 0 (consent 0.5) against t on the "
    "instrument's trials - 1 df, allowing for participants and trials crossed, Holm across "
    "instruments (p_adj); covariates are not adjusted. An instrument left out of the fit counts "
    "as p = 1 in the Holm family (its warning gives the family's size)."
)
# An instrument left out of the fits (every answer agrees, or none does) has no row in these
# tables but is in their Holm families: without saying so, p_adj cannot be recomputed from the
# rows shown (review r2 F4).
CONTRASTS_NOTE = (
    "Holm across all pairs of the instruments answered (p_adj): a pair with an instrument left "
    "out of the fit counts as p = 1 and has no row (its warning gives the family's size)."
)
VARIATIONAL_NOTE = (
    "Descriptive: the variational (mean-field) posterior intervals are known to be too narrow "
    "(the posterior sd ignores the dependence of the fixed on the random effects; in simulation "
    "it was about a third of the sampling se), so this table gives no se, test or p-value. The "
    "tests of consent are mixed_laplace's and the crossed table's."
)
ANSWER_LEVEL_NOTE = (
    "Descriptive: the Wilson intervals treat every answer as independent, but answers cluster by "
    "participant, so they are too narrow."
)
NOTES = {
    "consent": "Descriptive: the exact binomial test and the Wilson and Clopper-Pearson intervals "
    "treat every answer as independent, but answers cluster by participant and by trial, so the "
    "p-values are too small and the intervals too narrow. The tests of consent against 0.5 that "
    "allow for participants and trials crossed are the Laplace mixed model's instrument terms "
    "(p_adj in mixed_laplace) and the crossed table.",
    "participant_consent": "Descriptive: the t test treats participants as the only random unit "
    "and ignores the variance between trials (the language-as-fixed-effect fallacy, Clark 1973), "
    "so its p-values are too small when trials differ. The tests of consent against 0.5 that "
    "allow for participants and trials crossed are the Laplace mixed model's instrument terms "
    "(p_adj in mixed_laplace) and the crossed table.",
    "mixed": VARIATIONAL_NOTE,
    "mixed_laplace": MIXED_NOTE,
    "instrument_contrasts": CONTRASTS_NOTE,
    "reliability": "Trial-bootstrap percentile intervals: with few trials (under 40) they are "
    "too narrow, covering 77-82 % at 10 trials and 90-91 % at 30 at nominal 95 % in simulation; "
    "a warning names each instrument with so few.",
    "position_bias": "Tested with participants and trials crossed (the crossed table's moment "
    "estimates): a participant's own lean towards A or B counts as clustering, not as a bias of "
    "the study. The same_position_responding exclusion rule judges participants one by one.",
    "fatigue": ANSWER_LEVEL_NOTE,
    "psychometric": ANSWER_LEVEL_NOTE,
    "catch": ANSWER_LEVEL_NOTE,
    "test_retest": ANSWER_LEVEL_NOTE,
    "gee": "Instrument terms: Wald t test of log-odds 0 (consent 0.5) on participants - 1 df, "
    "Mancl-DeRouen bias-reduced sandwich se, Holm across instruments (p_adj; an instrument "
    "left out of the fit counts as p = 1 and has no row). Robust to "
    "clustering by participant only, not by trial: its se leaves out between-trial variation, "
    "so with few trials it rejects a true 0.5 far too often (about 0.3 at 10 trials per "
    "instrument and trial SD 1 in simulation). A cross-check; the crossed and mixed_laplace "
    "tests are the primary ones.",
}
# A p-value below this is shown as a bound: the exact binomial test's p for 14000 of 20000 is
# about 1e-695, which a double holds as 0.0 (the files keep that 0.0).
P_FLOOR = 1e-300
HIDDEN = {"participants", "participant_rates", "psychometric_fit"}  # downloads only
# The report page's script that leaves a table box a tab stop only where its table scrolls; the
# standalone summary carries it inline, so both read the same way from the keyboard.
TABLE_BOXES_JS = Path(__file__).resolve().parents[3] / "static" / "reports" / "table-boxes.js"


def level(confidence: float) -> str:
    """An interval's level as a label: 0.95 -> '95%', 0.8 -> '80%', 0.975 -> '97.5%'."""
    return f"{100 * confidence:g}%"


def config_level(config: dict | None) -> str:
    """The level a report's intervals were computed at: its config's `confidence`, as a label."""
    return level((config or {}).get("confidence", ReportConfig.confidence))


def report_level(report: Report) -> str:
    return config_level(report.meta.get("config"))


def title(name: str, level_text: str) -> str:
    return TITLES[name].format(level=level_text) if name in TITLES else name


def note(name: str) -> str:
    """The note shown under a table's heading ("" for none)."""
    return NOTES.get(name, "")


def format_value(value, column: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if column.startswith("p_"):
            if value < P_FLOOR:  # 0.0 included: below double precision, never "0"
                return f"< {P_FLOOR:g}"
            return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"
        if column in {"n", "k", "stat"} and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        if abs(value) >= 1e6:  # e.g. an interval end the likelihood barely bounds: 5.86e+203
            return f"{value:.3g}"
        return f"{value:.3f}"
    return str(value)


def rounded(table: pd.DataFrame) -> list[list[str]]:
    return [
        [format_value(v, c) for c, v in zip(table.columns, row)]
        for row in table.itertuples(index=False)
    ]


def table_names(tables: dict) -> list[str]:
    """Tables to show, in reading order (per-participant tables are downloads only)."""
    shown = [n for n in ORDER if n in tables]
    return shown + [n for n in tables if n not in ORDER and n not in HIDDEN]


def markdown_summary(report: Report) -> str:
    meta = report.meta
    lines = ["# Listening-study report", ""]
    lines += [
        f"- answers: {meta.get('n_answers', 0)} from {meta.get('n_participants', 0)} "
        f"participants; excluded participants: {meta.get('n_excluded', 0)}; answers "
        f"analysed for consent: {meta.get('n_scored_answers', 0)}",
        "",
    ]
    for m in report.messages:
        lines.append(f"> **{m['level']}** ({m['part']}): {m['text']}")
    for name in table_names(report.tables):
        table = report.tables[name]
        lines += ["", f"## {title(name, report_level(report))}", ""]
        if note(name):
            lines += [f"_{note(name)}_", ""]
        if table.empty:
            lines.append("(empty)")
            continue
        lines.append("| " + " | ".join(map(str, table.columns)) + " |")
        lines.append("|" + "---|" * len(table.columns))
        lines += ["| " + " | ".join(r) + " |" for r in rounded(table)]
    return "\n".join(lines) + "\n"


def html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rounded(table)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_summary(report: Report, plots: dict[str, str]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Report</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:"
        "collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        # A wide table scrolls in its own box, not the page (WCAG 2.1 1.4.10 reflow).
        ".report-table{overflow-x:auto}"
        # Plots shrink to the column (matplotlib's SVGs carry a fixed width), as on the page.
        "figure{margin:1em 0;max-width:100%}figure svg{max-width:100%;height:auto}"
        "</style></head><body><h1>Listening-study report</h1>",
    ]
    # Results first: errors, then the notes counted in one line and listed when opened.
    shown = table_names(report.tables)
    parts.append(notes_html(report.messages, shown))
    parts += [f"<figure>{svg}</figure>" for svg in plots.values()]
    under, _top = placed_warnings(report.messages, shown)
    for name in shown:
        anchor = f"table-{html.escape(name)}"
        parts.append(f"<h2 id='{anchor}'>{html.escape(title(name, report_level(report)))}</h2>")
        parts.append(warnings_html(under.get(name, [])))
        if note(name):
            parts.append(f"<p class='table-note'>{html.escape(note(name))}</p>")
        if not report.tables[name].empty:
            # Focusable (tabindex 0) so the keyboard can scroll it, named by its heading; the
            # script keeps that only where the table is wider than the box.
            parts.append(
                f"<div class='report-table' role='region' tabindex='0' aria-labelledby='{anchor}'>"
                f"{html_table(report.tables[name])}</div>"
            )
    return "".join(parts) + f"<script>{_table_boxes_script()}</script></body></html>"


@cache
def _table_boxes_script() -> str:
    return TABLE_BOXES_JS.read_text()
