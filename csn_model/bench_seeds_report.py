"""Rendering of csn_model.bench_seeds' tables: the printed summary, seeds.md, seeds.json and
per_seed.csv. Full precision in the JSON and CSV; rounding only here, in text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from csn_model.bench_report import crossed_p_text, crossed_undefined
from csn_model.bench_seeds import POOLING, SEED_FIELDS, Run
from csn_model.evaluation import MEAN


def per_seed_table(runs: list[Run], per_run: pd.DataFrame) -> pd.DataFrame:
    """per_run with each run's folder and seeds: run, dir, train_seed, separator_seed, ..."""
    labels = pd.DataFrame(
        [(i, str(r.dir), *r.seeds) for i, r in enumerate(runs)],
        columns=["run", "dir", *(f.replace(".", "_") for f in SEED_FIELDS)],
    )
    return labels.merge(per_run, on="run", how="right", validate="1:m")


def _wide(per_run: pd.DataFrame, kind: str, term: str) -> pd.DataFrame:
    """system x run accuracies of one kind and term, systems in their first order."""
    part = per_run[(per_run.kind == kind) & (per_run.term == term)]
    wide = part.pivot(index="system", columns="run", values="estimate")
    return wide.reindex(part["system"].unique())


def print_summary(runs: list[Run], result: dict, reference: str) -> None:
    per_run, acc, comps = result["per_run"], result["accuracy"], result["comparisons"]
    print(f"{len(runs)} seeds: " + "; ".join(r.seed_label() for r in runs))
    print("accuracy on the mean, per seed | mean, SD (ddof 1), [min, max]")
    for kind in per_run["kind"].unique():
        stats = acc[(acc.kind == kind) & (acc.term == MEAN)].set_index("system")
        for system, values in _wide(per_run, kind, MEAN).iterrows():
            row = stats.loc[system]
            print(
                f"  {str(kind):8s} {str(system):22s} {_join(values, '.3f')} | {row.estimate:.3f} "
                f"{row.sd:.3f} [{row['min']:.3f}, {row['max']:.3f}]"
            )
    print(
        f"{reference} - other on the mean, per seed | mean, SD, seeds favouring {reference}; "
        "pooled over seeds: p_adj of the paired test over pieces (Holm), crossed p_adj and its "
        "t df (the test that also allows for the pieces B, C, D; where undefined, the reason "
        "follows)"
    )
    for kind in per_run["kind"].unique():
        wide = _wide(per_run, kind, MEAN)
        for row in comps[(comps.kind == kind) & (comps.term == MEAN)].to_dict("records"):
            diffs = wide.loc[reference] - wide.loc[row["system"]]
            print(
                f"  {str(kind):8s} {str(row['system']):22s} {_join(diffs, '+.3f')} | "
                f"{row['diff_mean']:+.3f} {row['diff_sd']:.3f} "
                f"{row['n_favour_reference']}/{row['n_seeds']}  p_adj={row['p_adj']:.3g}  "
                f"crossed p_adj={crossed_p_text(row)} (pieces {row['n_pieces']})"
            )
            reason = crossed_undefined(row)
            if reason:
                print(f"    {reason}")
    for line in result["warnings"]:
        print(f"warning: {line}")
    for line in config_lines(runs, result):
        print(f"note: {line}")


def config_lines(runs: list[Run], result: dict) -> list[str]:
    """One line per field of bench_seeds.OUTCOME_FREE_FIELDS whose value differs between the
    runs, with each run's value: the runs were accepted although their configs differ in it."""
    return [
        f"configs differ in {field} ("
        + ", ".join(f"{v} in {r.dir}" for v, r in zip(values, runs))
        + "), which cannot change a triplet's outcome"
        for field, values in result["config_differences"].items()
    ]


def _join(values, spec: str) -> str:
    return " ".join(format(float(v), spec) for v in values)


