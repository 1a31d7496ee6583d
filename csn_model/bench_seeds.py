"""Seed variance of a benchmark: `csn bench` runs that differ only in their training seeds.

    csn bench --config C --data D --set train.seed=K separator.seed=K --out RUN_K   (per seed)
    python -m csn_model.bench_seeds RUN_0 RUN_1 [RUN ...] [--reference csn] [--out DIR]

Each RUN is a `csn bench` run folder or a committed results folder (outcomes.csv, config.yaml,
dataset.json; results.json optional). The runs must be one benchmark trained with other seeds: the
same dataset (dataset.json's fingerprint), the same test triplets scored by every system (the rows
system, kind, condition, triplet, piece of outcomes.csv, and the triplet files' sha256 where
results.json records them), configs equal in everything but train.seed and separator.seed (and
bench.n_boot, bench.analysis, bench.sdr_chunk_seconds: OUTCOME_FREE_FIELDS, which cannot change a
triplet's outcome; where they differ, the report states each run's value) when read through the
benchmark's schema, as `csn bench` reads a run's config.yaml when it resumes (a field the code
gained after a run was saved takes its default, the behaviour that run computed with), no two
runs with the same pair of seeds, and the same systems (refused, not intersected: equal configs
already mean equal bench.systems, and dropping a system would silently shrink each Holm family). A
refusal names the folders and what differs; the command then exits 2.

What it reports, per kind (the project's choice; the paper gives no seed protocol):
- each system's accuracy per seed (per condition, and their macro mean as `csn bench` reports it),
  then over the seeds its mean, SD (ddof 1), min and max;
- the reference minus each other system per seed: the mean, SD, min and max of that difference over
  the seeds and how many seeds favour the reference (a difference of exactly 0 favours neither);
- one pooled test per (kind, term, system): each triplet's correctness is averaged over the seeds
  per system, and on those averaged outcomes the reference and the system are compared with the
  benchmark's paired sign-flip test over pieces, Holm over the systems per (kind, term)
  (csn_model.evaluation.compare_to_reference). The test is computed on the sum over seeds (an
  integer, as the exact test needs), which scales every piece's difference by the number of seeds
  and leaves p unchanged; `estimate` is the difference of the seed-averaged accuracies and `stat`
  the summed b - c. On the term "mean" the pooled estimate weights every triplet alike (as
  compare_to_reference does), while the per-seed accuracies average the conditions: the two agree
  when every condition has the same number of triplets (`bench.per_condition`, as csn bench draws
  them) and differ slightly otherwise. With one seed this is bench_stats' result for that run.
  Pieces remain the unit of inference: p says whether the difference, averaged over these seeds,
  generalises over pieces; how much it moves with the seed is what the SD and the count of favouring
  seeds describe (a few seeds give no test over seeds).

Accepted with a warning: runs whose outcomes are identical for every system (were the seeds
applied?), and runs whose results.json records other code (`code`: csn_model and sampler versions),
which would mix code changes into the seed variance; and each run's systems whose triplets are
mostly ties (a collapsed training: csn bench's tie warning, named with the run).

--out DIR writes seeds.json, seeds.md and per_seed.csv (tidy: one row per run, system, kind and
term).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from csn_model import CONDITIONS
from csn_model.bench_config import PROPOSED, BenchConfig
from csn_model.bench_report import tie_warnings
from csn_model.bench_stats import read_outcomes
from csn_model.config import ConfigError, from_dict, to_dict
from csn_model.evaluation import (
    COMPARISON_COLUMNS,
    MEAN,
    OTHERS_COLUMN,
    compare_to_reference,
    has_ties,
    tie_table,
)

SEED_FIELDS = ("train.seed", "separator.seed")
# Config fields in which seed runs may differ: they act only after outcomes.csv is written, or on
# files this module does not read, so they cannot change a triplet's outcome: bench.n_boot (the
# bootstrap count of results.json's intervals), bench.analysis (the subspace analysis after
# scoring) and bench.sdr_chunk_seconds (how the separator's SDR table is chunked; it does not
# train or apply the separator). Not bench.batch_triplets: embedding triplets in other batches
# can move a distance in its last bits and so decide a near-tie; not train's runtime fields
# (threads, device, num_workers, ...), which change training's arithmetic or data order even
# though `csn bench` resumes under them. The report states the values wherever they differ.
OUTCOME_FREE_FIELDS = ("bench.n_boot", "bench.analysis", "bench.sdr_chunk_seconds")
TRIPLET_KEY = ["kind", "condition", "triplet", "piece"]
# A per-seed difference within this of 0 favours neither system: equal macro means reached by
# different sums of conditions can differ in the last bit.
TIE_TOLERANCE = 1e-12
# compare_to_reference's columns up to the McNemar ones, which mean nothing on summed outcomes.
POOLED_COLUMNS = COMPARISON_COLUMNS[: COMPARISON_COLUMNS.index("iid_mcnemar_p_val")]
POOLING = (
    "Per kind and system, each triplet's correctness is averaged over the seeds; the reference "
    "and each other system are then compared on those averaged outcomes with the benchmark's "
    "paired sign-flip test over pieces (Holm over the systems per kind and term). The test runs "
    "on the sum over seeds, which leaves p unchanged. So does the crossed test (crossed_se, "
    "crossed_df, crossed_p_val, crossed_p_adj, as in comparisons.csv; crossed_se in accuracy "
    "units), which also allows for the pieces B, C, D and runs where every run's outcomes name "
    "them. Pieces are the unit of inference; the variation over seeds is described (SD, min, "
    "max, seeds favouring the reference), not tested."
)


@dataclass(frozen=True)
class Run:
    dir: Path
    outcomes: pd.DataFrame
    config: dict
    fingerprint: str
    triplet_files: dict  # kind -> sha256 from results.json; {} where it records none
    code: dict | None  # results.json's `code` (the csn_model that made it), None if absent

    @property
    def seeds(self) -> tuple:
        return tuple(_flatten(self.config).get(f) for f in SEED_FIELDS)

    def seed_label(self) -> str:
        return ", ".join(f"{f}={s}" for f, s in zip(SEED_FIELDS, self.seeds))


def read_runs(run_dirs) -> list[Run]:
    return [_read_run(Path(d)) for d in run_dirs]


def _read_run(run_dir: Path) -> Run:
    outcomes = read_outcomes(run_dir)
    config = _load(run_dir / "config.yaml", yaml.safe_load, "the resolved config `csn bench` saves")
    missing = [f for f in SEED_FIELDS if f not in _flatten(config)]
    if missing:
        raise ValueError(f"{run_dir / 'config.yaml'}: lacks {missing}")
    config = _as_computed(config)
    dataset = _load(run_dir / "dataset.json", json.loads, '{"root": ..., "fingerprint": ...}')
    if "fingerprint" not in dataset:
        raise ValueError(
            f"{run_dir / 'dataset.json'}: names no fingerprint, so its dataset is unknown"
        )
    results = {}
    if (run_dir / "results.json").exists():
        results = _load(run_dir / "results.json", json.loads, "the results `csn bench` writes")
    triplet_files = {k: v.get("sha256") for k, v in results.get("triplets", {}).items()}
    return Run(
        run_dir, outcomes, config, dataset["fingerprint"], triplet_files, results.get("code")
    )


def _as_computed(config: dict) -> dict:
    """The saved config through the benchmark's schema, as `csn bench` compares it when it
    resumes: a field added to the code since the run takes its default (new fields default to the
    old behaviour), so a run saved before a field and one saved after compare equal (review r2
    F5). A config the schema refuses (a field since removed) stays as saved, and so differs."""
    try:
        return to_dict(from_dict(BenchConfig, config))
    except ConfigError:
        return config


def _load(path: Path, parse, expected: str) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; expected {expected}")
    try:
        loaded = parse(path.read_text())
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not readable ({exc})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping, found {type(loaded).__name__}")
    return loaded


def _flatten(d: dict, prefix: str = "") -> dict:
    """{"train": {"seed": 0}} -> {"train.seed": 0}; lists stay values."""
    flat = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        flat.update(_flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


# -- checks ------------------------------------------------------------------------------------
def check_runs(runs: list[Run], reference: str) -> list[str]:
    """ValueError naming the folders for runs that are not one benchmark with other seeds;
    returns warnings (runs whose outcomes are identical)."""
    if len(runs) < 2:
        raise ValueError(f"needs at least two run folders, got {len(runs)}")
    for run in runs:
        _check_within(run, reference)
    first = runs[0]
    for run in runs[1:]:
        _check_dataset(first, run)
        _check_config(first, run)
        _check_systems(first, run)
        _check_triplets(first, run)
    _check_seeds(runs)
    return _identical_outcomes(runs) + _other_code(runs) + _tied_systems(runs)


def _check_within(run: Run, reference: str) -> None:
    twice = run.outcomes.duplicated(["system", *TRIPLET_KEY[:3]])
    if twice.any():
        row = run.outcomes[twice].iloc[0]
        raise ValueError(
            f"{run.dir / 'outcomes.csv'}: {int(twice.sum())} triplets scored more than once for "
            f"one system (first: {row.system}, {row.kind}, {row.condition}, {row.triplet})"
        )
    if reference not in set(run.outcomes.system):
        raise ValueError(f"{run.dir / 'outcomes.csv'}: reference system {reference!r} not scored")


def _check_dataset(a: Run, b: Run) -> None:
    if a.fingerprint != b.fingerprint:
        raise ValueError(
            f"different datasets: {a.dir} has fingerprint {a.fingerprint}, {b.dir} has "
            f"{b.fingerprint} (dataset.json); seed runs must score the same data"
        )


def _check_config(a: Run, b: Run) -> None:
    fa, fb = _flatten(a.config), _flatten(b.config)
    absent = "<absent>"
    fields = sorted(k for k in set(fa) | set(fb) if k not in SEED_FIELDS + OUTCOME_FREE_FIELDS)
    differ = [k for k in fields if fa.get(k, absent) != fb.get(k, absent)]
    if differ:
        listed = "; ".join(
            f"{k} ({fa.get(k, absent)} in {a.dir}, {fb.get(k, absent)} in {b.dir})" for k in differ
        )
        raise ValueError(
            f"configs differ in more than {' and '.join(SEED_FIELDS)} (config.yaml; "
            f"{', '.join(OUTCOME_FREE_FIELDS)} may differ too): {listed}"
        )


def config_differences(runs: list[Run]) -> dict[str, list]:
    """{field: its value in each run, in the order of runs} for each of OUTCOME_FREE_FIELDS whose
    value is not the same in every run (None where a config lacks it)."""
    values = {f: [_flatten(r.config).get(f) for r in runs] for f in OUTCOME_FREE_FIELDS}
    return {f: v for f, v in values.items() if any(x != v[0] for x in v)}


def _check_systems(a: Run, b: Run) -> None:
    sa, sb = set(a.outcomes.system), set(b.outcomes.system)
    if sa != sb:
        raise ValueError(
            f"different systems: only in {a.dir}: {sorted(sa - sb)}; only in {b.dir}: "
            f"{sorted(sb - sa)} (outcomes.csv); every seed run must score the same systems"
        )


def _check_triplets(a: Run, b: Run) -> None:
    # Per system, not the union over systems: the pooled test sums each triplet over the seeds,
    # so a system that scored fewer triplets in one run would be compared on fewer seeds.
    key = ["system", *TRIPLET_KEY]
    rows = [r.outcomes[key].drop_duplicates() for r in (a, b)]
    both = rows[0].merge(rows[1], how="outer", indicator=True)
    only = both[both["_merge"] != "both"]
    if len(only):
        examples = [
            f"{tuple(side[key].iloc[0].tolist())} only in {run.dir}"
            for run, flag in ((a, "left_only"), (b, "right_only"))
            if len(side := only[only["_merge"] == flag])
        ]
        raise ValueError(
            f"different test triplets: {len(only)} rows (system, kind, condition, triplet, "
            f"piece) are in only one of {a.dir} and {b.dir} (outcomes.csv), e.g. "
            f"{'; '.join(examples)}"
        )
    for kind in sorted(set(a.triplet_files) & set(b.triplet_files)):
        if a.triplet_files[kind] != b.triplet_files[kind]:
            raise ValueError(
                f"different test triplets: {kind} triplet file sha256 {a.triplet_files[kind]} "
                f"in {a.dir}, {b.triplet_files[kind]} in {b.dir} (results.json)"
            )


def _check_seeds(runs: list[Run]) -> None:
    seen: dict[tuple, Path] = {}
    for run in runs:
        if run.seeds in seen:
            raise ValueError(
                f"the same seeds twice: {seen[run.seeds]} and {run.dir} both have "
                f"{run.seed_label()} (config.yaml); each run must use other seeds"
            )
        seen[run.seeds] = run.dir


def _identical_outcomes(runs: list[Run]) -> list[str]:
    key = ["system", *TRIPLET_KEY]
    tables = [r.outcomes.sort_values(key)[[*key, "correct"]].reset_index(drop=True) for r in runs]
    return [
        f"{runs[0].dir} and {run.dir} have identical outcomes for every system although their "
        "seeds differ: were the seeds applied?"
        for run, table in zip(runs[1:], tables[1:])
        if table.equals(tables[0])
    ]


def _other_code(runs: list[Run]) -> list[str]:
    """Runs whose results.json names other code (csn_model version, items/batches/sampler
    versions): a warning, not a refusal, since a version bump need not change what is trained;
    the code is in seeds.json for each run."""
    first = runs[0]
    return [
        f"{first.dir} and {run.dir} were made by other code ({first.code} and {run.code} in "
        "results.json): seed variance and code changes are mixed"
        for run in runs[1:]
        if first.code is not None and run.code is not None and run.code != first.code
    ]


def _tied_systems(runs: list[Run]) -> list[str]:
    """Each run's systems whose triplets are mostly ties (bench_report.tie_warnings: a nearly
    constant embedding, counted wrong), named with the run: one collapsed seed moves a system's
    mean and SD more than anything else, and the seed table alone does not say why."""
    return [
        f"{run.dir} ({run.seed_label()}): {line}"
        for run in runs
        if has_ties(run.outcomes)
        for line in tie_warnings(tie_table(run.outcomes))
    ]


# -- statistics --------------------------------------------------------------------------------
def stack(runs: list[Run]) -> pd.DataFrame:
    """Every run's outcomes in one frame, with the run's index in column `run`."""
    return pd.concat([r.outcomes.assign(run=i) for i, r in enumerate(runs)], ignore_index=True)


def accuracy_per_run(stacked: pd.DataFrame) -> pd.DataFrame:
    """Tidy: run, system, kind, term, estimate, n; term is each condition present, then "mean"
    (the macro mean over conditions, as bootstrap_accuracy's estimate)."""
    by = stacked.groupby(["run", "system", "kind", "condition"], sort=False)["correct"]
    table = by.agg(estimate="mean", n="size").reset_index()
    rows = []
    for (run, system, kind), part in table.groupby(["run", "system", "kind"], sort=False):
        present = set(part["condition"])
        part = part.set_index("condition").reindex([c for c in CONDITIONS if c in present])
        for term, row in part.iterrows():
            rows.append((run, system, kind, term, float(row.estimate), int(row.n)))
        rows.append((run, system, kind, MEAN, float(part.estimate.mean()), int(part.n.sum())))
    return pd.DataFrame(rows, columns=["run", "system", "kind", "term", "estimate", "n"])


def accuracy_over_seeds(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per system, kind, term: n_seeds, estimate (mean over seeds), sd (ddof 1), min, max, n."""
    grouped = per_run.groupby(["system", "kind", "term"], sort=False)
    table = grouped["estimate"].agg(
        n_seeds="size", estimate="mean", sd=lambda x: x.std(ddof=1), min="min", max="max"
    )
    return table.join(grouped["n"].first()).reset_index()


def pooled_comparisons(stacked: pd.DataFrame, reference: str) -> pd.DataFrame:
    """compare_to_reference on each triplet's correctness summed over the runs (see the module
    docstring): POOLED_COLUMNS, estimate divided back to accuracy units."""
    n_runs = stacked["run"].nunique()
    keys = ["system", *TRIPLET_KEY]
    if OTHERS_COLUMN in stacked and stacked[OTHERS_COLUMN].notna().all():
        keys.append(OTHERS_COLUMN)  # every run records it: the crossed test can run
    summed = stacked.groupby(keys, sort=False)["correct"].sum().reset_index()
    comps = compare_to_reference(summed, reference)[POOLED_COLUMNS]
    return comps.assign(
        estimate=comps["estimate"] / n_runs, crossed_se=comps["crossed_se"] / n_runs
    )


def compare_over_seeds(
    stacked: pd.DataFrame, per_run: pd.DataFrame, reference: str
) -> pd.DataFrame:
    """Reference minus each system per seed (diff_mean, diff_sd ddof 1, diff_min, diff_max,
    n_seeds, n_favour_reference), joined to the pooled test (POOLED_COLUMNS)."""
    index = ["run", "kind", "term"]
    ref = per_run[per_run.system == reference].set_index(index)["estimate"]
    others = per_run[per_run.system != reference]
    diffs = others.assign(diff=ref.reindex(pd.MultiIndex.from_frame(others[index])).to_numpy())
    diffs["diff"] = diffs["diff"] - diffs["estimate"]
    grouped = diffs.groupby(["kind", "term", "system"], sort=False)["diff"]
    summary = grouped.agg(
        n_seeds="size",
        diff_mean="mean",
        diff_sd=lambda x: x.std(ddof=1),
        diff_min="min",
        diff_max="max",
        n_favour_reference=lambda x: int(np.sum(x > TIE_TOLERANCE)),
    ).reset_index()
    pooled = pooled_comparisons(stacked, reference)
    return pooled.merge(summary, on=["kind", "term", "system"], how="left", validate="1:1")


# -- command line ------------------------------------------------------------------------------
def analyse(runs: list[Run], reference: str) -> dict:
    """Checked runs -> warnings, per_run, accuracy and comparisons (tidy frames)."""
    warnings = check_runs(runs, reference)
    stacked = stack(runs)
    per_run = accuracy_per_run(stacked)
    return {
        "warnings": warnings,
        "config_differences": config_differences(runs),
        "per_run": per_run,
        "accuracy": accuracy_over_seeds(per_run),
        "comparisons": compare_over_seeds(stacked, per_run, reference),
    }


def main(argv: list[str] | None = None) -> int:
    from csn_model.bench_seeds_report import print_summary, write_outputs

    parser = argparse.ArgumentParser(prog="python -m csn_model.bench_seeds", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", help="`csn bench` run folders, one per seed")
    parser.add_argument("--reference", default=PROPOSED, help="system compared with the others")
    parser.add_argument("--out", help="folder to write seeds.json, seeds.md and per_seed.csv to")
    args = parser.parse_args(argv)
    try:
        runs = read_runs(args.run_dirs)
        result = analyse(runs, args.reference)
    except (FileNotFoundError, ValueError) as exc:
        print(f"bench_seeds: {exc}", file=sys.stderr)
        return 2
    print_summary(runs, result, args.reference)
    if args.out:
        write_outputs(runs, result, args.reference, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
