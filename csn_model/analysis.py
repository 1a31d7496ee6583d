"""Subspace analysis (METHOD.md "Evaluation", the paper's figures 5-9).

For a trained CSN and a dataset split:
- embeddings of every track's mixture, one per segment (non-overlapping segments of the
  training length), with each segment labelled, per instrument j, by j's timbre class: the GM
  program (drums: the kit, by plugin_name) of j's stems in that track, or none where j is absent
  or not audible in that segment;
- per instrument subspace i a 2-D PCA projection (PNG) of the subspace-i vectors coloured by
  instrument i's class;
- a disentanglement matrix M[i, j]: cross-validated accuracy of a linear probe (multinomial
  logistic regression on standardised features) predicting instrument j's class from subspace i.
  Folds are grouped by track (GroupKFold), so a probe cannot succeed by recognising the piece
  rather than the timbre: all segments of a track share every label. Only classes present in at
  least two tracks are kept for column j. If each subspace holds its own instrument, the
  diagonal dominates its column; the matrix is written whether or not it does, next to each
  column's majority-class rate (chance). A column whose instrument has no two such classes in
  the split is NaN, and summary.json's not_computed (and a warning) says why.
Outputs: disentanglement.csv, disentanglement.png, projection_<instrument>.png, summary.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from csn_model import CONDITIONS

log = logging.getLogger("csn.analysis")


def timbre_label(track, cond: str) -> str | None:
    """Instrument cond's timbre class in a track, None where cond has no audible stem: the GM
    programs of its stems; for drums the kits, named by each stem's plugin_name (Slakh gives
    every kit program_num 128 or 0 and names the kit there; csn synth writes soundfont:preset),
    or by the program where plugin_name is missing."""
    track.analyse()  # drops silent stems
    stems = track.stems.get(cond, ())
    if not stems:
        return None
    if cond != "drums":
        return "+".join(str(p) for p in sorted(s.program for s in stems))
    return "kit " + "+".join(sorted(_kit(track, s) for s in stems))


def _kit(track, stem) -> str:
    plugin = track.metadata["stems"].get(stem.name, {}).get("plugin_name")
    if isinstance(plugin, str) and plugin.strip() and plugin != "None":  # Slakh writes "None"
        return plugin
    return str(stem.program)


@torch.no_grad()
def embed_split(checkpoint: Path, ds, split: str = "test", max_per_track: int = 8, batch=32):
    """(embeddings (N, D), labels DataFrame track + one column per condition, model)."""
    from csn_model.checkpoint import load_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_model(checkpoint, device)
    if model.sample_rate != ds.sample_rate:
        raise ValueError(
            f"{ds.root}: sample rate {ds.sample_rate}; {checkpoint} expects {model.sample_rate}"
        )
    frames = _segment_frames(checkpoint)
    rows, waves = [], []
    for track in ds.tracks(split):
        starts = np.arange(0, track.num_frames - frames + 1, frames)[:max_per_track]
        active = {c: set(track.active_segments(c, frames, frames).tolist()) for c in CONDITIONS}
        for s in starts:
            waves.append(track.read_mix(int(s), frames))  # (T,)
            labels = {
                c: (timbre_label(track, c) if int(s) in active[c] else None) for c in CONDITIONS
            }
            rows.append({"track": track.name, "start": int(s), **labels})
    embs = []
    for lo in range(0, len(waves), batch):
        x = torch.as_tensor(np.stack(waves[lo : lo + batch]), device=device)  # (B, T)
        embs.append(model(x).cpu().numpy())  # (B, D)
    return np.concatenate(embs), pd.DataFrame(rows), model


def _segment_frames(checkpoint: Path) -> int:
    from csn_model.checkpoint import load_checkpoint

    f = load_checkpoint(checkpoint)["config"]["features"]
    return int(round(f["segment_seconds"] * f["sample_rate"]))


def subspace_vectors(model, emb: np.ndarray, cond: str) -> np.ndarray:
    k = model.conditions.index(cond)
    x = torch.as_tensor(emb, device=model.masks().device)  # (N, D) next to the masks
    # detach: learned masks are parameters, so their subspaces require grad
    return model.subspace(x, k).detach().cpu().numpy()  # (N, D/K) or (N, D) learned masks


def probe_accuracy(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5) -> float:
    """Grouped cross-validated accuracy of a standardised multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_groups = len(np.unique(groups))
    if n_groups < 2 or len(np.unique(y)) < 2:
        return float("nan")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    cv = GroupKFold(n_splits=min(folds, n_groups))
    return float(cross_val_score(probe, x, y, groups=groups, cv=cv).mean())


def disentanglement_matrix(model, emb: np.ndarray, labels: pd.DataFrame) -> pd.DataFrame:
    """Tidy rows subspace, target, accuracy, chance, n, n_classes."""
    rows = []
    for j in CONDITIONS:
        keep = labels[j].notna().to_numpy().copy()
        counts = labels.loc[keep].groupby(j)["track"].nunique()
        classes = set(counts[counts >= 2].index)
        keep = keep & labels[j].isin(classes).to_numpy()
        y, groups = labels.loc[keep, j].to_numpy(), labels.loc[keep, "track"].to_numpy()
        chance = float(pd.Series(y).value_counts(normalize=True).max()) if len(y) else np.nan
        for i in CONDITIONS:
            acc = (
                probe_accuracy(subspace_vectors(model, emb, i)[keep], y, groups)
                if len(y)
                else np.nan
            )
            rows.append(
                {
                    "subspace": i,
                    "target": j,
                    "accuracy": acc,
                    "chance": chance,
                    "n": int(keep.sum()),
                    "n_classes": len(classes),
                }
            )
    return pd.DataFrame(rows)


