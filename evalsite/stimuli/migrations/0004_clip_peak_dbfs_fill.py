"""Fill Clip.peak_dbfs for the clips stored before it was measured on storing: each ready clip's
file is read once, here, so that no page reads it again. In batches of BATCH clips, each
committed on its own (the migration is not atomic): a large catalogue is never loaded at once,
and an interrupted run resumes where it stopped (only clips still without a peak are read). A clip
whose file cannot be read (gone, e.g. a media volume not mounted; not audio) is left unmeasured
without stopping the upgrade, and logged by id, name and file: `manage.py measure_clip_peaks`
measures it once the file is back. How many were left so is also printed in migrate's own output,
which no LOG_LEVEL hides (findings_rupg.md, 1)."""

from __future__ import annotations

import logging
import sys

import numpy as np
import soundfile as sf
from django.core.files.storage import default_storage
from django.db import migrations, transaction

BATCH = 200
log = logging.getLogger(__name__)


def _peak_dbfs(clip, unreadable: list[int]) -> float | None:
    """The file's sample peak in dBFS (as audio.peak_dbfs); None for silence or no file (the
    clip's id then added to `unreadable`)."""
    try:
        # opened here, so a missing file fails with the OS's reason, not libsndfile's
        # "System error."
        with open(default_storage.path(clip.file.name), "rb") as fh:
            data, _sr = sf.read(fh, dtype="float32", always_2d=True)
    except (OSError, ValueError, RuntimeError) as exc:  # gone, undecodable: left unmeasured
        reason = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) else exc
        log.warning(
            "stimuli 0004: clip %s %s: %s cannot be read (%s); its peak is left unmeasured: "
            "run manage.py measure_clip_peaks once the file is back",
            clip.pk, clip.name, clip.file.name, reason,
        )  # fmt: skip
        unreadable.append(clip.pk)
        return None
    peak = float(np.max(np.abs(data), initial=0.0))
    return 20 * float(np.log10(peak)) if peak > 0 else None


def fill(apps, schema_editor):
    Clip = apps.get_model("stimuli", "Clip")
    todo = Clip.objects.filter(status="ready", peak_dbfs__isnull=True).exclude(file="")
    last = 0
    unreadable: list[int] = []
    while batch := list(todo.filter(pk__gt=last).order_by("pk").only("pk", "name", "file")[:BATCH]):
        last = batch[-1].pk
        for clip in batch:
            clip.peak_dbfs = _peak_dbfs(clip, unreadable)
        with transaction.atomic():
            Clip.objects.bulk_update(batch, ["peak_dbfs"])
    if unreadable:
        # printed as well as logged: LOG_LEVEL above WARNING hides the log, not migrate's output
        n = len(unreadable)
        sys.stdout.write(
            f"\n  stimuli 0004: {n} ready clip{'s' if n > 1 else ''} left without a peak, "
            f"{'their files' if n > 1 else 'its file'} unreadable (missing, e.g. MEDIA_ROOT not "
            "mounted, or not audio): once the files are under MEDIA_ROOT, run `manage.py "
            "measure_clip_peaks`, which names any it still cannot read\n"
        )
        sys.stdout.flush()


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("stimuli", "0003_clip_peak_dbfs"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
