"""`position_bias`: the share of answers on screen position A, tested against 0.5 with the
participants' answers clustered (a participant's own lean towards A is not evidence of bias)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalsite.reports.analysis.diagnostics import position_bias


def _answers(rng, lean_sd: float, n_participants: int = 20, n_trials: int = 40) -> pd.DataFrame:
    """Each participant chooses A with their own probability 0.5 + N(0, lean_sd): the population
    has no position bias, but answers of one participant are correlated."""
    p_a = np.clip(0.5 + rng.normal(0, lean_sd, n_participants), 0, 1)
    chose_a = rng.random((n_participants, n_trials)) < p_a[:, None]  # (P, T)
    return pd.DataFrame(
        {
            "participant": np.repeat([f"p{i}" for i in range(n_participants)], n_trials),
            "trial": np.tile([f"t{j}" for j in range(n_trials)], n_participants),
            "instrument": "drums",
            "chosen_position": np.where(chose_a.ravel(), "A", "B"),
            "is_catch": False,
        }
    )


def test_it_keeps_the_false_positive_rate_near_nominal_when_participants_lean_differently():
    # The exact binomial test on these data rejects about 22 % of the time (answers treated as
    # independent); a participant-clustered test should reject about 5 %.
    rng = np.random.default_rng(7)
    p_values = [
        position_bias(_answers(rng, lean_sd=0.12))[0].set_index("term").loc["drums", "p_val"]
        for _ in range(150)
    ]
    assert 0.01 <= np.mean(np.array(p_values) < 0.05) <= 0.10


def test_it_still_detects_a_bias_every_participant_shares():
    answers = _answers(np.random.default_rng(1), lean_sd=0.0)
    answers["chosen_position"] = np.where(np.arange(len(answers)) % 4 == 0, "B", "A")  # 75 % A
    table, notes = position_bias(answers)
    row = table.set_index("term").loc["overall"]
    assert row["estimate"] == 0.75 and row["ci_low"] > 0.5 and row["p_val"] < 0.01
    assert row["n_participants"] == 20 and notes == []


def test_it_leaves_the_test_empty_with_a_note_for_one_participant():
    answers = _answers(np.random.default_rng(2), lean_sd=0.1, n_participants=1)
    table, notes = position_bias(answers)
    row = table.set_index("term").loc["drums"]
    assert np.isnan(row["p_val"]) and np.isnan(row["ci_low"])
    assert any("position_bias" in n and "drums" in n and "one participant" in n for n in notes)


def test_it_counts_an_instrument_every_answer_chose_a_in_the_holm_family():
    # Every drums answer chose A: its crossed test is undefined (no variance), and counts in the
    # instruments' Holm family as p = 1, so guitar's p is doubled, not left as it was.
    guitar = _answers(np.random.default_rng(2), lean_sd=0.1, n_participants=12, n_trials=10)
    guitar["instrument"] = "guitar"
    drums = guitar.assign(instrument="drums", chosen_position="A")
    drums["trial"] = "d" + drums["trial"]
    table, notes = position_bias(pd.concat([drums, guitar], ignore_index=True))
    rows = table.set_index("term")
    assert np.isnan(rows.loc["drums", "p_val"]) and np.isnan(rows.loc["drums", "p_adj"])
    p = rows.loc["guitar", "p_val"]
    assert np.isclose(rows.loc["guitar", "p_adj"], min(1.0, 2 * p), rtol=1e-12, atol=0)
    (note,) = notes  # reported with its reason
    assert "drums" in note and "answers are equal" in note
    assert "its p counts as 1 in the Holm family of the 2 instruments" in note, note  # r2 F4
