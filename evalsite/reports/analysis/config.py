"""The report's settings: ReportConfig (with the study's ExclusionRules) and the instrument names
(CONDITIONS). Plain dataclasses and checks without numpy, pandas or scipy, so the site reads and
compares a study's config (evalsite.reports.study_config) without loading the statistics, which
load where a report is computed (report.build_report)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The same order as csn_model.CONDITIONS (a test checks they agree); duplicated here so the
# analysis imports neither torch nor anything else heavy.
CONDITIONS: tuple[str, ...] = ("drums", "bass", "piano", "guitar", "others")


@dataclass(frozen=True)
class ExclusionRules:
    require_screening: bool = True
    min_catch_accuracy: float = 0.75  # share of scored catch trials answered correctly
    min_catch_trials: int = 2  # the catch rule applies once a participant has this many
    # Catch kinds with a right answer; "repeat" measures consistency (test-retest), which honest
    # listeners often lack on hard trials, so it is reported but not an exclusion by default.
    catch_kinds: tuple[str, ...] = ("identical", "attention")
    max_same_position_share: float = 0.9  # share of answers on one screen position (A or B)
    min_answers_for_position_rule: int = 20
    min_median_rt_ms: float = 0.0  # excluded when the median response time is lower (0: off)
    # An answer quicker than this after the buttons unlock is implausibly fast: below a human's
    # reaction to the unlock (docs/statistics.md; this project's choice).
    fast_ms: float = 250.0
    max_fast_share: float = 0.5  # excluded when more than this share of answers is fast

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict | None) -> ExclusionRules:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"exclusion rules: unknown field(s) {unknown}; "
                f"expected some of {sorted(cls.__dataclass_fields__)}"
            )
        if "catch_kinds" in raw:
            raw["catch_kinds"] = tuple(raw["catch_kinds"])
        return cls(**raw)


@dataclass(frozen=True)
class ReportConfig:
    confidence: float = 0.95
    n_boot: int = 1000
    seed: int = 20240406
    rules: ExclusionRules = field(default_factory=ExclusionRules)
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
            raw["rules"] = ExclusionRules.from_dict(raw["rules"])
        if "power_trials_grid" in raw:
            raw["power_trials_grid"] = tuple(int(m) for m in raw["power_trials_grid"])
        if "planned_instruments" in raw:
            raw["planned_instruments"] = planned_instruments(raw["planned_instruments"])
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


def planned_instruments(names) -> tuple[str, ...]:
    """The report config's planned_instruments (a list of CONDITIONS names) as a tuple; a
    ValueError names the field and the unknown names."""
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise ValueError(
            f"report config: planned_instruments {unknown}: expected names from "
            f"{', '.join(CONDITIONS)}"
        )
    return tuple(names)