def render_markdown(runs: list[Run], result: dict, reference: str) -> str:
    """seeds.md: the runs, how the test pools them, warnings, then per kind the accuracy on the
    mean per seed and the reference's difference from each system on every term."""
    per_run = result["per_run"]
    seeds = [
        f"seed {r.seeds[0]}" if len(set(r.seeds)) == 1 else "/".join(map(str, r.seeds))
        for r in runs
    ]
    lines = [f"# Seed variance over {len(runs)} runs", ""]
    lines += ["| run | folder | " + " | ".join(SEED_FIELDS) + " |", "|---|---|---|---|"]
    lines += [
        f"| {s} | `{r.dir}` | " + " | ".join(map(str, r.seeds)) + " |" for s, r in zip(seeds, runs)
    ]
    lines += ["", f"Pooled test: {POOLING}", ""]
    lines += [f"**Warning:** {w}" for w in result["warnings"]] + [""] * bool(result["warnings"])
    notes = config_lines(runs, result)
    lines += [f"Note: {n}" for n in notes] + [""] * bool(notes)
    for kind in per_run["kind"].unique():
        lines += _accuracy_lines(per_run, result["accuracy"], kind, seeds)
        lines += _comparison_lines(result["comparisons"], kind, reference)
    return "\n".join(lines)


def _accuracy_lines(per_run: pd.DataFrame, acc: pd.DataFrame, kind, seeds: list[str]) -> list:
    lines = [f"## {kind}: accuracy on the mean (macro over conditions)", ""]
    lines += ["| system | " + " | ".join(seeds) + " | mean | SD | min | max |"]
    lines += ["|---" * (len(seeds) + 5) + "|"]
    stats = acc[(acc.kind == kind) & (acc.term == MEAN)].set_index("system")
    for system, values in _wide(per_run, kind, MEAN).iterrows():
        over = stats.loc[system, ["estimate", "sd", "min", "max"]]
        cells = [f"{v:.3f}" for v in [*values, *over]]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _comparison_lines(comps: pd.DataFrame, kind, reference: str) -> list:
    lines = [f"## {kind}: {reference} minus each system, per seed and pooled", ""]
    lines += [
        f"| term | system | mean diff | SD | min | max | seeds favouring {reference} | "
        "pooled estimate | p_adj (over pieces, Holm) | crossed p_adj (df) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in comps[comps.kind == kind].itertuples():
        lines.append(
            f"| {r.term} | {r.system} | {r.diff_mean:+.3f} | {r.diff_sd:.3f} | "
            f"{r.diff_min:+.3f} | {r.diff_max:+.3f} | {r.n_favour_reference} of {r.n_seeds} | "
            f"{r.estimate:+.3f} | {r.p_adj:.3g} | {crossed_p_text(r._asdict(), df_label='')} |"
        )
        reason = crossed_undefined(r._asdict())
        if reason:
            notes.append(f"- {r.term}, {r.system}: {reason}")
    return [*lines, "", *notes, *[""] * bool(notes)]


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def write_outputs(runs: list[Run], result: dict, reference: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    per_seed = per_seed_table(runs, result["per_run"])
    per_seed.to_csv(out / "per_seed.csv", index=False)
    summary = {
        "reference": reference,
        "pooling": POOLING,
        "runs": [
            {
                "dir": str(r.dir),
                **dict(zip(("train_seed", "separator_seed"), r.seeds)),
                "fingerprint": r.fingerprint,
                "code": r.code,
            }
            for r in runs
        ],
        "warnings": result["warnings"],
        "config_differences": result["config_differences"],  # field -> value per run, in order
        "accuracy": _records(result["accuracy"]),
        "comparisons": _records(result["comparisons"]),
        "per_seed": _records(per_seed),
    }
    (out / "seeds.json").write_text(json.dumps(summary, indent=1, default=_plain) + "\n")
    (out / "seeds.md").write_text(render_markdown(runs, result, reference))


def _plain(obj):
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
