"""The reproducibility bundle of a computed report: a zip holding the study's config snapshot,
the seeds, the realised design, the tidy answers exactly as analysed, the codebooks, the report
(every table at full precision) and a script that recomputes the report from the bundle and
compares it with the stored one."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd

from evalsite.reports.analysis.report import Report, ReportConfig
from evalsite.reports.rendering.files import as_stored, report_json
from evalsite.reports.rendering.summary import markdown_summary
from evalsite.studies.export import to_csv
from evalsite.studies.export_codebook import CODEBOOK
from evalsite.studies.models import Study

RECOMPUTE = '''"""Recompute this report from the bundle and compare it with report.json.

    python recompute.py            (needs the csn-eval package: pip install -e <repo>)

Reads answers.csv and report_config.json, runs the same analysis as the site, writes the result
to recomputed/ and prints, per table, whether every value equals the stored one.
"""

import json
import math
import sys
from pathlib import Path

from evalsite.reports.analysis import ReportConfig, build_report
from evalsite.reports.analysis.__main__ import read_answers
from evalsite.reports.rendering.files import write_report

HERE = Path(__file__).resolve().parent


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def main() -> int:
    config = ReportConfig.from_dict(json.loads((HERE / "report_config.json").read_text()))
    report = build_report(read_answers(HERE / "answers.csv"), config, source="answers.csv")
    write_report(report, HERE / "recomputed")
    stored = json.loads((HERE / "report.json").read_text())["tables"]
    fresh = report.to_dict()["tables"]
    bad = 0
    for name in sorted(set(stored) | set(fresh)):
        ok = name in stored and name in fresh and len(stored[name]) == len(fresh[name]) and all(
            same(r1.get(k), r2.get(k)) for r1, r2 in zip(stored[name], fresh[name]) for k in r1
        )
        bad += not ok
        print(f"{name:22s} {'identical' if ok else 'DIFFERENT'}")
    print("all tables identical" if not bad else f"{bad} table(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
'''

README = """# Reproducibility bundle of study {study}

- config.json          the study as configured (settings, design, counts) when the report ran
- report_config.json   the analysis settings: exclusion rules, confidence, bootstrap seed
- seeds.json           every seed: the design's, each participant's, the bootstrap's
- design.csv           the realised design (trials and their assignment)
- answers.csv          the tidy answers exactly as analysed (one row per answer)
- codebook.json        meaning of every column of answers.csv and design.csv
- report.json          every table at full precision (also tables/*.csv), messages, timings
- summary.md           the same, rounded for reading
- recompute.py         `python recompute.py` recomputes everything and compares

The CSV-only command gives the same tables:
    python -m evalsite.reports.analysis answers.csv --config report_config.json --out out/
"""


def make_bundle(
    study: Study,
    answers_csv: bytes,
    report: Report,
    config: ReportConfig,
    plots: dict[str, str],
    *,
    design: pd.DataFrame,
    study_config: dict,
) -> bytes:
    """The bundle's zip. `answers_csv`, `design` (`realised_design`) and `study_config`
    (`config_snapshot`) are read by the caller from one snapshot of the database
    (`db_snapshot.read_snapshot`): read here, after the report was computed, design.csv and
    config.json would hold answers and edits that answers.csv does not."""
    seeds = {
        "bootstrap_seed": config.seed,
        "agreement_bootstrap_seed": config.seed + 1,
        "design": (study.design or {}).get("seed"),
        "participants": (
            design[["participant", "seed"]].drop_duplicates().to_dict("records")
            if {"participant", "seed"} <= set(design.columns)
            else []
        ),
    }
    buffer = io.BytesIO()
    root = f"report-study-{study.pk}"
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{root}/README.md", README.format(study=study.pk))
        z.writestr(
            f"{root}/config.json",
            json.dumps(study_config, indent=1, ensure_ascii=False, default=str),
        )
        z.writestr(f"{root}/report_config.json", json.dumps(config.to_dict(), indent=1))
        z.writestr(f"{root}/seeds.json", json.dumps(seeds, indent=1, default=str))
        z.writestr(f"{root}/design.csv", to_csv(design))
        z.writestr(f"{root}/answers.csv", answers_csv)
        z.writestr(f"{root}/codebook.json", json.dumps(CODEBOOK, indent=1))
        z.writestr(f"{root}/report.json", report_json(report))
        stored = as_stored(report)  # the tables as the page and downloads show them
        z.writestr(f"{root}/summary.md", markdown_summary(stored))
        for name, table in stored.tables.items():
            z.writestr(f"{root}/tables/{name}.csv", table.to_csv(index=False))
        for name, svg in plots.items():
            z.writestr(f"{root}/plots/{name}.svg", svg)
        z.writestr(f"{root}/recompute.py", RECOMPUTE)
    return buffer.getvalue()
