"""The whole report: tidy answers in, named tidy tables out, plus messages and timings.

Each part runs on its own: a part the data cannot support (one participant, identical answers)
leaves a message naming the part and the reason, and the other parts still run. Nothing here
imports Django; the site and the CSV command both call build_report.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field

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
    inputs,
    mixed,
    power,
)
from .inputs import ReportInputError, instruments_present, normalise_answers

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ReportConfig:
    confidence: float = 0.95
    n_boot: int = 1000
    seed: int = 20240406
    rules: exclusions.ExclusionRules = field(default_factory=exclusions.ExclusionRules)
    mixed_model: bool = True
    # statsmodels' variational BinomialBayesMixedGLM runs up to this many analysed answers; the
    # Laplace fit of the same model always runs (minutes against seconds at 100k answers).
    bayes_max_answers: int = 8000
    blas_threads: int = 1  # the dense steps are small: extra BLAS threads only contend
    fatigue_bins: int = 5
    margin_bins: int = 5
    power_half_width: float = 0.05
    power_target: float = 0.8
    power_alpha: float = 0.05
    power_trials_grid: tuple[int, ...] = (5, 10, 20, 40)
    # ICC the power plan assumes for an instrument whose pilot cannot estimate one (None: 0, as
    # if answers were independent; an info note says so either way).
    power_assumed_icc: float | None = None
    # The study's instruments (site: Study.instruments); one without answers gets a warning.
    planned_instruments: tuple[str, ...] = ()
    # Per instrument, the main trials the study's design gives one participant on average (site:
    # study_config.design_main_trials: one per reference piece, and its expected share of the
    # trials_per_participant that caps all instruments together, fractional where that does not
    # split evenly); the power plan plans at it. {}: not known.
    design_main_trials: dict[str, float] = field(default_factory=dict)
    # Per instrument, the seconds of listening a main trial requires before its answer unlocks
    # (site: the three clips' full durations and their renditions' silence, averaged over its
    # main trials, as the page waits for all three to end); the
    # power plan adds it to the time per answer, which response_ms counts from the unlock. {}:
    # not known (the plan then says its minutes leave the listening out).
    listen_seconds_per_trial: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict | None) -> ReportConfig:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"report config: unknown field(s) {unknown}")
        if "rules" in raw:
            raw["rules"] = exclusions.ExclusionRules.from_dict(raw["rules"])
        if "power_trials_grid" in raw:
            raw["power_trials_grid"] = tuple(int(m) for m in raw["power_trials_grid"])
        if "planned_instruments" in raw:
            raw["planned_instruments"] = inputs.planned_instruments(raw["planned_instruments"])
        if "design_main_trials" in raw:
            raw["design_main_trials"] = _design_main_trials(raw["design_main_trials"])
        if "listen_seconds_per_trial" in raw:
            raw["listen_seconds_per_trial"] = _listen_seconds(raw["listen_seconds_per_trial"])
        return cls(**raw)


def _design_main_trials(raw) -> dict[str, float]:
    bad = not isinstance(raw, dict) or any(
        type(v) not in (int, float) or not 0 < v < float("inf") or not isinstance(k, str)
        for k, v in raw.items()
    )
    if bad:
        raise ValueError(
            f"report config: design_main_trials is {raw!r}; expected instrument names mapped to "
            "positive numbers (main trials per participant, a mean where it is fractional)"
        )
    return dict(raw)


def _listen_seconds(raw) -> dict[str, float]:
    ok = isinstance(raw, dict) and all(
        isinstance(k, str) and type(v) in (int, float) and 0 <= v < float("inf")
        for k, v in raw.items()
    )
    if not ok:
        raise ValueError(
            f"report config: listen_seconds_per_trial is {raw!r}; expected instrument names "
            "mapped to seconds (finite numbers of at least 0)"
        )
    return {k: float(v) for k, v in raw.items()}


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
        report.note(
            "warning",
            "consent",
            f"participant-level t test for {r['term']} undefined: all {int(r['n'])} participants "
            f"agree with the model at the same rate ({r['estimate']:.3g}), so its t, p and "
            "interval are left empty",
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
