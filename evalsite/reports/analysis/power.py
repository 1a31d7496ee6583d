"""Power planner from pilot data: observed agreement, the intra-class correlation of agreement
within participants, and time per trial give the participants and trials needed per instrument
for a target interval half-width or for a power against chance, with Kish's design effect
1 + (m - 1) * ICC for m repeated trials per participant. Power is planned for each instrument's
test at alpha / (number of instruments planned) (`alpha_per_instrument`), the Bonferroni bound
for the Holm adjustment the report's tests carry: conservative, as Holm rejects whatever
Bonferroni does.

A pilot estimate of 0 or 1 (every answer agrees, or none does) has p(1 - p) = 0 and would plan no
answers at all, though that interval is still wide. There the plan uses the end of the pilot's
Wilson interval (at the report's confidence) nearest 0.5: the least favourable proportion the pilot
does not rule out, the usual conservative planning value, taken from the pilot's own interval
rather than the blanket 0.5. Both the width and the power columns use it.

An ICC the pilot cannot estimate (one participant, one answer each, or answers that all agree)
is planned with `power_assumed_icc` from the report config where it is set, else with 0 (design
effect 1: as if answers were independent, which understates the participants needed if answers
cluster by participant). An info note names the instrument, why, and the ICC used.

A study's design gives each participant at most one main trial per instrument and reference
piece (evalsite/studies/design.py `most_main_trials`), and no more than its
`trials_per_participant` over all instruments, which each instrument shares
(evalsite/reports/study_config.py `design_main_trials`): where they recur or the setting is low,
fewer than the trial set. Under that cap every participant gets the whole capped total, some the
floor of an instrument's share and some its ceiling, so the count is the mean share, fractional
where the total does not split evenly; the design effect and participants = answers / m take a
mean m. The caller passes that count (`design_trials`; the site from the study, this module never
imports Django): the plan adds a row at it whose minutes count the whole session a participant
gets (the counts of every instrument in `design_trials` added up), marks rows above its ceiling
`within_design` false (this trial set gives no participant that many), and an info note says
which count it used. The minutes at another m of an instrument count m of it and, of each other
instrument, m or the fewer its design gives.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .consent import scored
from .inputs import instruments_present
from .proportions import wilson_interval


def icc_oneway(values: np.ndarray, groups: np.ndarray) -> float:
    """ICC(1) from one-way ANOVA (Shrout & Fleiss 1979, case 1), unbalanced groups allowed via
    n0 = (N - sum n_i^2 / N) / (k - 1); truncated at 0."""
    frame = pd.DataFrame({"y": np.asarray(values, float), "g": np.asarray(groups)})
    g = frame.groupby("g")["y"]
    n_i, means = g.size().to_numpy(float), g.mean().to_numpy()
    k, n = len(n_i), n_i.sum()
    if k < 2 or n - k < 1:
        return np.nan
    grand = frame["y"].mean()
    msb = float((n_i * (means - grand) ** 2).sum() / (k - 1))
    msw = float(((frame["y"] - g.transform("mean")) ** 2).sum() / (n - k))
    n0 = (n - (n_i**2).sum() / n) / (k - 1)
    denom = msb + (n0 - 1) * msw
    return max(0.0, (msb - msw) / denom) if denom > 0 else np.nan


def design_effect(m: float, icc: float) -> float:
    return 1 + (m - 1) * icc


def n_for_half_width(p: float, half_width: float, confidence: float = 0.95) -> float:
    """Independent answers for a Wald interval of the given half-width (Cochran 1977)."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    return float(z * z * p * (1 - p) / half_width**2)


def n_for_power(p: float, p0: float = 0.5, alpha: float = 0.05, power: float = 0.8) -> float:
    """Independent answers for a two-sided one-sample test of a proportion against p0 (normal
    approximation, e.g. Chow, Shao & Wang, Sample Size Calculations, eq. 4.1.2)."""
    if p == p0:
        return np.inf
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return float(((za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p * (1 - p))) / (p - p0)) ** 2)


def planning_proportion(estimate: float, n: int, confidence: float = 0.95) -> float:
    """The pilot estimate, or where it is 0 or 1 the end of its Wilson interval nearest 0.5."""
    if not n or estimate not in (0.0, 1.0):
        return estimate
    low, high = wilson_interval(round(estimate * n), int(n), confidence)
    return low if estimate == 1.0 else high


