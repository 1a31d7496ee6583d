"""The whole report: tidy answers in, named tidy tables out, plus messages and timings.

Each part runs on its own: a part the data cannot support (one participant, identical answers)
leaves a message naming the part and the reason, and the other parts still run. Nothing here
imports Django; the site and the CSV command both call build_report.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import (
    agreement,
    bootstrap,
    consent,
    crossed,
    diagnostics,
    exclusions,
    input_notes,
    mixed,
    power,
)
from .config import ReportConfig
from .inputs import ReportInputError, instruments_present, normalise_answers
from .result import FORMAT_VERSION, Report


def answers_digest(df: pd.DataFrame) -> str:
    """sha256 of the answers as CSV: identifies the exact input a report was computed from."""
    return hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()


def build_report(
    raw: pd.DataFrame, config: ReportConfig | None = None, source: str = "answers"
) -> Report:
    config = config or ReportConfig()
    with threadpool_limits(limits=config.blas_threads):
        return _build(raw, config, source)


def _build(raw: pd.DataFrame, config: ReportConfig, source: str) -> Report:
    report = Report(meta={"config": config.to_dict(), "source": source, "versions": _versions()})
    t0 = time.perf_counter()
    try:
        df = normalise_answers(input_notes.without_practice(report, raw, source), source)
    except ReportInputError as exc:
        report.note("error", "input", str(exc))
        return report
    report.timings["validate"] = time.perf_counter() - t0
    report.meta.update(
        n_answers=len(df),
        n_participants=int(df["participant"].nunique()),
        instruments=instruments_present(df),
    )
    input_notes.note_unknown_positions(report, df)
    input_notes.note_unanswered_instruments(report, df, config.planned_instruments)
    clean = _run_exclusions(report, df, config)
    if clean is None:
        return report
    _check_shape(report, clean)
    scorable = not consent.scored(clean).empty
    if scorable:
        input_notes.note_unscored_instruments(report, df, clean)
    for name, part in _parts(config):
        if not scorable and name in NEEDS_MODEL_CHOICES:
            continue
        t = time.perf_counter()
        try:
            part(report, clean, df, config)
        except FIT_ERRORS as exc:
            report.note("warning", name, f"{name} not computed: {exc}")
        report.timings[name] = time.perf_counter() - t
    report.timings["total"] = time.perf_counter() - t0
    return report


def _versions() -> dict:
    import scipy
    import statsmodels

    return {
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
        "format": FORMAT_VERSION,
    }


def _run_exclusions(report: Report, df: pd.DataFrame, config: ReportConfig):
    t = time.perf_counter()
    excl, participants = exclusions.find_exclusions(df, config.rules)
    report.tables["participants"] = participants
    report.tables["exclusions"] = excl
    for text in exclusions.unscored_catch_notes(df, config.rules):
        report.note("warning", "exclusions", text)
    clean = exclusions.apply_exclusions(df, excl)
    report.meta.update(
        n_excluded=int(excl["participant"].nunique()),
        n_participants_analysed=int(clean["participant"].nunique()),
        n_answers_analysed=len(clean),
        n_scored_answers=len(consent.scored(clean)),
    )
    report.timings["exclusions"] = time.perf_counter() - t
    if clean.empty:
        report.note(
            "error",
            "exclusions",
            f"all {df['participant'].nunique()} participants were excluded by the "
            "pre-registered rules; see the exclusions table",
        )
        return None
    if consent.scored(clean).empty:
        report.note(
            "warning",
            "consent",
            "no answer can be scored against the model: every "
            "answer is a catch trial or its trial has no model choice yet (model_choice "
            "empty); only agreement among people and diagnostics are computed",
        )
    return clean


def _check_shape(report: Report, clean: pd.DataFrame) -> None:
    if clean["participant"].nunique() < 2:
        report.note(
            "warning",
            "input",
            "only one participant: participant-level tests, the "
            "mixed model and agreement among people need at least two",
        )
    agree = consent.scored(clean)["agree"]
    if agree.nunique() == 1:
        report.note(
            "warning",
            "input",
            f"every analysed answer has agree = {int(agree.iloc[0])}:"
            " the intervals are one-sided and the models cannot be fitted",
        )


def _consent(report, clean, df, config):
    report.tables["consent"] = consent.consent_table(clean, config.confidence)
    table = consent.participant_consent_table(clean, config.confidence)
    report.tables["participant_consent"] = table
    report.tables["participant_rates"] = consent.participant_rates(clean)
    for _, r in consent.undefined_t_terms(table).iterrows():
        n = int(r["n"])
        why = (
            "only 1 participant answered it"
            if n < 2
            else f"all {n} participants agree with the model at the same rate ({r['estimate']:.3g})"
        )
        family = " (its p counts as 1 in the instruments' Holm family)"
        report.note(
            "warning",
            "consent",
            f"participant-level t test for {r['term']} undefined: {why}, so its t, p and "
            f"interval are left empty{family if r['term'] != 'overall' else ''}",
        )


def _crossed(report, clean, df, config):
    report.tables["crossed"], notes = crossed.crossed_table(clean, config.confidence)
    for text in notes:
        report.note("warning", "crossed", text)


def _bootstrap(report, clean, df, config):
    report.tables["bootstrap"], notes = bootstrap.cluster_bootstrap(
        clean, config.n_boot, config.seed, config.confidence
    )
    for text in notes:
        report.note("warning", "bootstrap", text)


def _mixed(report, clean, df, config):
    if not config.mixed_model:
        report.note("info", "mixed", "mixed model switched off in the report config")
        return
    laplace = _fit(report, "mixed_laplace", lambda: mixed.laplace_model(clean, config.confidence))
    if laplace:
        report.tables["mixed_laplace"], report.tables["instrument_contrasts"] = laplace
    n = len(consent.scored(clean))
    if n <= config.bayes_max_answers:
        bayes = _fit(
            report, "mixed", lambda: mixed.mixed_model(clean, config.confidence, config.seed)
        )
        if bayes:
            report.tables["mixed"] = bayes[0]
    else:
        report.note(
            "info",
            "mixed",
            f"statsmodels BinomialBayesMixedGLM skipped: {n} answers exceed "
            f"bayes_max_answers={config.bayes_max_answers}; the Laplace fit of the same "
            "model is in the mixed_laplace table",
        )
    # Always the Laplace fit: the variational fit's intervals are too narrow to map into
    # probability intervals (mixed.VARIATIONAL_NOTE). `fit` says so in every row.
    fixed = report.tables.get("mixed_laplace")
    if fixed is not None:
        probabilities = mixed.instrument_probabilities(fixed, instruments_present(clean))
        report.tables["mixed_probability"] = probabilities.assign(fit="laplace")


def _fit(report, name, fit, part="mixed"):
    """One model fit, on its own: a fit the data cannot support (a singular Hessian, say) leaves a
    warning naming it, and the other fits still run. Returns its tables, or None."""
    try:
        *tables, notes = fit()
    except FIT_ERRORS as exc:
        report.note("warning", part, f"{name} not computed: {exc}")
        return None
    for level, text in notes:  # the fits share their design's notes: say each once
        if not any(m["level"] == level and m["text"] == text for m in report.messages):
            report.note(level, part, text)
    return tables


def _gee(report, clean, df, config):
    gee = _fit(report, "gee", lambda: mixed.gee_check(clean, config.confidence), "gee")
    if gee:
        report.tables["gee"] = gee[0]


def _agreement(report, clean, df, config):
    rel, ceiling, notes = agreement.agreement_tables(
        clean, config.n_boot, config.seed + 1, config.confidence
    )
    for text in notes:
        report.note("warning", "agreement", text)
    if rel.empty:
        report.note(
            "warning",
            "agreement",
            "no trial was answered by two or more participants: "
            "agreement among people and the noise ceiling need repeated ratings",
        )
    report.tables["reliability"], report.tables["noise_ceiling"] = rel, ceiling
    above = agreement.above_ceiling_note(ceiling)
    if above:
        report.note("warning", "agreement", above)


def _diagnostics(report, clean, df, config):
    c = config.confidence
    report.tables["position_bias"], notes = diagnostics.position_bias(clean, c)
    for text in notes:
        report.note("warning", "diagnostics", text)
    report.tables["fatigue"] = diagnostics.fatigue(clean, config.fatigue_bins, c)
    left_out = diagnostics.fatigue_left_out(clean)
    if left_out:
        report.note(
            "info",
            "diagnostics",
            f"{left_out} answers (of {len(consent.scored(clean))} scored) left out of the "
            "fatigue table: their trial_index is empty, so their place in the session is unknown",
        )
    bins, fit = diagnostics.psychometric(clean, config.margin_bins, c)
    report.tables["psychometric"], report.tables["psychometric_fit"] = bins, fit
    report.tables["catch"] = diagnostics.catch_pass_rates(df, set(clean["participant"]), c)
    report.tables["test_retest"] = diagnostics.test_retest(clean, c)


def _power(report, clean, df, config):
    inputs = power.pilot_inputs(clean)
    report.tables["power_inputs"] = inputs
    report.tables["power_plan"] = power.plan(
        inputs,
        config.power_trials_grid,
        config.power_half_width,
        config.power_target,
        config.power_alpha,
        config.confidence,
        config.power_assumed_icc,
        config.design_main_trials,
        config.listen_seconds_per_trial,
    )
    for text in power.planning_notes(inputs, config.confidence, config.power_assumed_icc):
        report.note("info", "power", text)
    for text in power.design_notes(inputs, config.design_main_trials):
        report.note("info", "power", text)
    for text in power.listening_notes(inputs, config.listen_seconds_per_trial):
        report.note("info", "power", text)


FIT_ERRORS = (mixed.ModelFitError, ValueError, np.linalg.LinAlgError)
NEEDS_MODEL_CHOICES = {"consent", "crossed", "bootstrap", "mixed", "gee", "power"}


def _parts(config: ReportConfig):
    return [
        ("consent", _consent),
        ("crossed", _crossed),
        ("bootstrap", _bootstrap),
        ("mixed", _mixed),
        ("gee", _gee),
        ("agreement", _agreement),
        ("diagnostics", _diagnostics),
        ("power", _power),
    ]
