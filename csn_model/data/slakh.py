"""Read multitrack datasets in the Slakh2100 (and Slakh2100-redux) layout, unchanged.

    ROOT/{train,validation,test,omitted}/TrackXXXXX/
        metadata.yaml         per stem: inst_class, program_num, is_drum, audio_rendered, ...
        mix.flac|wav
        stems/Sxx.flac|wav    mono or multichannel, same sample rate and length as the mix

Stems map to the five conditions by General MIDI program (csn_model.data.conditions.condition_of);
several stems of one condition are summed when read. Audio is read by seeking (soundfile), never
by decoding whole files, except for the one streamed pass that measures each condition's energy
envelope (cached per track) to find silent stems and active segments.

This module holds the dataset root and its splits (SlakhDataset); one track folder is parsed by
csn_model.data.slakh_folder.load_track into a Track (csn_model.data.slakh_track), which analyses
and reads its audio.

Documented, counted skips (listed in `SlakhDataset.skipped`, never silent):
- a stem whose metadata says `audio_rendered: false` (Slakh does not render those),
- an audio file in the stems folder that metadata.yaml does not list (it is not read), and
- a stem whose audio is silent by csn_model.silence's rule (peak above 20 Hz below -60 dBFS, so a
  constant offset is silent too): its condition is absent from the track unless another stem of
  that condition plays.
Everything else that is malformed raises DataError naming the track, the stem and the expectation,
and so does one source MIDI rendered in two splits (original Slakh2100 has such duplicates; see
SlakhDataset.check_sources), unless the dataset is opened with duplicates="omit": then one track per
source MIDI is kept and the others are left out, each listed in `SlakhDataset.omitted`.
"""

from __future__ import annotations

from pathlib import Path

from csn_model.config import DUPLICATES
from csn_model.data.entries import check_track_entry, is_track_entry, require_utf8
from csn_model.data.errors import DataError, DuplicateSourcesError
from csn_model.data.slakh_folder import SOURCE_FIELDS, load_track, source_ids
from csn_model.data.slakh_track import Track

__all__ = ["DataError", "DuplicateSourcesError", "SlakhDataset"]

SPLITS: tuple[str, ...] = ("train", "validation", "test")
OMIT_REASON = "same source MIDI as a kept track"