def planning_icc(icc: float, assumed_icc: float | None) -> float:
    """The pilot's ICC, or where it cannot be estimated the assumed one (0 if none is set)."""
    if not np.isnan(icc):
        return icc
    return 0.0 if assumed_icc is None else float(assumed_icc)


def planning_notes(
    inputs: pd.DataFrame, confidence: float = 0.95, assumed_icc: float | None = None
) -> list[str]:
    """One line per instrument whose pilot estimate is 0 or 1, or whose ICC cannot be
    estimated, saying what the plan used."""
    notes = []
    for _, r in inputs.iterrows():
        p = planning_proportion(r["estimate"], r["n"], confidence)
        if p != r["estimate"]:
            end = "lower" if r["estimate"] == 1.0 else "upper"
            notes.append(
                f"power plan for {r['term']}: every one of its {int(r['n'])} pilot answers has "
                f"agree = {int(r['estimate'])}, which would plan no answers; planned with "
                f"{p:.3f}, the {end} end of its {100 * confidence:g}% Wilson interval, instead"
            )
        if np.isnan(r["icc"]):
            notes.append(_icc_note(r, assumed_icc))
    return notes


def _icc_note(r: pd.Series, assumed_icc: float | None) -> str:
    if r["n_participants"] < 2:
        why = "only one pilot participant answered it"
    elif r["n"] <= r["n_participants"]:
        why = "each pilot participant answered it once"
    else:  # no variance within or between participants
        why = f"all its pilot answers have agree = {r['estimate']:g}"
    head = f"power plan for {r['term']}: the ICC within participants cannot be estimated ({why})"
    if assumed_icc is None:
        return (
            f"{head}; planned with ICC 0 (design effect 1), as if its answers were independent, "
            "which understates the participants needed if answers cluster by participant; "
            "power_assumed_icc in the report config sets another value"
        )
    return (
        f"{head}; planned with the ICC power_assumed_icc = {assumed_icc:g} from the report config"
    )


def pilot_inputs(df: pd.DataFrame) -> pd.DataFrame:
    data = scored(df)
    rows = []
    for term in instruments_present(data):
        part = data[data["instrument"] == term]
        m = part.groupby("participant").size()
        rt = part["response_ms"].dropna()
        rows.append(
            {
                "term": term,
                "estimate": float(part["agree"].mean()),
                "icc": icc_oneway(part["agree"].to_numpy(), part["participant"].to_numpy()),
                "trials_per_participant": float(m.mean()),
                "seconds_per_trial": float(rt.median() / 1000) if len(rt) else np.nan,
                "n": len(part),
                "n_participants": int(len(m)),
            }
        )
    return pd.DataFrame(rows)


