"""A simulated study in the export's tidy answers format, with known truth.

Attentive participants agree with the model's choice with a per-instrument probability shaped by
participant and trial random intercepts (logit scale), the model's margin and a small position
lapse; careless participants click one screen position quickly and fail catch trials. The
intercepts are solved so that each instrument's *marginal* consent among attentive participants
equals the requested value, which is what the report should recover.

Each participant answers the whole pool of regular trials unless told otherwise: a study's design
gives at most one main trial per instrument and reference piece (evalsite/studies/design.py
`most_main_trials`), so where they recur a participant answers fewer. The caller passes
that count (`main_trials_per_participant`; this module never imports Django), and the truth says
which count each instrument used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special

from .inputs import CONDITIONS


@dataclass(frozen=True)
class SimulationSpec:
    consent: dict[str, float] = field(
        default_factory=lambda: {
            "drums": 0.8,
            "bass": 0.6,
            "piano": 0.65,
            "guitar": 0.75,
            "others": 0.55,
        }
    )
    n_participants: int = 40
    trials_per_instrument: int = 20  # the pool of distinct regular trials per instrument
    trials_per_participant: int | None = None  # None: every participant answers the whole pool
    # Per instrument, the most regular trials one participant answers: the design's count
    # (design.most_main_trials, computed by the caller). None, or an instrument left out: its pool.
    main_trials_per_participant: dict[str, int] | None = None
    n_identical_catch: int = 4
    n_repeat_catch: int = 4
    participant_sd: float = 0.5  # random intercept SDs, logit scale
    trial_sd: float = 0.5
    margin_slope: float = 1.0  # logit change per unit of (margin - 0.5); margin ~ U(0, 1)
    position_lapse: float = 0.1  # attentive answers that just take position A
    careless_share: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _intercept_for(target: float, sd: float, lapse: float) -> float:
    """Logit intercept a with (1 - lapse) E[expit(a + e)] + lapse / 2 = target, e ~ N(0, sd^2).

    The margin term is symmetric around 0.5 and folded into sd by the caller's quadrature.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()

    def marginal(a: float) -> float:
        return (1 - lapse) * float(np.sum(weights * special.expit(a + sd * nodes))) + lapse / 2

    return float(optimize.brentq(lambda a: marginal(a) - target, -12, 12))


def intercepts(spec: SimulationSpec) -> dict[str, float]:
    # margin - 0.5 ~ U(-0.5, 0.5) has variance 1/12; close enough to normal for the quadrature,
    # and the simulation test checks recovery against the marginal truth with tolerance.
    sd = np.sqrt(spec.participant_sd**2 + spec.trial_sd**2 + spec.margin_slope**2 / 12)
    return {k: _intercept_for(v, sd, spec.position_lapse) for k, v in spec.consent.items()}


def main_trials_used(spec: SimulationSpec) -> dict[str, int]:
    """Per instrument, the most regular trials each participant answers: the design's count
    where given, at most the pool. Raises ValueError naming the field on a count it cannot use."""
    given = spec.main_trials_per_participant or {}
    unknown = sorted(set(given) - set(spec.consent))
    if unknown:
        raise ValueError(
            f"SimulationSpec.main_trials_per_participant: instruments {unknown} are not in "
            f"consent; expected some of {sorted(spec.consent)}"
        )
    bad = [f"{k}: {v}" for k, v in given.items() if type(v) is not int or v < 1]
    if bad:
        raise ValueError(
            f"SimulationSpec.main_trials_per_participant: {', '.join(bad)}; expected whole "
            "numbers of at least 1"
        )
    pool = spec.trials_per_instrument
    insts = [c for c in CONDITIONS if c in spec.consent]
    return {k: min(given.get(k, pool), pool) for k in insts}


def _design(spec: SimulationSpec, rng: np.random.Generator) -> pd.DataFrame:
    insts = [c for c in CONDITIONS if c in spec.consent]
    n = spec.trials_per_instrument
    trials = pd.DataFrame({"instrument": np.repeat(insts, n)})
    trials["trial"] = [f"t{i:05d}" for i in range(len(trials))]
    trials["reference"] = [f"ref{i:05d}" for i in range(len(trials))]
    trials["candidate_a"] = [f"clip{2 * i:05d}" for i in range(len(trials))]
    trials["candidate_b"] = [f"clip{2 * i + 1:05d}" for i in range(len(trials))]
    trials["model_choice"] = rng.choice(["a", "b"], len(trials))
    trials["model_margin"] = rng.uniform(0, 1, len(trials))
    trials["effect"] = rng.normal(0, spec.trial_sd, len(trials))
    return trials


def simulate_answers(spec: SimulationSpec) -> tuple[pd.DataFrame, dict]:
    """(answers, truth): answers in the export's columns; truth holds the generating values."""
    used = main_trials_used(spec)  # before drawing: a bad count fails at once
    rng = np.random.default_rng(spec.seed)
    trials = _design(spec, rng)
    a = intercepts(spec)
    n_careless = int(round(spec.careless_share * spec.n_participants))
    parts = []
    for p in range(spec.n_participants):
        careless = p < n_careless
        parts.append(_one_participant(spec, trials, a, p, careless, rng))
    answers = pd.concat(parts, ignore_index=True)
    truth = {
        "consent": dict(spec.consent),
        "intercepts": a,
        "margin_slope": spec.margin_slope,
        "careless": [f"p{p:04d}" for p in range(n_careless)],
        "main_trials_per_participant": used,
        "spec": spec.to_dict(),
    }
    return answers, truth


