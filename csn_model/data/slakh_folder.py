"""One Slakh track folder on disk parsed into a Track: metadata.yaml read and checked, the stems
folder located inside the track folder, and each stem's audio header checked against the mix's
(no audio decoded). Unrendered and unlisted stems are recorded as documented skips.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import yaml

from csn_model import CONDITIONS
from csn_model.data import audio_io
from csn_model.data.audio_io import AUDIO_SUFFIXES, audio_file
from csn_model.data.conditions import condition_of
from csn_model.data.entries import check_track_entry, shown
from csn_model.data.errors import DataError
from csn_model.data.slakh_track import Stem, Track

__all__ = ["SOURCE_FIELDS", "load_track", "source_ids"]

# Fields of Slakh's metadata.yaml that name the Lakh MIDI file a track was rendered from (UUID is
# that file's MD5, lmd_midi_dir its path in the Lakh MIDI Dataset): two tracks sharing either are
# renderings of one piece.
SOURCE_FIELDS = ("lmd_midi_dir", "UUID")


def _read_metadata(folder: Path) -> dict:
    meta_path = folder / "metadata.yaml"
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: missing; every Slakh track folder needs metadata.yaml")
    try:
        text = meta_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{meta_path}: cannot read as UTF-8 text: {exc}") from exc
    try:
        meta = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise DataError(f"{meta_path}: not valid YAML: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("stems"), dict) or not meta["stems"]:
        raise DataError(
            f"{meta_path}: field 'stems' missing or empty; expected a mapping Sxx -> stem"
        )
    return meta


def source_ids(folder: Path) -> dict[str, str]:
    """{field: value} of the SOURCE_FIELDS that the track's metadata.yaml holds; a missing field
    is not an error, and a metadata file that cannot be read gives {} (load_track reports it)."""
    try:
        meta = _read_metadata(folder)
    except DataError:
        return {}
    return {f: str(meta[f]) for f in SOURCE_FIELDS if isinstance(meta.get(f), str) and meta[f]}


def load_track(split: str, folder: Path, skipped: list | None = None) -> Track:
    """Parse one track folder and check its audio headers (no audio decoded)."""
    skipped = skipped if skipped is not None else []
    check_track_entry(folder)
    meta = _read_metadata(folder)
    meta_path = folder / "metadata.yaml"
    mix_path = audio_file(folder, "mix")
    if mix_path is None:
        audio_io.refuse_broken_link(folder, "mix", folder.name, "the mix")
        raise DataError(f"{folder}: mix.flac or mix.wav missing{audio_io.misnamed(folder, 'mix')}")
    mix = audio_io.info(mix_path, folder.name, "mix")
    audio_dir = _audio_dir(folder, meta_path, meta)
    by_cond: dict[str, list[Stem]] = {}
    for name, sm in meta["stems"].items():
        if not isinstance(sm, dict):
            raise DataError(f"{meta_path}: stems.{name} is not a mapping")
        rendered = sm.get("audio_rendered", True)
        if not isinstance(rendered, bool):  # 'no' or 0 would otherwise count as rendered
            raise DataError(
                f"{meta_path}: stems.{name}.audio_rendered has type {type(rendered).__name__}; "
                "expected bool"
            )
        if rendered is False:
            skipped.append((folder.name, str(name), "audio_rendered: false"))
            continue
        stem = _load_stem(folder, meta_path, audio_dir, str(name), sm, mix)
        by_cond.setdefault(stem.condition, []).append(stem)
    if not by_cond:
        raise DataError(f"{meta_path}: no stem has rendered audio; expected at least one")
    listed = {str(n) for n in meta["stems"]}
    for extra in sorted(audio_dir.glob("*")) if audio_dir.is_dir() else ():
        if extra.suffix.lower() in AUDIO_SUFFIXES and extra.stem not in listed:
            name = shown(extra.stem)  # any name: it is not read, only reported
            skipped.append((folder.name, name, "audio file not listed in metadata.yaml"))
    return Track(
        name=folder.name,
        split=split,
        path=folder,
        sample_rate=int(mix.samplerate),
        num_frames=int(mix.frames),
        metadata=meta,
        mix_path=mix_path,
        stems={c: tuple(by_cond[c]) for c in CONDITIONS if c in by_cond},
        skip_log=skipped,
    )


def _audio_dir(folder: Path, meta_path: Path, meta: dict) -> Path:
    """The track's stems folder: metadata's audio_dir ("stems" in Slakh), which must stay inside
    the track folder (an absolute path or ".." would read, list and serve files elsewhere)."""
    value = str(meta.get("audio_dir") or "stems")
    rel = PurePosixPath(value)
    if rel.is_absolute() or ".." in rel.parts:
        raise DataError(
            f"{meta_path}: audio_dir={value!r}; expected a folder inside the track folder, "
            "relative and without '..' (Slakh's is 'stems')"
        )
    return folder / rel


def _load_stem(folder, meta_path, audio_dir, name, sm, mix) -> Stem:
    for key, kind in (("program_num", int), ("is_drum", bool)):
        if key not in sm:
            raise DataError(f"{meta_path}: stems.{name}.{key} missing; expected {kind.__name__}")
        # bool is an int in Python: program_num: true (or YAML 1.1's yes/on) would be program 1
        if not isinstance(sm[key], kind) or (kind is int and isinstance(sm[key], bool)):
            raise DataError(
                f"{meta_path}: stems.{name}.{key} has type {type(sm[key]).__name__}; "
                f"expected {kind.__name__}"
            )
    path = audio_file(audio_dir, name)
    if path is None:
        audio_io.refuse_broken_link(audio_dir, name, folder.name, f"stem {name}")
        raise DataError(
            f"{meta_path}: stem {name} of {folder.name} is listed with audio_rendered true but "
            f"{audio_dir / name}.flac|.wav does not exist{audio_io.misnamed(audio_dir, name)}"
        )
    info = audio_io.info(path, folder.name, f"stem {name}")
    if info.samplerate != mix.samplerate:
        raise DataError(
            f"{path}: stem {name} of {folder.name} has sample rate {info.samplerate} Hz; "
            f"expected {mix.samplerate} Hz like the mix"
        )
    if info.frames != mix.frames:
        raise DataError(
            f"{path}: stem {name} of {folder.name} has {info.frames} frames; "
            f"expected {mix.frames} like the mix"
        )
    program = int(sm["program_num"])
    # Slakh2100-redux numbers drum stems 128 (midi_program_name "Drums"); other renderings 0-127.
    if not 0 <= program <= (128 if sm["is_drum"] else 127):
        raise DataError(
            f"{meta_path}: stems.{name}.program_num={program}; expected 0-127 (128 only for drums)"
        )
    return Stem(
        name=name,
        path=path,
        condition=condition_of(program, sm["is_drum"]),
        program=program,
        is_drum=bool(sm["is_drum"]),
        channels=int(info.channels),
    )
