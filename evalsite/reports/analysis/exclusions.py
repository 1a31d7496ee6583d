"""Participant exclusions by the study's pre-registered rules, applied before any analysis.

Only these rules exist, each with its threshold in ExclusionRules: failed screening, catch-trial
accuracy below a threshold, same-position responding, implausibly fast answers. Agreement with
the model is never an exclusion criterion: no rule reads `agree` or `model_choice`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .config import ExclusionRules


def participant_summary(df: pd.DataFrame, rules: ExclusionRules) -> pd.DataFrame:
    """One row per participant with every quantity a rule reads."""
    g = df.groupby("participant", sort=True)
    kinds = df["catch_kind"].isin(rules.catch_kinds)
    scored = df[df["is_catch"] & kinds & df["catch_correct"].notna()]
    catch = scored.groupby("participant")["catch_correct"].agg(["mean", "size"])
    rt = df[df["response_ms"].notna()]
    fast = (rt["response_ms"] < rules.fast_ms).groupby(rt["participant"]).mean()
    # Only answers whose screen position is known (displayed_first recorded) say anything about it.
    placed = df[df["chosen_position"].notna()]
    position = (placed["chosen_position"] == "A").groupby(placed["participant"])
    out = pd.DataFrame(
        {
            "n": g.size(),
            "screening_passed": g["screening_passed"].all(),
            "catch_accuracy": catch["mean"],
            "catch_n": catch["size"],
            "position_n": position.size(),
            "share_A": position.mean(),
            "fast_share": fast,
            "median_response_ms": g["response_ms"].median(),
        }
    )
    out["catch_n"] = out["catch_n"].fillna(0).astype(int)
    out["position_n"] = out["position_n"].fillna(0).astype(int)
    out["same_position_share"] = np.maximum(out["share_A"], 1 - out["share_A"])
    return out.reset_index()


def find_exclusions(df: pd.DataFrame, rules: ExclusionRules) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(exclusions, participants): one exclusions row per (participant, rule) that fired."""
    summary = participant_summary(df, rules)
    rows = _exclusion_rows(summary, _checks(rules))
    exclusions = pd.DataFrame(rows, columns=["participant", "rule", "value", "threshold", "n"])
    # One rule may fire through two of its checks (median and share of fast answers): list once.
    exclusions = exclusions.drop_duplicates(["participant", "rule"]).reset_index(drop=True)
    summary["excluded"] = summary["participant"].isin(exclusions["participant"])
    rules_of = exclusions.groupby("participant")["rule"].agg(", ".join).to_dict()
    summary["rules"] = [rules_of.get(p, "") for p in summary["participant"]]
    return exclusions, summary


# (rule, the summary field it reports, which summary rows it fires on, the threshold it reports)
_Check = tuple[str, str, Callable[[pd.DataFrame], pd.Series], float]


def _checks(rules: ExclusionRules) -> list[_Check]:
    """The checks the rules switch on, in the order their exclusions are listed."""
    checks: list[_Check | None] = [
        ("failed_screening", "screening_passed", lambda s: ~s["screening_passed"], 1.0)
        if rules.require_screening
        else None,
        (
            "catch_accuracy_below_threshold",
            "catch_accuracy",
            lambda s: (
                (s["catch_n"] >= rules.min_catch_trials)
                & (s["catch_accuracy"] < rules.min_catch_accuracy)
            ),
            rules.min_catch_accuracy,
        ),
        (
            "same_position_responding",
            "same_position_share",
            lambda s: (
                (s["position_n"] >= rules.min_answers_for_position_rule)
                & (s["same_position_share"] > rules.max_same_position_share)
            ),
            rules.max_same_position_share,
        ),
        (
            "implausibly_fast_answers",
            "median_response_ms",
            lambda s: s["median_response_ms"] < rules.min_median_rt_ms,
            rules.min_median_rt_ms,
        )
        if rules.min_median_rt_ms > 0
        else None,
        (
            "implausibly_fast_answers",
            "fast_share",
            lambda s: s["fast_share"].fillna(0) > rules.max_fast_share,
            rules.max_fast_share,
        ),
    ]
    return [check for check in checks if check is not None]


def _exclusion_rows(summary: pd.DataFrame, checks: list[_Check]) -> list[dict]:
    """One row per check and participant it fired on, check by check."""
    rows = []
    for rule, field, fired, threshold in checks:
        for _, r in summary[fired(summary).fillna(False).astype(bool)].iterrows():
            value = r[field]
            rows.append(
                {
                    "participant": r["participant"],
                    "rule": rule,
                    "value": float(value),
                    "threshold": float(threshold),
                    "n": int(r["n"]),
                }
            )
    return rows


def unscored_catch_notes(df: pd.DataFrame, rules: ExclusionRules) -> list[str]:
    """A note for each reason catch answers go unscored by the catch rule, other than a kind the
    rules leave out (repeat): no catch_kind (the CSV command's input may lack the column), a kind
    that is neither scored nor repeat (a typo such as "Identical"), or no catch_correct on a
    scored kind. Without a known kind the rule cannot tell a repeat, which measures consistency
    and does not exclude, from a trial with a right answer, so it does not guess (nor match case).
    """
    catch = df[df["is_catch"]]
    rule, kinds = "catch_accuracy_below_threshold", ", ".join(rules.catch_kinds)
    notes = []
    no_kind = int((catch["catch_kind"] == "").sum())
    if no_kind:
        notes.append(
            f"{rule} not applied to {no_kind} catch answers: their catch_kind is empty, and the "
            f"rule scores only the kinds {kinds} (a repeat catch trial, which does not exclude, "
            "cannot be told apart); give catch_kind in the answers to apply it"
        )
    unknown_note = _unknown_kind_note(catch, rules)
    if unknown_note:
        notes.append(unknown_note)
    no_score = int(
        (catch["catch_kind"].isin(rules.catch_kinds) & catch["catch_correct"].isna()).sum()
    )
    if no_score:
        notes.append(
            f"{rule} not applied to {no_score} catch answers of the kinds {kinds}: their "
            "catch_correct is empty, so whether they were answered correctly is unknown"
        )
    return notes


def _unknown_kind_note(catch: pd.DataFrame, rules: ExclusionRules) -> str | None:
    """A note naming each non-empty catch_kind that is neither scored nor repeat, with counts."""
    known = {*rules.catch_kinds, "repeat"}
    kind = catch["catch_kind"]
    counts = kind[(kind != "") & ~kind.isin(known)].value_counts().sort_index()
    if counts.empty:
        return None
    named = ", ".join(f"{k!r} ({n})" for k, n in counts.items())
    left_out = "" if "repeat" in rules.catch_kinds else " and leaves out repeat"
    return (
        f"catch_accuracy_below_threshold not applied to {int(counts.sum())} catch answers: "
        f"their catch_kind is not one the rule knows: {named}; it scores only "
        f"{', '.join(rules.catch_kinds)}{left_out} (kinds are matched exactly, case included); "
        "correct catch_kind in the answers, or add the kind to catch_kinds"
    )


def apply_exclusions(df: pd.DataFrame, exclusions: pd.DataFrame) -> pd.DataFrame:
    return df[~df["participant"].isin(set(exclusions["participant"]))].reset_index(drop=True)