class SlakhDataset:
    """A Slakh-layout dataset root. Splits are scanned lazily, once each."""

    def __init__(self, root: str | Path, cache_audio: bool = False, duplicates: str = "refuse"):
        """cache_audio: keep every condition a read touches decoded in memory (about 5.3 MB per
        condition-minute at 22050 Hz; for small datasets and fast training loaders). Call
        preload(split) before forking DataLoader workers so that they share one copy.
        duplicates: what to do with tracks rendered from one source MIDI (check_sources)."""
        self.root = Path(root)
        self.cache_audio = cache_audio
        if duplicates not in DUPLICATES:
            raise DataError(f"duplicates: expected 'refuse' or 'omit', got {duplicates!r}")
        self.duplicates = duplicates
        require_utf8(self.root, "dataset root")
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset root is not a directory")
        present = [s for s in SPLITS if (self.root / s).is_dir()]
        if not present:
            raise DataError(
                f"{self.root}: no split folder found; expected at least one of "
                f"{', '.join(s + '/' for s in SPLITS)}"
            )
        self.splits: tuple[str, ...] = tuple(present)
        self.skipped: list[tuple[str, str, str]] = []  # (track, stem, reason): documented skips
        self.omitted: list[tuple[str, str]] = []  # ("split/track", reason): duplicates left out
        self._tracks: dict[str, list[Track]] = {}
        self._by_name: dict[str, Track] = {}
        self._sample_rate: int | None = None
        self._fingerprint: str | None = None
        self._sources_checked = False

    def __repr__(self) -> str:
        return f"SlakhDataset({str(self.root)!r})"

    @property
    def sample_rate(self) -> int:
        for split in self.splits:
            self.tracks(split)
        if self._sample_rate is None:  # every split holds a track, or tracks() raised
            raise DataError(f"{self.root}: no track to take the sample rate from")
        return self._sample_rate

    @property
    def fingerprint(self) -> str:
        """csn_model.data.fingerprint's identity of the dataset's content (computed once)."""
        from csn_model.data.fingerprint import dataset_fingerprint  # noqa: PLC0415  (cycle)

        if self._fingerprint is None:
            if self.duplicates == "omit":
                self.check_sources()  # the tracks left out are part of what the dataset reads
            self._fingerprint = dataset_fingerprint(self.root, [t for t, _ in self.omitted])
        return self._fingerprint

    def tracks(self, split: str) -> list[Track]:
        if split not in SPLITS:
            raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
        self.check_sources()
        if split not in self._tracks:
            folder = self.root / split
            if not folder.is_dir():
                raise DataError(f"{folder}: split folder missing")
            left_out = {t for t, _ in self.omitted}
            dirs = [d for d in _track_dirs(folder) if f"{split}/{d.name}" not in left_out]
            tracks = [self._load_track(split, d) for d in dirs]
            if not tracks and left_out:
                raise DataError(f"{folder}: every track left out ({OMIT_REASON} in another split)")
            if not tracks:
                raise DataError(f"{folder}: empty split, expected track folders with metadata.yaml")
            self._tracks[split] = tracks
        return self._tracks[split]

    def check_sources(self) -> None:
        """Tracks rendered from one source MIDI (the same metadata.yaml `lmd_midi_dir` or `UUID`):
        original Slakh2100 renders some Lakh MIDI files as several tracks across train, validation
        and test, so a model would be tested on pieces it was trained on; Slakh2100-redux moves
        those duplicates to omitted/. duplicates="refuse": DataError for such tracks in different
        splits (within one split they are read). duplicates="omit": the project's own rule (see
        _omit). A track without these fields is not checked. Reads every split's metadata once,
        before the first split is loaded."""
        if self._sources_checked:
            return
        tracks = [
            (f"{s}/{d.name}", source_ids(d))
            for s in self.splits
            for d in _track_dirs(self.root / s)
        ]
        if self.duplicates == "omit":
            self.omitted = _omit(tracks)
        else:
            self._refuse(tracks)
        self._sources_checked = True

    def _refuse(self, tracks: list[tuple[str, dict[str, str]]]) -> None:
        first: dict[tuple[str, str], str] = {}  # (field, value) -> "split/track" seen first
        pairs: dict[tuple[str, str], list[str]] = {}  # (earlier, later track) -> shared fields
        for here, ids in tracks:
            split = here.split("/")[0]
            for field, value in ids.items():
                seen = first.setdefault((field, value), here)
                if not seen.startswith(f"{split}/"):
                    pairs.setdefault((seen, here), []).append(f"{field} {value}")
        if pairs:
            named = [f"{a} and {b} ({', '.join(f)})" for (a, b), f in list(pairs.items())[:5]]
            more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
            raise DuplicateSourcesError(
                f"{self.root}: {len(pairs)} pair(s) of tracks in different splits share their "
                f"source MIDI ({' or '.join(SOURCE_FIELDS)} in metadata.yaml): "
                f"{'; '.join(named)}{more}; the test split would hold pieces the training split "
                "has. Original Slakh2100 has such duplicates: use Slakh2100-redux (it moves them "
                'to omitted/), or read it with duplicates="omit" (--duplicates omit: one track '
                "kept per source MIDI, the first in train, validation, test order), or move one "
                "track of each pair out of the splits"
            )

    def omit_summary(self) -> str:
        """The one line the commands print about duplicates="omit" ("" when nothing is left out)."""
        return f"{len(self.omitted)} tracks left out: {OMIT_REASON}" if self.omitted else ""

    def preload(self, split: str) -> None:
        """Decode every condition of the split's tracks into the cache (needs cache_audio)."""
        if not self.cache_audio:
            raise DataError(f"{self.root}: preload needs SlakhDataset(..., cache_audio=True)")
        for track in self.tracks(split):
            for condition in track.conditions:
                track._decoded(condition)

    def track(self, name: str) -> Track:
        """A track by name, from any split (names are unique across a Slakh dataset)."""
        if name not in self._by_name:
            for split in self.splits:
                self.tracks(split)
        try:
            return self._by_name[name]
        except KeyError:
            gone = [f"{t} is left out: {why}" for t, why in self.omitted if t.endswith(f"/{name}")]
            if gone:
                raise DataError(f"{self.root}: {gone[0]} (duplicates='omit')") from None
            raise DataError(f"{self.root}: no track named {name!r} in any split") from None

    def skipped_in(self, split: str) -> list[tuple[str, str, str]]:
        """The documented skips of `split`'s tracks: those found so far (unrendered and unlisted
        stems once the split is loaded, silent ones once a track is analysed). `skipped` also
        holds other splits' skips: `sample_rate` loads the headers of every split."""
        return [s for s in self.skipped if self._by_name[s[0]].split == split]

    def skip_summary(self, split: str | None = None) -> str:
        """Counts by reason of `split`'s skips (skipped_in), or of every split's without one."""
        counts: dict[str, int] = {}
        for _track, _stem, reason in self.skipped if split is None else self.skipped_in(split):
            counts[reason] = counts.get(reason, 0) + 1
        return ", ".join(f"{n} stems skipped: {r}" for r, n in sorted(counts.items())) or "none"

    def _load_track(self, split: str, folder: Path) -> Track:
        track = load_track(split, folder, self.skipped)
        track.cache_audio = self.cache_audio
        if self._sample_rate is None:
            self._sample_rate = track.sample_rate
        elif track.sample_rate != self._sample_rate:
            raise DataError(
                f"{track.mix_path}: sample rate {track.sample_rate} Hz; expected "
                f"{self._sample_rate} Hz like the rest of the dataset"
            )
        if track.name in self._by_name:
            raise DataError(
                f"{folder}: track name {track.name} also in {self._by_name[track.name].path}"
            )
        self._by_name[track.name] = track
        return track