def _heatmap(matrix: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = matrix.pivot(index="subspace", columns="target", values="accuracy")
    m = m.reindex(index=list(CONDITIONS), columns=list(CONDITIONS))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(m.to_numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(CONDITIONS)), CONDITIONS, rotation=30)
    ax.set_yticks(range(len(CONDITIONS)), CONDITIONS)
    ax.set_xlabel("predicted: instrument j's program / kit")
    ax.set_ylabel("from subspace i")
    for (r, c), v in np.ndenumerate(m.to_numpy()):
        ax.text(c, r, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", color="w")
    fig.colorbar(im, ax=ax, label="grouped 5-fold CV accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _projection(vectors: np.ndarray, labels: pd.Series, cond: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    keep = labels.notna().to_numpy()
    xy = PCA(n_components=2).fit_transform(vectors[keep])  # (n, 2)
    y = labels[keep].to_numpy()
    fig, ax = plt.subplots(figsize=(6, 5))
    for n, cls in enumerate(pd.Series(y).value_counts().index):
        sel = y == cls
        ax.scatter(xy[sel, 0], xy[sel, 1], s=10, label=str(cls), color=plt.cm.tab20(n % 20))
    ax.set_title(f"{cond} subspace (PCA), coloured by {cond} program")
    ax.legend(fontsize=6, markerscale=1.5, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _not_computed(matrix: pd.DataFrame, labels: pd.DataFrame, split: str) -> dict[str, str]:
    """{target: why} for each column of the matrix that is NaN: its probe needs two classes of
    the instrument, each in at least two tracks of the split (grouped folds), which a small
    split does not give."""
    out = {}
    for j in CONDITIONS:
        col = matrix[matrix["target"] == j]
        if col["accuracy"].notna().any():
            continue
        tracks = labels.loc[labels[j].notna(), "track"].nunique()
        out[j] = (
            f"its probe needs at least 2 classes (programs or kits) of {j}, each found in at least "
            f"2 {split} tracks; {j} is audible in {tracks} of the {labels['track'].nunique()} "
            f"{split} track(s), which give {int(col['n_classes'].iloc[0])} such class(es); "
            "use more tracks, or another split (--split)"
        )
    return out


def analyze_subspaces(checkpoint, ds, out_dir, split: str = "test") -> pd.DataFrame:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    emb, labels, model = embed_split(Path(checkpoint), ds, split)
    if len(model.conditions) != len(CONDITIONS):
        raise ValueError(f"{checkpoint}: a CSN with {len(CONDITIONS)} subspaces is needed")
    labels.to_csv(out_dir / "segments.csv", index=False)
    for cond in CONDITIONS:
        if labels[cond].notna().sum() >= 3:
            _projection(
                subspace_vectors(model, emb, cond),
                labels[cond],
                cond,
                out_dir / f"projection_{cond}.png",
            )
    matrix = disentanglement_matrix(model, emb, labels)
    matrix.to_csv(out_dir / "disentanglement.csv", index=False)
    _heatmap(matrix, out_dir / "disentanglement.png")
    wide = matrix.pivot(index="subspace", columns="target", values="accuracy")
    diag = [c for c in CONDITIONS if wide.loc[c].notna().any() and not np.isnan(wide.loc[c, c])]
    dominates = {c: bool(wide.loc[c, c] >= wide[c].max()) for c in diag}
    not_computed = _not_computed(matrix, labels, split)
    for target, reason in not_computed.items():
        log.warning("disentanglement column %s not computed: %s", target, reason)
    summary = {
        "checkpoint": str(checkpoint),
        "split": split,
        "segments": len(labels),
        "diagonal_is_column_max": dominates,
        "not_computed": not_computed,  # {target: why its column is NaN}
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return matrix


# -- `csn analyze-subspaces` -------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a CSN checkpoint (e.g. final.pt)")
    parser.add_argument("--data", required=True, help="Slakh-layout dataset root")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--out", required=True, help="folder for the CSV and PNG files")
    from csn_model.cli import add_duplicates_argument

    add_duplicates_argument(parser, default="refuse")


def run(args) -> int:
    import sys

    from csn_model.checkpoint import CheckpointError
    from csn_model.data.slakh import DataError, SlakhDataset

    try:
        ds = SlakhDataset(args.data, duplicates=args.duplicates)
        ds.check_sources()
        if ds.omitted:
            print(f"csn analyze-subspaces: {ds.omit_summary()}")
        matrix = analyze_subspaces(args.checkpoint, ds, args.out, args.split)
    except (CheckpointError, DataError, ValueError) as exc:
        print(f"csn analyze-subspaces: {exc}", file=sys.stderr)
        return 2
    wide = matrix.pivot(index="subspace", columns="target", values="accuracy")
    print(wide.reindex(index=list(CONDITIONS), columns=list(CONDITIONS)).round(3).to_string())
    summary = json.loads((Path(args.out) / "summary.json").read_text())
    for target, reason in summary["not_computed"].items():
        print(f"{target}: not computed (NaN): {reason}")
    return 0
