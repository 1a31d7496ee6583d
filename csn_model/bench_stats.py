"""Recompute a finished `csn bench` run's paired comparisons from its outcomes.csv, no rescoring:

    python -m csn_model.bench_stats RUN_DIR [--reference csn] [--out comparisons.csv]
        [--triplets RUN_DIR/triplets/test_pseudo.json RUN_DIR/triplets/test_natural.json]

Prints, per kind, the reference against every other system on the mean (accuracy difference,
Holm-adjusted p of the paired test over pieces, of the crossed test that also allows for each
triplet's other pieces, with its t df; "undefined" and the reason on the next line where
it is NaN: a run made before outcomes.csv had `others`, or a crossed variance estimate of 0),
and the descriptive triplets-as-independent McNemar p); --out writes every term
(csn_model.evaluation.compare_to_reference's columns). --triplets: the run's triplet files, from
which the crossed test takes each triplet's other pieces where outcomes.csv predates them.
For runs made before the test over pieces, whose comparisons.csv holds McNemar p only.
Then each system's share of tied triplets (counted wrong in the accuracy) and a warning line for
a system with many (csn_model.bench_report.tie_warnings); outcomes.csv of runs made before ties
were recorded (no tie column) are read as before, and this is said.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from csn_model.bench_config import PROPOSED
from csn_model.bench_report import crossed_p_text, crossed_undefined, tie_shares, tie_warnings
from csn_model.evaluation import (
    MEAN,
    OTHERS_COLUMN,
    OUTCOME_COLUMNS,
    compare_to_reference,
    has_ties,
    tie_table,
)


def read_outcomes(run_dir: Path) -> pd.DataFrame:
    """RUN_DIR/outcomes.csv, checked for OUTCOME_COLUMNS (and both tie columns or neither)."""
    path = Path(run_dir) / "outcomes.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; expected the outcomes.csv a `csn bench` writes")
    # Piece names stay strings (a name like 007 must match the same name in `others`).
    outcomes = pd.read_csv(path, dtype={"piece": str, OTHERS_COLUMN: str})
    if OTHERS_COLUMN in outcomes.columns:  # bench writes it on every row: empty = no other piece
        outcomes[OTHERS_COLUMN] = outcomes[OTHERS_COLUMN].fillna("")
    missing = set(OUTCOME_COLUMNS) - set(outcomes.columns)
    if missing:
        raise ValueError(f"{path}: lacks columns {sorted(missing)}; expected {OUTCOME_COLUMNS}")
    try:
        has_ties(outcomes)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return outcomes


def attach_others(outcomes: pd.DataFrame, triplet_files) -> pd.DataFrame:
    """outcomes with OTHERS_COLUMN taken from the run's triplet files (triplets/test_KIND.json),
    for runs made before it: row (kind, triplet i) gets "|".join of the file's triplet i's
    other_pieces; a kind given no file keeps what it had (None where the run lacked the column,
    so its crossed statistics are NaN). ValueError where a file's triplet i has not the row's
    condition and anchor piece (another file than the outcomes were scored on)."""
    from csn_model.data.triplets import load_triplets

    if not triplet_files:
        return outcomes
    out = outcomes.copy()
    out[OTHERS_COLUMN] = out.get(OTHERS_COLUMN)
    for path in triplet_files:
        triplets, meta = load_triplets(path)
        kind = meta.get("kind")
        rows = out.index[out["kind"] == kind]
        for i, row in zip(out.loc[rows, "triplet"], rows):
            t = triplets[i] if 0 <= i < len(triplets) else None
            piece = t.anchor.stem(t.condition).track if t else None
            if t is None or (t.condition, piece) != (
                out.at[row, "condition"],
                out.at[row, "piece"],
            ):
                raise ValueError(
                    f"{path}: {kind} triplet {i} is {t and (t.condition, piece)}, but outcomes.csv "
                    f"scored ({out.at[row, 'condition']}, {out.at[row, 'piece']}) there; expected "
                    "the triplet file of this run"
                )
            out.at[row, OTHERS_COLUMN] = "|".join(t.other_pieces())
    return out


def recompute(run_dir: Path, reference: str = PROPOSED) -> pd.DataFrame:
    return compare_to_reference(read_outcomes(run_dir), reference)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csn_model.bench_stats", description=__doc__)
    parser.add_argument("run_dir", help="a `csn bench` run folder (holding outcomes.csv)")
    parser.add_argument("--reference", default=PROPOSED, help="system compared with the others")
    parser.add_argument("--out", help="write every term's comparison to this CSV")
    parser.add_argument(
        "--triplets", nargs="+", default=[], metavar="JSON",
        help="the run's triplets/test_KIND.json: other pieces for runs made before `others`",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        outcomes = attach_others(read_outcomes(Path(args.run_dir)), args.triplets)
        comps = compare_to_reference(outcomes, args.reference)
    except (FileNotFoundError, ValueError) as exc:
        print(f"bench_stats: {exc}", file=sys.stderr)
        return 2
    if args.out:
        comps.to_csv(args.out, index=False)
    mean = comps[comps.term == MEAN]
    print(f"{args.reference} - other on the mean (p_adj: paired test over pieces, Holm)")
    for row in mean.to_dict(orient="records"):
        print(
            f"  {str(row['kind']):8s} {str(row['system']):22s} {row['estimate']:+.3f}  "
            f"p_adj={row['p_adj']:.3g}  crossed p_adj={crossed_p_text(row)}  (pieces "
            f"{row['n_pieces']}; triplets as independent: p_adj={row['iid_mcnemar_p_adj']:.3g})"
        )
        reason = crossed_undefined(row)
        if reason:
            print(f"    {reason}")
    _print_ties(outcomes)
    return 0


def _print_ties(outcomes: pd.DataFrame) -> None:
    if not has_ties(outcomes):
        print("ties: outcomes.csv has no tie column (made before ties were recorded); tied")
        print("  triplets are unknown here, and the accuracy counts them as wrong")
        return
    ties = tie_table(outcomes)
    print("tied triplets, d(anchor, positive) == d(anchor, negative) (counted wrong):")
    for system, share in tie_shares(ties).items():
        print(f"  {system:22s} {100 * share:.1f} %")
    for line in tie_warnings(ties):
        print(f"warning: {line}")


if __name__ == "__main__":
    sys.exit(main())
