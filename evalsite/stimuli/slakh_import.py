"""Import a Slakh-layout dataset into the catalogue as clips.

For every track of a split: one mix excerpt of `seconds`, placed where the most conditions are
audible. With `attention=True`, also stem-combination clips for instrument-attention catch trials:
for a pair of tracks (X, Y) and a condition c present in both,
  "same":      c's stem from X, every other stem from Y  (same c as X's mix, the rest differs)
  "different": c's stem from Y, every other stem from X  (only c differs from X's mix)
Judged on c, "same" is the more similar candidate to the reference (X's mix excerpt).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction

from csn_model import CONDITIONS
from csn_model.data.slakh import OMIT_REASON, DataError, SlakhDataset
from csn_model.data.slakh_track import Track
from evalsite.stimuli.audio import LOUDNESS_TARGET_LUFS, AudioError, clip_from_array
from evalsite.stimuli.models import Catalogue, Clip

# A mix excerpt's length (s), as ImportForm and `import_slakh --seconds` accept it.
EXCERPT_SECONDS: tuple[float, float] = (0.5, 60)


def argument_errors(seconds: float, target_lufs: float | None) -> dict[str, str]:
    """What is wrong with an import's excerpt length and loudness target (None: no target), by
    argument name, against EXCERPT_SECONDS and LOUDNESS_TARGET_LUFS; NaN and infinity never fit.
    The web forms take their limits from the same constants."""
    errors = {}
    for name, value, (low, high), what in (
        ("seconds", seconds, EXCERPT_SECONDS, "an excerpt length from {:g} to {:g} s"),
        (
            "target_lufs",
            target_lufs,
            LOUDNESS_TARGET_LUFS,
            "a loudness target from {:g} to {:g} LUFS",
        ),
    ):
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            errors[name] = f"{value:g}: expected {what.format(low, high)}"
    return errors


@dataclass
class ImportReport:
    mixes: list[Clip] = field(default_factory=list)
    attention: list[tuple[Clip, Clip, Clip]] = field(default_factory=list)  # ref, same, different
    skipped: list[str] = field(default_factory=list)  # "track: reason"
    existing: list[str] = field(default_factory=list)  # clips an earlier import already made
    omitted: str = ""  # SlakhDataset.omit_summary(): duplicate renderings left out, if any
    omitted_tracks: list[str] = field(default_factory=list)  # "split/track: reason", every split
    # The imported split's documented stem skips (unrendered, unlisted, silent in the tracks
    # analysed): "track stem: reason", and SlakhDataset.skip_summary's counts by reason.
    skipped_stems: list[str] = field(default_factory=list)
    stem_summary: str = "none"
    # Why the new clips' embeddings could not be queued (the broker's error), and what to do;
    # "" when they were (or when the import ran inside a transaction, queued at its commit).
    not_queued: str = ""

    def omitted_in(self, split: str) -> list[str]:
        """omitted_tracks of `split`."""
        return [t for t in self.omitted_tracks if t.startswith(f"{split}/")]

    def omitted_line(self, split: str) -> str:
        """One line on the duplicates `split` left out, and how many the other splits did."""
        here = len(self.omitted_in(split))
        elsewhere = len(self.omitted_tracks) - here
        more = f" ({elsewhere} more in the other splits)" if elsewhere else ""
        tracks = "track" if here == 1 else "tracks"
        return f"{here} {tracks} of the {split} split left out: {OMIT_REASON}{more}"


def best_start(track: Track, num_frames: int, hop: int) -> int:
    """Start frame where the most conditions are active (earliest of the ties); 0 if none."""
    counts: dict[int, int] = {}
    for cond in track.conditions:
        for start in track.active_segments(cond, num_frames, hop):
            counts[int(start)] = counts.get(int(start), 0) + 1
    if not counts:
        return 0
    most = max(counts.values())
    return min(s for s, n in counts.items() if n == most)


def _imported_mix(ds, track, num_frames, catalogue) -> Clip | None:
    """The mix excerpt an earlier import of this track made in the catalogue, if any."""
    return (
        catalogue.clips.filter(
            dataset=str(ds.root),
            split=track.split,
            piece=track.name,
            duration_s=num_frames / ds.sample_rate,
            status=Clip.Status.READY,
        )
        .exclude(meta__has_key="kind")
        .first()
    )


def _imported_attention(catalogue, x, y, cond, ref) -> bool:
    group = f"{x.name}+{y.name}:{cond}"
    return catalogue.clips.filter(
        meta__kind="attention", meta__group=group, meta__reference=ref.pk
    ).exists()


def _mix_clip(ds, track, start, num_frames, catalogue, target_lufs) -> Clip:
    sr = ds.sample_rate
    audio = track.read_mix(start, num_frames)  # (T,)
    return clip_from_array(
        audio,
        sr,
        catalogue,
        target_lufs,
        name=f"{track.name} mix @{start / sr:.1f}s",
        piece=track.name,
        dataset=str(ds.root),
        split=track.split,
        start_s=start / sr,
    )


def _stem_clip(ds, sources, condition, role, group, reference, catalogue, target_lufs, num_frames):
    """sources: condition -> (track, start). Sum of those conditions' stems."""
    audio = np.zeros(num_frames, dtype=np.float32)  # (T,)
    for cond, (track, start) in sources.items():
        audio += track.read_condition(cond, start, num_frames)
    ref_track, ref_start = (
        sources[condition]
        if role == "same"
        else next(v for c, v in sources.items() if c != condition)
    )
    return clip_from_array(
        audio,
        ds.sample_rate,
        catalogue,
        target_lufs,
        name=f"attention {condition} {role} ({group})",
        piece=ref_track.name,
        dataset=str(ds.root),
        split=ref_track.split,
        start_s=ref_start / ds.sample_rate,
        parts={c: (sources[c][0].name if c in sources else None) for c in CONDITIONS},
        meta={
            "kind": "attention",
            "group": group,
            "condition": condition,
            "role": role,
            "reference": reference.pk,
        },
    )


