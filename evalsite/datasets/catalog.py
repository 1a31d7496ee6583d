"""Find Slakh-layout datasets and describe their tracks for the listing page (no audio decoded).

Datasets: settings.CSN_DATA_DIR itself when it is a Slakh root, each of its sub-folders that is
one, and every path in settings.CSN_DATASETS. Each gets a URL slug from its folder name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils.text import slugify

from csn_model import CONDITIONS
from csn_model.data.entries import is_track_entry, shown
from csn_model.data.slakh import SPLITS, DataError
from csn_model.data.slakh_folder import load_track


@dataclass(frozen=True)
class DatasetRef:
    slug: str
    root: Path


@dataclass
class TrackRow:
    name: str
    split: str
    tempo: float | None = None
    key: str = ""
    style: str = ""
    mix: str = ""  # path relative to the dataset root
    sample_rate: int | None = None
    seconds: float | None = None
    conditions: list[dict] = field(default_factory=list)  # {name, stems: [{name, program, ...}]}
    error: str = ""


def is_slakh_root(path: Path) -> bool:
    return path.is_dir() and any((path / s).is_dir() for s in SPLITS)


def datasets() -> list[DatasetRef]:
    base = Path(settings.CSN_DATA_DIR)
    candidates: list[Path] = []
    if is_slakh_root(base):
        candidates.append(base)
    elif base.is_dir():
        candidates += sorted(p for p in base.iterdir() if is_slakh_root(p))
    candidates += [Path(p) for p in getattr(settings, "CSN_DATASETS", []) if is_slakh_root(Path(p))]
    refs: list[DatasetRef] = []
    seen: set[str] = set()
    for root in candidates:
        root = root.resolve()
        if root in {r.root for r in refs}:
            continue
        slug = slugify(root.name) or "dataset"
        base_slug, n = slug, 2
        while slug in seen:
            slug, n = f"{base_slug}-{n}", n + 1
        seen.add(slug)
        refs.append(DatasetRef(slug, root))
    return refs


def find(slug: str) -> DatasetRef | None:
    return next((d for d in datasets() if d.slug == slug), None)


def split_names(ref: DatasetRef) -> list[tuple[str, list[Path]]]:
    out = []
    for split in SPLITS:
        folder = ref.root / split
        if folder.is_dir():
            # a link that leads nowhere is listed too: describe() shows it as an error row
            dirs = sorted(p for p in folder.iterdir() if is_track_entry(p))
            out.append((split, dirs))
    return out


def describe(ref: DatasetRef, split: str, folder: Path) -> TrackRow:
    """One track's listing row; a malformed track becomes a row with its error message."""
    row = TrackRow(name=shown(folder.name), split=split)
    try:
        track = load_track(split, folder)
    except DataError as exc:
        row.error = str(exc)
        return row
    meta = track.metadata
    row.tempo, row.key = (
        meta.get("tempo"),
        " ".join(str(x) for x in (meta.get("key"), meta.get("mode")) if x),
    )
    row.style = str(meta.get("style") or "")
    row.mix = str(track.mix_path.relative_to(ref.root))
    row.sample_rate, row.seconds = track.sample_rate, track.num_frames / track.sample_rate
    stems_meta = meta.get("stems", {})
    for cond in CONDITIONS:
        stems = track.stems.get(cond, ())
        if not stems:
            continue
        row.conditions.append(
            {
                "name": cond,
                "stems": [
                    {
                        "name": s.name,
                        "program": s.program,
                        "label": _label(stems_meta.get(s.name, {})),
                        "path": str(s.path.relative_to(ref.root)),
                    }
                    for s in stems
                ],
            }
        )
    return row


def _label(sm: dict) -> str:
    return str(sm.get("kit") or sm.get("preset_name") or sm.get("midi_program_name") or "")


def manifest(ref: DatasetRef) -> dict:
    """`csn synth`'s manifest, when the dataset was made by it."""
    path = ref.root / "csn_synth.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
