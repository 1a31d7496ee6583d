"""The accuracy benchmark: train (or load) every system, score all on fixed saved test triplets.

Systems (METHOD.md "Baselines" and the ablations):
    individual_clean      five individual networks on the clean stems (also the CSN's teachers)
    individual_separated  the same networks on stems from the separator (csn_model.separation)
    csn                   the proposed CSN on mixtures
    csn_no_<switch>       the CSN with one of pseudo_mix, interchanged, aux_loss, pretrain off

Run folder (everything is reused when present, so an interrupted run resumes where it stopped;
parts made by older code are all listed in one error before anything trains, and `--from` refuses
to score systems older code trained: csn_model.bench_versions):
    config.yaml                  the resolved BenchConfig (a rerun must use the same config)
    dataset.json                 {"root": the dataset's absolute path, "fingerprint": its content's
                                 (csn_model.data.fingerprint)}: a rerun must use that dataset,
                                 unchanged
    systems/<name>/              train_run's out_dir; done.json names the finished checkpoint,
                                 relative to the run folder, reused only if it records this
                                 system's config, dataset fingerprint and teachers
    separator/separator.pt, sdr.csv, sdr.json
                                 separator.pt records its settings, sample rate and dataset
                                 (root, fingerprint); reused only for this run's
                                 (bench_train.check_separator); separator.partial, an
                                 interrupted training's state, records them too and is
                                 continued only for this run's (separation.train_separator)
    checkpoints.json             {system: checkpoint or {condition: checkpoint}, "separator": ...},
                                 written once every system is trained (or found finished), read
                                 by `--from`: files in the run folder relative to it, so that a
                                 moved or copied folder names its own files (write_index); an
                                 index written before 2026-12-07 (absolute paths) is read as it is
    triplets/test_<kind>.json    the fixed evaluation triplets (data layer's make_eval_set), reused
                                 only for the dataset and settings recorded in their meta; made
                                 before any system trains (a new folder records nothing when the
                                 test split cannot give them)
    outcomes.csv                 one row per (system, triplet): correct or not, tie (the two
                                 distances equal: counted wrong), identical (all three embedded
                                 to one vector)
    results.json, results.csv, comparisons.csv, results.md
    analysis/                    subspace analysis of the proposed CSN (csn_model.analysis)
`score_run(run_dir, other_dataset)` scores the trained systems on another Slakh-layout dataset
(generalisation) without training anything; its triplets live in that output folder.

Nothing is selected on the test split: systems train for a fixed number of steps.

This module holds the two entry points and the run folder's checks; the systems are trained by
csn_model.bench_train and scored by csn_model.bench_score, the config is csn_model.bench_config
and the results are rendered by csn_model.bench_report.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import torch

from csn_model.bench_config import PROPOSED, BenchConfig, load_bench_config
from csn_model.bench_report import build_results, write_results
from csn_model.bench_score import eval_triplets, load_systems, new_triplets, score
from csn_model.bench_train import check_index, train_systems, write_json
from csn_model.bench_versions import check_run_folder, check_scored
from csn_model.config import to_dict
from csn_model.evaluation import accuracy_table, compare_to_reference
from csn_model.separation import SeparatorConfig

log = logging.getLogger("csn.bench")


# -- the two entry points ------------------------------------------------------------------------
def run_bench(cfg: BenchConfig, data_root: Path, run_dir: Path) -> dict:
    """Train (or load) every system, score them on the fixed test triplets, write the results."""
    from csn_model.config import save_config
    from csn_model.data.slakh import SlakhDataset

    ds = SlakhDataset(data_root, duplicates=cfg.data.duplicates)  # first: a mistyped --data must
    _check_rate(ds, cfg, data_root)  # not be recorded below
    _log_omitted(ds)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    if saved.exists():
        # Through the schema, so fields added to the code since (with defaults) compare equal.
        before = _runtime_free(to_dict(load_bench_config(saved)))
        if before != _runtime_free(to_dict(cfg)):
            raise ValueError(
                f"{saved}: this run folder was made with another config; "
                "use the same config to resume, or a new --out"
            )
        _check_dataset(run_dir / "dataset.json", ds)
        check_run_folder(run_dir)  # every part made by older code, in one error
        made = None
    else:
        # A new run writes config.yaml and dataset.json before it trains anything, so trained
        # parts without them are another run's: nothing vouches for their data (the dataset.json
        # written next would), and a separator or system of older code would be used unchecked.
        for part in ("separator", "systems"):
            found = (run_dir / part).rglob("*")
            if any(f.suffix in {".pt", ".partial"} for f in found):  # checkpoints, states
                raise ValueError(
                    f"{run_dir}: holds {part}/ but no config.yaml, so nothing says which run "
                    f"made them; use an empty --out, or the folder of the run they belong to"
                )
        # Before anything is recorded: a run folder records its dataset's fingerprint, so one
        # made from a test split that fails here could not be resumed once the split is fixed.
        made = _before_training(ds, lambda: new_triplets(ds, cfg))
        # dataset.json first: config.yaml without dataset.json then means a folder from before
        (run_dir / "dataset.json").write_text(json.dumps(_dataset_record(ds)) + "\n")
        save_config(cfg, saved)
    if cfg.train.threads:  # the separator and scoring too, not only train_run
        torch.set_num_threads(cfg.train.threads)
    # The test triplets are made and saved before training: nothing trains for a run that cannot
    # be scored (a missing or too small test split).
    _before_training(ds, lambda: eval_triplets(ds, run_dir / "triplets", cfg, made))
    checkpoints = train_systems(cfg, data_root, run_dir, ds)  # raises before a bad index is written
    write_index(run_dir, checkpoints)
    results = evaluate(cfg, ds, checkpoints, run_dir)
    if cfg.bench.analysis and PROPOSED in checkpoints:
        from csn_model.analysis import analyze_subspaces

        analyze_subspaces(checkpoints[PROPOSED], ds, run_dir / "analysis", split="test")
    return results


def score_run(
    run_dir: Path, data_root: Path, out_dir: Path | None = None, duplicates: str | None = None
) -> dict:
    """Score an existing run's trained systems on another dataset's test split (no training).
    duplicates: how that dataset is read (None: the run's data.duplicates)."""
    from csn_model.data.slakh import SlakhDataset

    cfg = load_bench_config(run_dir / "config.yaml")
    checkpoints = read_index(run_dir)
    check_scored(checkpoints, run_dir)
    check_index(cfg, run_dir, checkpoints)  # the run's own systems, as resuming checks them
    ds = SlakhDataset(data_root, duplicates=duplicates or cfg.data.duplicates)
    _check_rate(ds, cfg, data_root)
    _log_omitted(ds)
    _check_new_compositions(run_dir / "dataset.json", ds)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    out_dir = out_dir or run_dir / "eval" / Path(data_root).resolve().name
    out_dir.mkdir(parents=True, exist_ok=True)
    return evaluate(cfg, ds, checkpoints, out_dir, trained_on=str(run_dir))


def _before_training(ds, check):
    """check()'s result; a DataError from it (the test split cannot give the evaluation
    triplets) says that it was found before any training."""
    from csn_model.data.slakh import DataError

    try:
        return check()
    except DataError as exc:
        raise DataError(
            f"{exc} (csn bench scores every system on the test split of {ds.root} and checks it "
            "before training anything)"
        ) from None


def _dataset_record(ds) -> dict:
    return {"root": str(Path(ds.root).resolve()), "fingerprint": ds.fingerprint}


def _check_dataset(record: Path, ds) -> None:
    """A run folder resumes only on the dataset it was started on, unchanged: its systems,
    separator and triplets came from that dataset. A record without a fingerprint predates them
    and is refused (nothing tells whether the data changed since), with the line to write if it
    is the same data."""
    want = _dataset_record(ds)
    line = json.dumps(want)
    if not record.exists():
        raise ValueError(
            f"{record}: missing; this run folder was made before csn bench recorded its dataset, "
            f"so it cannot tell whether {want['root']} is the data its systems were trained on; "
            f"use a new --out, or if it is that data, unchanged, write {line} to {record}"
        )
    try:
        recorded = json.loads(record.read_text())
        root = recorded["root"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f'{record}: expected {{"root": DATASET_PATH, "fingerprint": ...}} ({exc!r})'
        ) from None
    if root != want["root"]:
        raise ValueError(
            f"{record}: this run folder was made from the dataset {root}, not {want['root']}; "
            "use the same --data to resume, or a new --out"
        )
    if "fingerprint" not in recorded:
        raise ValueError(
            f"{record}: predates dataset fingerprints (it names the root only), so it cannot tell "
            f"whether {root} still holds the data its systems were trained on; use a new --out, "
            f"or if the data is unchanged since, write {line} to {record}"
        )
    if recorded["fingerprint"] != want["fingerprint"]:
        raise ValueError(
            f"{record}: the dataset {root} has changed since this run folder was made from it "
            f"(fingerprint {recorded['fingerprint']} then, {want['fingerprint']} now: its tracks, "
            "metadata.yaml or audio files differ), so its systems, separator and triplets are "
            "not this data's; use a new --out for it, or delete this run folder to start again"
        )


def _check_new_compositions(record: Path, ds) -> None:
    """`csn bench --from` on a `csn synth` dataset made with the training data's seed: csn synth
    composes track i from (seed, i) whatever the soundfont, so its test tracks would be the
    training pieces re-rendered, not new music. Refused when both csn_synth.json files share seed
    and generator_version and a test track of `ds` has an index the training data holds."""
    from csn_model.data.fingerprint import MANIFEST, synth_compositions

    try:
        trained = Path(json.loads(record.read_text())["root"])
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("%s: unreadable; cannot check that %s holds new compositions", record, ds.root)
        return
    ours, theirs = trained / MANIFEST, Path(ds.root) / MANIFEST
    if not (ours.is_file() and theirs.is_file()):
        return  # not two csn synth datasets (or the training data is gone: nothing to compare)
    a, b = json.loads(ours.read_text()), json.loads(theirs.read_text())
    fields = ("seed", "generator_version")
    if any(a.get(f) != b.get(f) for f in fields):
        return
    have = synth_compositions(trained)
    shared = {i: t for i, t in synth_compositions(ds.root, ("test",)).items() if i in have}
    if shared:
        i, track = next(iter(shared.items()))
        raise ValueError(
            f"{theirs} and {ours} (the data of the trained systems) have the same seed "
            f"({a.get('seed')}) and generator_version ({a.get('generator_version')}), and "
            f"{len(shared)} test track(s) of {ds.root} share a synth.track_index with it (e.g. "
            f"{track} and {have[i]}, index {i}): csn synth composes track i from (seed, i) "
            "whatever the soundfont, so they are the same pieces re-rendered, not new music; "
            "make the generalisation dataset with another --seed"
        )


def _runtime_free(d: dict) -> dict:
    """A config dict without the fields that do not change results (threads, workers, ...)."""
    from csn_model.train_folder import RUNTIME_FIELDS

    d = json.loads(json.dumps(d))
    for name in RUNTIME_FIELDS:
        d["train"].pop(name, None)
    return d


def _log_omitted(ds) -> None:
    ds.check_sources()
    if ds.omitted:
        log.info("%s: %s (data.duplicates: omit)", ds.root, ds.omit_summary())


def _check_rate(ds, cfg: BenchConfig, data_root) -> None:
    if ds.sample_rate != cfg.features.sample_rate:
        raise ValueError(
            f"{data_root}: sample rate {ds.sample_rate} Hz; the config's "
            f"features.sample_rate is {cfg.features.sample_rate}"
        )


def evaluate(cfg: BenchConfig, ds, checkpoints: dict, out_dir: Path, trained_on: str = "") -> dict:
    from csn_model.separation import load_separator

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    triplets = eval_triplets(ds, out_dir / "triplets", cfg)
    log.info("test split of %s: %s", ds.root, ds.skip_summary("test"))
    nets = load_systems(checkpoints, device)
    separator = None
    if "individual_separated" in nets:
        sep_cfg = cfg.separator if isinstance(cfg.separator, SeparatorConfig) else SeparatorConfig()
        sep_path = checkpoints.get("separator")
        separator = load_separator(sep_cfg, sep_path and Path(sep_path), ds.sample_rate)
    outcomes = score(
        ds, triplets, nets, cfg.features.segment_frames, separator, cfg.bench.batch_triplets
    )
    outcomes.to_csv(out_dir / "outcomes.csv", index=False)
    acc = accuracy_table(outcomes, n_boot=cfg.bench.n_boot, seed=cfg.bench.eval_seed)
    reference = PROPOSED if PROPOSED in nets else next(iter(nets))
    comps = compare_to_reference(outcomes, reference) if len(nets) > 1 else pd.DataFrame()
    sdr = _sdr_summary(checkpoints, out_dir, ds, cfg, separator)
    results = build_results(cfg, ds, triplets, nets, acc, comps, sdr, trained_on)
    write_results(results, acc, comps, out_dir)
    log.info("results written to %s", out_dir / "results.md")
    return results


def _sdr_summary(checkpoints, out_dir: Path, ds, cfg, separator) -> list:
    from csn_model.separation import sdr_table, write_sdr

    if separator is None:
        return []
    existing = out_dir / "separator" / "sdr.json"
    if not existing.exists():  # another dataset (score_run): measure the separator there too
        existing.parent.mkdir(parents=True, exist_ok=True)
        write_sdr(
            sdr_table(ds, separator, "test", cfg.bench.sdr_chunk_seconds), existing.with_suffix("")
        )
    return json.loads(existing.read_text())


# -- checkpoints.json ----------------------------------------------------------------------------
def write_index(run_dir: Path, checkpoints: dict) -> None:
    """checkpoints.json: {name: path or {condition: path} or null}. A file inside the run folder
    is written relative to it, so that a moved or copied folder names its own files (absolute
    paths would name the original's, or nothing once it is gone); a file outside stays absolute."""
    write_json(run_dir / "checkpoints.json", _index_record(checkpoints, Path(run_dir).resolve()))


def _index_record(obj, root: Path):
    if isinstance(obj, dict):
        return {k: _index_record(v, root) for k, v in obj.items()}
    if obj is None:
        return None
    path = Path(obj).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def read_index(run_dir: Path) -> dict:
    """checkpoints.json with its paths as Paths: a relative one is under run_dir, an absolute one
    (a file outside the run folder, or any file in an index written before paths were relative)
    is read as it is."""
    index = run_dir / "checkpoints.json"
    if not index.exists():
        raise ValueError(f"{index}: missing; run `csn bench` to completion in {run_dir} first")

    def paths(obj):
        if isinstance(obj, dict):
            return {k: paths(v) for k, v in obj.items()}
        return None if obj is None else run_dir / obj  # an absolute obj replaces run_dir

    return paths(json.loads(index.read_text()))