def _attention_set(ds, x, sx, y, sy, cond, ref, catalogue, target_lufs, num_frames):
    shared = [c for c in CONDITIONS if c in x.conditions and c in y.conditions]
    group = f"{x.name}+{y.name}:{cond}"
    same = {cond: (x, sx)} | {c: (y, sy) for c in shared if c != cond}
    diff = {cond: (y, sy)} | {c: (x, sx) for c in shared if c != cond}
    return (
        ref,
        _stem_clip(ds, same, cond, "same", group, ref, catalogue, target_lufs, num_frames),
        _stem_clip(ds, diff, cond, "different", group, ref, catalogue, target_lufs, num_frames),
    )


def import_slakh(
    root,
    split: str,
    catalogue: Catalogue | Callable[[], Catalogue],
    seconds: float = 5.0,
    attention: bool = False,
    conditions: tuple[str, ...] = CONDITIONS,
    target_lufs: float | None = -23.0,
    duplicates: str = "refuse",
    embed: bool = True,
) -> ImportReport:
    """Import one split of a Slakh-layout dataset.

    catalogue: the catalogue, or a function that gets or makes it (a study's, made on first use),
    called only once the dataset has been read: a DataError about the dataset as a whole (its
    layout, a track's metadata or stem headers, see open_split) leaves no catalogue behind. A
    DataError about an earlier import in the catalogue is raised before any clip is made. Audio
    of one track or one attention pair that fails later (refused by `clip_from_array`, or a stem
    that cannot be decoded) is skipped with its reason in `skipped`, and the other tracks are
    still imported.

    Attention sets are made for each pair of neighbouring tracks (sorted by name, cyclic) and each
    condition in `conditions` that both tracks have. Importing a split again into the same
    catalogue reuses the clips the earlier import made (listed in `existing`), so a reload or a
    second run never duplicates a clip.

    duplicates: SlakhDataset's mode for tracks rendered from one source MIDI ("omit" for original
    Slakh2100; the count left out is in `omitted`, each track and why in `omitted_tracks`).
    The stems the reader skipped in this split are in `skipped_stems` and `stem_summary`.
    ValueError for `seconds` or `target_lufs` outside argument_errors' limits.

    embed: queue the new clips' embeddings after the import (with CSN_AUTO_EMBED on, as every
    clip that becomes ready is); False queues none, for a caller that queues an ingest job for
    the catalogue next (`queue_ingest`): each clip is then embedded once, by the job, whose
    progress counts the work as it is done.
    """
    from evalsite.retrieval.signals import batched, suppressed  # noqa: PLC0415  (it imports stimuli)

    if errors := argument_errors(seconds, target_lufs):
        raise ValueError("; ".join(f"{name} {why}" for name, why in errors.items()))
    ds, tracks = open_split(root, split, duplicates)
    if not isinstance(catalogue, Catalogue):
        catalogue = catalogue()
    with batched() as queuing, suppressed() if not embed else nullcontext():
        # each clip commits alone: batched() queues their embeddings together
        report = _import_split(
            ds, split, tracks, catalogue, seconds, attention, conditions, target_lufs
        )
    report.not_queued = queuing.message()  # outside a transaction the block's end queued them
    return report


def open_split(root, split: str, duplicates: str = "refuse") -> tuple[SlakhDataset, list[Track]]:
    """The dataset and `split`'s tracks, read as far as an import needs before it makes anything:
    DataError for the dataset as a whole (no such root or split, tracks of one source MIDI in
    two splits, a track's metadata or stem header unreadable, mixed sample rates)."""
    ds = SlakhDataset(root, duplicates=duplicates)
    for other in ds.splits:  # as ds.sample_rate reads them: one rate across the dataset
        ds.tracks(other)
    return ds, ds.tracks(split)