def _track_dirs(folder: Path) -> list[Path]:
    """A split folder's track folders, sorted (hidden ones are unfinished writes). DataError for
    one whose name is not valid UTF-8 (the track's name is printed, stored and served) and for a
    symlink that leads nowhere (entries.check_track_entry)."""
    dirs = sorted(p for p in folder.iterdir() if is_track_entry(p))
    for d in dirs:
        check_track_entry(d)
    return dirs


def _omit(tracks: list[tuple[str, dict[str, str]]]) -> list[tuple[str, str]]:
    """duplicates="omit", the project's rule (redux's outcome without moving files): tracks
    sharing a source id (lmd_midi_dir or UUID, two names of one Lakh file) are one source MIDI,
    transitively and in any order (A and C share a path, C and B a UUID: A, B and C are one);
    of each such group the first track in split order (train, validation, test), then by name,
    is kept and the others are left out (within a split too), each reason naming the kept track
    and the shared field, or the group member it shares an id with."""
    parent = list(
        range(len(tracks))
    )  # union-find over track positions; a root is its group's first

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    holders: dict[tuple[str, str], list[int]] = {}  # (field, value) -> positions holding it
    for i, (_here, ids) in enumerate(tracks):
        for key in ids.items():
            holders.setdefault(key, []).append(i)
            a, b = root(i), root(holders[key][0])
            parent[max(a, b)] = min(a, b)
    out = []
    for i, (here, ids) in enumerate(tracks):
        first = root(i)
        if first == i:
            continue
        kept, kept_ids = tracks[first]
        direct = [(f, v) for f, v in ids.items() if kept_ids.get(f) == v]
        if direct:
            field, value = direct[0]
            link = ""
        else:
            field, value = next((f, v) for f, v in ids.items() if len(holders[f, v]) > 1)
            other = next(j for j in holders[field, value] if j != i)
            link = f", via {tracks[other][0]}"
        out.append((here, f"{OMIT_REASON}: {kept} ({field} {value}{link})"))
    return out