def _one_participant(spec, trials, a, p, careless, rng) -> pd.DataFrame:
    rows = trials.iloc[_main_trials(spec, trials, rng)].reset_index(drop=True)
    rows["is_catch"], rows["catch_kind"] = False, ""
    repeats = rows.iloc[rng.choice(len(rows), min(spec.n_repeat_catch, len(rows)), False)].copy()
    repeats["trial"] = repeats["trial"] + "r"
    repeats["is_catch"], repeats["catch_kind"] = True, "repeat"
    ident = trials.iloc[rng.choice(len(trials), spec.n_identical_catch)].copy()
    ident["trial"] = [f"c{p:04d}{i:03d}" for i in range(len(ident))]
    ident["model_choice"], ident["model_margin"] = None, np.nan
    ident["is_catch"], ident["catch_kind"] = True, "identical"
    ident["expected"] = rng.choice(["a", "b"], len(ident))
    # The reference is a copy of the expected candidate: the answer is unambiguous.
    ident["reference"] = np.where(
        ident["expected"] == "a", ident["candidate_a"], ident["candidate_b"]
    )
    rows = pd.concat([rows, ident, repeats], ignore_index=True)
    rows = rows.iloc[
        np.r_[rng.permutation(len(rows) - len(repeats)), len(rows) - len(repeats) : len(rows)]
    ].reset_index(drop=True)
    m = len(rows)
    rows["participant"] = f"p{p:04d}"
    rows["session"] = f"s{p:04d}"
    rows["trial_index"] = np.arange(m, dtype=float)
    rows["displayed_first"] = rng.choice(["a", "b"], m)
    u = rng.normal(0, spec.participant_sd)
    logit = (
        rows["instrument"].map(a)
        + u
        + rows["effect"]
        + spec.margin_slope * (rows["model_margin"].fillna(0.5) - 0.5)
    )
    agree = rng.uniform(size=m) < special.expit(logit.to_numpy(float))
    model = rows["model_choice"].fillna("a").to_numpy()
    other = np.where(model == "a", "b", "a")
    chosen = np.where(agree, model, other)
    expected = rows.get("expected", pd.Series([None] * m)).to_numpy()
    is_ident = rows["catch_kind"].to_numpy() == "identical"
    correct_ident = rng.uniform(size=m) < 0.97
    chosen = np.where(is_ident, np.where(correct_ident, expected, _flip(expected)), chosen)
    lapse = rng.uniform(size=m) < (0.9 if careless else spec.position_lapse)
    chosen = np.where(lapse, rows["displayed_first"].to_numpy(), chosen)
    if careless:
        random = rng.uniform(size=m) < 0.1
        chosen = np.where(random, rng.choice(["a", "b"], m), chosen)
    rows["chosen"] = chosen
    return _finish(rows, careless, rng)


def _main_trials(spec, trials, rng) -> np.ndarray:
    """Row numbers of one participant's regular trials: the whole pool, or `trials_per_participant`
    of it, taking no more of an instrument than `main_trials_per_participant` allows (as the
    site's design.select_trials, which skips a trial whose instrument and reference piece it
    chose)."""
    take = spec.trials_per_participant
    if spec.main_trials_per_participant is None:
        return (
            rng.permutation(len(trials)) if take is None else rng.choice(len(trials), take, False)
        )
    room = main_trials_used(spec)
    chosen: list[int] = []
    for i in rng.permutation(len(trials)):
        if take is not None and len(chosen) == take:
            break
        instrument = trials["instrument"].iat[i]
        if room[instrument] > 0:
            room[instrument] -= 1
            chosen.append(i)
    return np.asarray(chosen, dtype=int)


def _flip(choice: np.ndarray) -> np.ndarray:
    return np.where(choice == "a", "b", "a")


def _finish(rows: pd.DataFrame, careless: bool, rng) -> pd.DataFrame:
    m = len(rows)
    rows["chosen_position"] = np.where(rows["chosen"] == rows["displayed_first"], "A", "B")
    has_model = rows["model_choice"].notna()
    rows["agree"] = np.where(
        has_model, (rows["chosen"] == rows["model_choice"]).astype(float), np.nan
    )
    first = rows.drop_duplicates(["reference", "candidate_a", "candidate_b"])
    first_choice = (
        rows[["reference"]]
        .merge(first[["reference", "chosen"]], on="reference", how="left")["chosen"]
        .to_numpy()
    )
    kind = rows["catch_kind"].to_numpy()
    correct = np.where(
        kind == "identical",
        (rows["chosen"] == rows.get("expected")).astype(float),
        np.where(
            kind == "repeat", (rows["chosen"].to_numpy() == first_choice).astype(float), np.nan
        ),
    )
    rows["catch_correct"] = correct
    median = 250.0 if careless else 6000.0
    rows["response_ms"] = np.round(median * np.exp(rng.normal(0, 0.4, m)))
    rows["plays_reference"] = 0.0 if careless else 1.0
    rows["plays_a"] = rows["plays_b"] = rows["plays_reference"]
    rows["screening_passed"] = True
    rows["study"] = "sim"
    rows["created_at"] = ""
    return rows.drop(columns=["effect", "expected"], errors="ignore")
