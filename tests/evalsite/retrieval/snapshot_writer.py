"""A worker's snapshot refresh in a process of its own, stopped at one point until it reads a
line on stdin (or is killed there), for the leftover-file tests:

    python -m tests.evalsite.retrieval.snapshot_writer VERSION_ID CATALOGUE_ID POINT

POINT is `renamed` (the new generation's file is in place, the row not yet committed) or
`writing` (the temporary file is written, not yet renamed). At the point it prints
`paused NAME` (the file's name); at the end `done`. The environment names the database and
MEDIA_ROOT (the test's)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")

import django  # noqa: E402  (the settings module must be named first)

django.setup()

import numpy as np  # noqa: E402

from evalsite.retrieval import snapshot  # noqa: E402
from evalsite.retrieval.models import ModelVersion  # noqa: E402
from evalsite.stimuli.models import Clip  # noqa: E402


def pause(name: str) -> None:
    print(f"paused {name}", flush=True)
    sys.stdin.readline()


def stop_after_rename() -> None:
    replace = Path.replace

    def replaced(self: Path, target) -> Path:
        moved = replace(self, target)
        pause(Path(target).name)
        return moved

    Path.replace = replaced  # type: ignore[method-assign]


def stop_after_writing() -> None:
    savez = np.savez

    def written(file, **arrays) -> None:
        savez(file, **arrays)
        file.flush()
        pause(Path(file.name).name)

    np.savez = written


def main(version_id: int, catalogue_id: int, point: str) -> None:
    {"renamed": stop_after_rename, "writing": stop_after_writing}[point]()
    clips = list(Clip.objects.filter(catalogue_id=catalogue_id).values_list("pk", flat=True))
    snapshot.refresh_catalogues(ModelVersion.objects.get(pk=version_id), clips)
    print("done", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
