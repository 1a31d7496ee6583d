"""Recompute a finished `csn bench` run's paired comparisons from its outcomes.csv, no rescoring:

    python -m csn_model.bench_stats RUN_DIR [--reference csn] [--out comparisons.csv]

Prints, per kind, the reference against every other system on the mean (accuracy difference,
Holm-adjusted p of the paired test over pieces, and the descriptive triplets-as-independent
McNemar p); --out writes every term (csn_model.evaluation.compare_to_reference's columns).
For runs made before the test over pieces, whose comparisons.csv holds McNemar p only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from csn_model.bench_config import PROPOSED
from csn_model.evaluation import MEAN, OUTCOME_COLUMNS, compare_to_reference


def recompute(run_dir: Path, reference: str = PROPOSED) -> pd.DataFrame:
    path = Path(run_dir) / "outcomes.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; expected the outcomes.csv a `csn bench` writes")
    outcomes = pd.read_csv(path)
    missing = set(OUTCOME_COLUMNS) - set(outcomes.columns)
    if missing:
        raise ValueError(f"{path}: lacks columns {sorted(missing)}; expected {OUTCOME_COLUMNS}")
    return compare_to_reference(outcomes, reference)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csn_model.bench_stats", description=__doc__)
    parser.add_argument("run_dir", help="a `csn bench` run folder (holding outcomes.csv)")
    parser.add_argument("--reference", default=PROPOSED, help="system compared with the others")
    parser.add_argument("--out", help="write every term's comparison to this CSV")
    args = parser.parse_args(argv)
    try:
        comps = recompute(Path(args.run_dir), args.reference)
    except (FileNotFoundError, ValueError) as exc:
        print(f"bench_stats: {exc}", file=sys.stderr)
        return 2
    if args.out:
        comps.to_csv(args.out, index=False)
    mean = comps[comps.term == MEAN]
    print(f"{args.reference} - other on the mean (p_adj: paired test over pieces, Holm)")
    for row in mean.itertuples():
        print(
            f"  {str(row.kind):8s} {str(row.system):22s} {row.estimate:+.3f}  "
            f"p_adj={row.p_adj:.3g}  "
            f"(pieces {row.n_pieces}; triplets as independent: p_adj={row.iid_mcnemar_p_adj:.3g})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
