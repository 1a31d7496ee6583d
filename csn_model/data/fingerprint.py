"""What identifies a Slakh-layout dataset's content: its fingerprint, and the compositions of a
`csn synth` dataset.

The fingerprint is what a training run, a `csn bench` run folder and a saved triplet file record
about the data they were made from, so that a dataset replaced at the same path (or another
dataset given to the same run) is refused instead of silently reused.

Cheap by design (no audio decoded, one directory walk): a SHA-256 over csn_synth.json (when
present), the track folders of each split in sorted order, each track's metadata.yaml bytes and the
names and sizes of every other file in the track folder (stems, mix, MIDI). It identifies a dataset
as written; it is not a checksum of the audio (a stem rewritten with other samples of the same size
keeps the fingerprint: `csn synth` never does that, it writes another metadata.yaml too). A
dataset read with duplicates="omit" that leaves tracks out also hashes their names: a triplet file
or run made with one mode is refused with the other whenever the two read different tracks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import yaml

from csn_model.data.entries import broken_link
from csn_model.data.slakh import SPLITS

MANIFEST = "csn_synth.json"  # as csn_model.data.synth.MANIFEST (synth imports pretty_midi)
FINGERPRINT_HEX = 16  # characters kept of the SHA-256, as csn_model.checkpoint.file_id


def dataset_fingerprint(root: str | Path, omitted: Iterable[str] = ()) -> str:
    """The first FINGERPRINT_HEX hex characters of the dataset's SHA-256 (see the module).
    omitted: the "split/track" folders the reader leaves out (SlakhDataset(duplicates="omit")),
    hashed too when there are any, so that data read without them is another dataset; with none
    the fingerprint is the content's alone, whatever the reader's mode."""
    root = Path(root)
    h = hashlib.sha256()
    for name in sorted(omitted):
        h.update(f"omitted\0{name}\0".encode())
    manifest = root / MANIFEST
    h.update(b"manifest\0" + (manifest.read_bytes() if manifest.is_file() else b"-") + b"\0")
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        h.update(f"split\0{split}\0".encode())
        for link in sorted(p for p in folder.iterdir() if _visible(p) and broken_link(p)):
            # a track link leading nowhere (the reader refuses it) still changes the content
            h.update(b"broken\0" + os.fsencode(link.name) + b"\0" + os.fsencode(os.readlink(link)))
        for track in sorted(p for p in folder.iterdir() if _visible(p) and p.is_dir()):
            # os.fsencode: a name that is not UTF-8 is hashed by its bytes (as .encode() does any
            # other name), so a stray Latin-1 file name is part of the content, not an error
            h.update(b"track\0" + os.fsencode(track.name) + b"\0")
            meta = track / "metadata.yaml"
            h.update(meta.read_bytes() if meta.is_file() else b"-")
            for f in sorted(track.rglob("*")):
                rel = f.relative_to(track)
                if f.is_file() and f != meta and all(_visible(Path(p)) for p in rel.parts):
                    h.update(b"\0" + os.fsencode(rel.as_posix()))
                    h.update(f"\0{f.stat().st_size}".encode())
    return h.hexdigest()[:FINGERPRINT_HEX]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")  # hidden: temporary files of an unfinished write


def synth_compositions(root: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[int, str]:
    """{track index: "split/TrackXXXXX"} of a `csn synth` dataset's tracks in `splits`, from the
    `synth.track_index` of each metadata.yaml. csn synth composes track i from SeedSequence([seed,
    i]) whatever the soundfont, so two datasets with one seed (and generator version) hold the same
    pieces at the same indices. Tracks without the field (not csn synth's) are left out."""
    out: dict[int, str] = {}
    for split in splits:
        folder = Path(root) / split
        if not folder.is_dir():
            continue
        for track in sorted(p for p in folder.iterdir() if _visible(p) and p.is_dir()):
            try:
                text = (track / "metadata.yaml").read_text(encoding="utf-8")
                meta = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                index = meta["synth"]["track_index"]
            except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
                continue  # the reader reports a malformed track when it loads it
            if isinstance(index, int) and not isinstance(index, bool):  # true is not track 1
                out.setdefault(index, f"{split}/{track.name}")
    return out