def _import_split(
    ds, split, tracks, catalogue, seconds, attention, conditions, target_lufs
) -> ImportReport:
    num_frames = int(round(seconds * ds.sample_rate))
    left_out = [f"{track}: {why}" for track, why in ds.omitted]
    report = ImportReport(omitted=ds.omit_summary(), omitted_tracks=left_out)
    refs, starts = _import_mixes(ds, tracks, seconds, num_frames, catalogue, target_lufs, report)
    if attention:
        usable = [t for t in tracks if t.name in refs]
        partners = usable[1:] + usable[:1]  # each track paired with the next one (a cycle)
        for x, y in zip(usable, partners):
            if x is y:
                continue
            pair = ((x, starts[x.name]), (y, starts[y.name]))
            _import_pair(
                ds, pair, refs[x.name], conditions, catalogue, target_lufs, num_frames, report
            )
    report.skipped_stems = [f"{t} {stem}: {why}" for t, stem, why in ds.skipped_in(split)]
    report.stem_summary = ds.skip_summary(split)
    return report


def _import_mixes(
    ds, tracks, seconds, num_frames, catalogue, target_lufs, report: ImportReport
) -> tuple[dict[str, Clip], dict[str, int]]:
    """Each track's mix excerpt, made now or by an earlier import, listed in `report`; returns
    (mix clips, their start frames), each by track name. A track whose audio fails (AudioError,
    or a DataError such as a stem that cannot be decoded) is skipped with its reason."""
    sr = ds.sample_rate
    earlier = _earlier_mixes(ds, tracks, num_frames, catalogue)  # before any clip is made
    starts: dict[str, int] = {}
    refs: dict[str, Clip] = {}
    for track in tracks:
        if track.num_frames < num_frames:
            report.skipped.append(f"{track.name}: shorter than {seconds:g} s")
            continue
        made = False
        try:
            if track.name in earlier:  # a repeated import (a reload, a second run) adds nothing
                refs[track.name], starts[track.name] = earlier[track.name]
            else:
                found = _mix_once(ds, track, num_frames, catalogue, target_lufs, sr)
                refs[track.name], starts[track.name], made = found
        except (AudioError, DataError) as exc:
            report.skipped.append(f"{track.name}: {exc}")
            continue
        if made:
            report.mixes.append(refs[track.name])
        else:
            report.existing.append(f"{track.name}: mix clip {refs[track.name].pk}")
    return refs, starts


def _lock(catalogue: Catalogue) -> None:
    """Take the catalogue's row lock until the transaction ends: uploads into it take it too
    (audio.clip_from_upload), so what is already there is checked and added one at a time."""
    Catalogue.objects.select_for_update().filter(pk=catalogue.pk).first()


def _mix_once(ds, track, num_frames, catalogue, target_lufs, sr) -> tuple[Clip, int, bool]:
    """(track's mix clip, its start frame, whether this import made it), under the catalogue's
    lock: an import of the split sent at once (a double click, a second tab) waits here, then
    finds the clip the other made instead of making it again."""
    with transaction.atomic():
        _lock(catalogue)
        if (found := _earlier_mixes(ds, [track], num_frames, catalogue)).get(track.name):
            return (*found[track.name], False)
        start = best_start(track, num_frames, hop=max(sr // 2, 1))
        return _mix_clip(ds, track, start, num_frames, catalogue, target_lufs), start, True


def _earlier_mixes(ds, tracks, num_frames, catalogue) -> dict[str, tuple[Clip, int]]:
    """(mix clip, start frame) of each track an earlier import made a mix of, by track name;
    DataError for such a clip without a start, raised before this import makes anything."""
    found = {}
    for track in tracks:
        clip = _imported_mix(ds, track, num_frames, catalogue)
        if clip is None:
            continue
        if clip.start_s is None:  # _mix_clip always sets it
            raise DataError(f"clip {clip.pk}: imported mix of {track.name} has no start_s")
        found[track.name] = (clip, int(round(clip.start_s * ds.sample_rate)))
    return found


def _import_pair(ds, pair, ref, conditions, catalogue, target_lufs, num_frames, report) -> None:
    """The attention sets of one pair ((x, its start), (y, its start)), x's mix clip `ref`, for
    each of `conditions` both tracks have, listed in `report`."""
    (x, sx), (y, sy) = pair
    try:  # analyses both tracks: a stem of y (or of x, from an earlier import) may not decode
        shared = [c for c in x.conditions if c in y.conditions]
    except DataError as exc:
        report.skipped.append(f"{x.name}+{y.name}: {exc}")
        return
    if len(shared) < 2:
        report.skipped.append(f"{x.name}+{y.name}: fewer than 2 shared conditions")
        return
    for cond in (c for c in shared if c in conditions):
        try:  # a set is made whole or not at all, under the lock as a mix is (_mix_once)
            with transaction.atomic():
                _lock(catalogue)
                if _imported_attention(catalogue, x, y, cond, ref):
                    report.existing.append(f"{x.name}+{y.name} ({cond}): attention set")
                    continue
                made = _attention_set(ds, x, sx, y, sy, cond, ref, catalogue, target_lufs,
                                      num_frames)  # fmt: skip
        except (AudioError, DataError) as exc:
            report.skipped.append(f"{x.name}+{y.name} ({cond}): {exc}")
            continue
        report.attention.append(made)
