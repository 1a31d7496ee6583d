"""Measuring the sample peak (`Clip.peak_dbfs`) of the ready clips that have none, later than on
storing: clips stored before the peak was kept whose file migration stimuli 0004 could not read
(a media volume not mounted during the upgrade, a damaged file), and clips stored by a process
still on that earlier code between `migrate` and its restart. `manage.py measure_clip_peaks`
runs it; running it again reads only the clips still without a peak."""

from __future__ import annotations

from dataclasses import dataclass, field

import soundfile as sf
from django.db import transaction

from evalsite.stimuli.audio import peak_dbfs
from evalsite.stimuli.models import Clip

BATCH = 200  # clips read per committed batch, as in migration 0004


@dataclass
class PeakReport:
    measured: int = 0
    silent: int = 0  # read, but no sample above zero: no peak to store
    unreadable: list[str] = field(default_factory=list)  # "clip PK NAME: FILE (why)"


def measure_missing() -> PeakReport:
    """Read the file of each ready clip without a peak and store its peak, BATCH clips per
    transaction (an interrupted run keeps what it measured)."""
    report = PeakReport()
    todo = Clip.objects.filter(status=Clip.Status.READY, peak_dbfs__isnull=True).exclude(file="")
    last = 0
    while batch := list(todo.filter(pk__gt=last).order_by("pk").only("pk", "name", "file")[:BATCH]):
        last = batch[-1].pk
        measured = [clip for clip in batch if _measure(clip, report)]
        with transaction.atomic():
            Clip.objects.bulk_update(measured, ["peak_dbfs"])
    return report


def _measure(clip: Clip, report: PeakReport) -> bool:
    """Set clip.peak_dbfs from its file; False (counted in `report`) where there is none."""
    try:
        # opened here, so a missing file fails with the OS's reason (as audio._read_upload), not
        # libsndfile's "System error."
        with open(clip.file.path, "rb") as fh:
            data, _sr = sf.read(fh, dtype="float32", always_2d=True)
    except (OSError, ValueError, RuntimeError) as exc:  # gone, undecodable
        reason = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) else exc
        report.unreadable.append(f"clip {clip.pk} {clip.name}: {clip.file.name} ({reason})")
        return False
    clip.peak_dbfs = peak_dbfs(data)
    if clip.peak_dbfs is None:
        report.silent += 1
        return False
    report.measured += 1
    return True
