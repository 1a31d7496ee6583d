"""Fill Clip.peak_dbfs for the clips stored before it was measured on storing: each ready clip's
file is read once, here, so that no page reads it again. In batches of BATCH clips, each
committed on its own (the migration is not atomic): a large catalogue is never loaded at once,
and an interrupted run resumes where it stopped (only clips still without a peak are read). A clip
whose file cannot be read (gone, e.g. a media volume not mounted; not audio) is left unmeasured
without stopping the upgrade, and logged by id, name and file: `manage.py measure_clip_peaks`
measures it once the file is back."""

from __future__ import annotations

import logging

import numpy as np
import soundfile as sf
from django.core.files.storage import default_storage
from django.db import migrations, transaction

BATCH = 200
log = logging.getLogger(__name__)


def _peak_dbfs(clip) -> float | None:
    """The file's sample peak in dBFS (as audio.peak_dbfs); None for silence or no file."""
    try:
        data, _sr = sf.read(default_storage.path(clip.file.name), dtype="float32", always_2d=True)
    except (OSError, ValueError, RuntimeError) as exc:  # gone, undecodable: left unmeasured
        log.warning(
            "stimuli 0004: clip %s %s: %s cannot be read (%s); its peak is left unmeasured: "
            "run manage.py measure_clip_peaks once the file is back",
            clip.pk, clip.name, clip.file.name, exc,
        )  # fmt: skip
        return None
    peak = float(np.max(np.abs(data), initial=0.0))
    return 20 * float(np.log10(peak)) if peak > 0 else None


def fill(apps, schema_editor):
    Clip = apps.get_model("stimuli", "Clip")
    todo = Clip.objects.filter(status="ready", peak_dbfs__isnull=True).exclude(file="")
    last = 0
    while batch := list(todo.filter(pk__gt=last).order_by("pk").only("pk", "name", "file")[:BATCH]):
        last = batch[-1].pk
        for clip in batch:
            clip.peak_dbfs = _peak_dbfs(clip)
        with transaction.atomic():
            Clip.objects.bulk_update(batch, ["peak_dbfs"])


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("stimuli", "0003_clip_peak_dbfs"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
