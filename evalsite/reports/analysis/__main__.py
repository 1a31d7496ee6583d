"""CSV-only report, without the site or a database:

    python -m evalsite.reports.analysis answers.csv --out DIR [--config report_config.json]

Writes DIR/tables/*.csv, DIR/report.json, DIR/plots/*.svg, DIR/summary.md and DIR/summary.html.
Exit status 0 on success, 1 when the report holds an error message, 2 on unusable arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from .report import ReportConfig, build_report


def read_answers(path) -> pd.DataFrame:
    """The answers CSV (a path or a binary file object) as the analysis reads it."""
    # Everything as text: ids such as "007" stay ids; the analysis types each column itself.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def read_config(path: Path | None, overrides: dict) -> ReportConfig:
    raw = json.loads(path.read_text()) if path else {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return ReportConfig.from_dict(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evalsite.reports.analysis", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("answers", type=Path, help="tidy answers CSV (the site's export)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the report in")
    parser.add_argument("--config", type=Path, help="report config JSON (ReportConfig fields)")
    parser.add_argument("--n-boot", type=int, dest="n_boot", help="bootstrap replicates")
    parser.add_argument("--seed", type=int, help="bootstrap seed")
    parser.add_argument("--no-mixed", action="store_true", help="skip the Bayesian mixed model")
    args = parser.parse_args(argv)
    if not args.answers.is_file():
        print(f"error: {args.answers}: no such file (expected the answers CSV)", file=sys.stderr)
        return 2
    try:
        config = read_config(
            args.config,
            {
                "n_boot": args.n_boot,
                "seed": args.seed,
                "mixed_model": False if args.no_mixed else None,
            },
        )
        answers = read_answers(args.answers)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ..rendering.files import write_report  # matplotlib only when writing

    report = build_report(answers, config, source=str(args.answers))
    write_report(report, args.out)
    for m in report.messages:
        print(f"[{m['level']}] {m['part']}: {m['text']}", file=sys.stderr)
    print(f"report written to {args.out} ({len(report.tables)} tables)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