def plan(
    inputs: pd.DataFrame,
    trials_grid=(5, 10, 20, 40),
    half_width: float = 0.05,
    power: float = 0.8,
    alpha: float = 0.05,
    confidence: float = 0.95,
    assumed_icc: float | None = None,
    design_trials: dict[str, float] | None = None,
    listen_seconds: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Participants needed per instrument for each number of trials per participant, planned
    with `planning_p` (the pilot estimate, or its Wilson bound nearest 0.5 where it is 0 or 1)
    and `planning_icc` (the pilot's ICC, or where it cannot be estimated `assumed_icc`, else 0).
    `design_trials`: per instrument, the main trials the study's design gives one participant
    (a mean where a cap over all instruments shares them); that count joins the grid, its row's
    minutes are the whole session, and rows above its ceiling are not `within_design`.
    `listen_seconds`: per instrument, the listening a trial requires before its answer unlocks,
    added to the pilot's median response_ms (which starts at the unlock) in the minutes."""
    if assumed_icc is not None and not 0.0 <= assumed_icc <= 1.0:
        raise ValueError(f"report config: power_assumed_icc is {assumed_icc}; expected 0 to 1")
    rows = []
    n_inst = max(len(inputs), 1)
    # The report's tests of consent are Holm-adjusted across the instruments: power each at
    # Bonferroni's alpha / m, the level of Holm's first step and so the conservative bound (Holm
    # can only reject more). Unadjusted, a plan for 0.8 gave 0.675 by p_adj with 5 instruments.
    alpha_each = alpha / n_inst
    design_trials, listen_seconds = design_trials or {}, listen_seconds or {}
    for _, r in inputs.iterrows():
        listen = listen_seconds.get(r["term"], np.nan)
        per_trial = r["seconds_per_trial"] + (0.0 if np.isnan(listen) else listen)
        icc = planning_icc(r["icc"], assumed_icc)
        p = planning_proportion(r["estimate"], r["n"], confidence)
        most = design_trials.get(r["term"])
        grid = sorted(set(trials_grid) | ({most} if most else set()))
        for m in grid:
            de = design_effect(m, icc)
            n_w = n_for_half_width(p, half_width, confidence) * de
            n_p = n_for_power(p, 0.5, alpha_each, power) * de
            given = _trials_given(m, r["term"], inputs["term"], design_trials)
            minutes = given * per_trial / 60
            rows.append(
                {
                    "term": r["term"],
                    "planning_p": p,
                    "planning_icc": icc,
                    "trials_per_participant": m,
                    "design_effect": de,
                    "answers_for_width": n_w,
                    "participants_for_width": math.ceil(n_w / m) if np.isfinite(n_w) else None,
                    "answers_for_power": n_p,
                    "participants_for_power": math.ceil(n_p / m) if np.isfinite(n_p) else None,
                    "minutes_per_participant": minutes,
                    "listen_seconds_per_trial": listen,
                    "design_trials_per_participant": most if most else np.nan,
                    "within_design": not most or m <= _ceil(most),
                    "half_width": half_width,
                    "power": power,
                    "alpha": alpha,
                    "alpha_per_instrument": alpha_each,
                }
            )
    return pd.DataFrame(rows)


def _trials_given(m: float, term: str, terms, design_trials: dict[str, float]) -> float:
    """The main trials a participant gets in all at m of `term`. At its design count, the whole
    session the design gives (every instrument's count in `design_trials`, planned or not: the
    cap's total where trials_per_participant binds, as `select_trials` fills every participant
    to it). At another m: m of it, and of each other planned instrument m or the fewer its
    design gives, as a participant capped by trials_per_participant gets no more of them for
    planning more of this one."""
    if m == design_trials.get(term):
        return sum(design_trials.values())
    return m + sum(min(m, design_trials.get(t, m)) for t in terms if t != term)


def _ceil(share: float) -> int:
    # the most of it any participant gets; rounded first so that a sum of fractions that is
    # whole up to the float's error (2.0000000001) is not taken for more
    return math.ceil(round(share, 9))


def design_notes(inputs: pd.DataFrame, design_trials: dict[str, float]) -> list[str]:
    """One line per planned instrument with a design count: which count the plan used."""
    notes = []
    for term in inputs["term"] if len(inputs) else []:
        if most := design_trials.get(term):
            notes.append(
                f"power plan for {term}: the study's design gives each participant {most:.3g} "
                "main trials of it on average (one per reference, and its share of the main "
                "trials a participant gets in all, which trials_per_participant caps over all "
                "instruments: design_main_trials in the report config; where that share is not "
                "whole, some participants get one more than others); planned at it too, with the "
                "whole session in its minutes, and rows of more than "
                f"{_ceil(most)} trials per participant are within_design = false: this design "
                "cannot give them (draw or add trials on more distinct references, or raise "
                "trials_per_participant, for those)"
            )
    return notes


def listening_notes(inputs: pd.DataFrame, listen_seconds: dict[str, float]) -> list[str]:
    """One line where the plan's minutes leave out the required listening (not known for some
    planned instrument): they are then the time after the answer unlocks only."""
    unknown = [t for t in (inputs["term"] if len(inputs) else []) if t not in listen_seconds]
    if not unknown:
        return []
    return [
        f"power plan for {', '.join(unknown)}: minutes_per_participant counts only the time from "
        "the answer's unlock to the click (the median response_ms), not the listening each trial "
        "requires before the unlock (its three clips to their end, about 13.5 s), which "
        "the report config's listen_seconds_per_trial does not give for it: add that listening "
        "per trial"
    ]
