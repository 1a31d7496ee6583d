"""manage.py measure_clip_peaks: store the sample peak of every ready clip that has none (its
file unreadable when migration stimuli 0004 ran, or stored by a process still on the code
before peaks were kept), so that the quiet-clip warning counts it; names the clips still
unreadable and then exits with status 1. Running it again reads only the clips still without a
peak; with none, no file at all (one query), so an upgrade runs it every time."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evalsite.stimuli.clip_peaks import measure_missing


class Command(BaseCommand):
    help = (
        "Measure the sample peak of every ready clip without one (Clip.peak_dbfs) from its file; "
        "names the clips whose file still cannot be read."
    )

    def handle(self, *args, **options):
        report = measure_missing()
        self.stdout.write(
            f"Measured the peak of {_clips(report.measured)}; {report.silent} silent (no peak)."
        )
        if report.unreadable:
            lines = "\n".join(report.unreadable)
            n = len(report.unreadable)
            raise CommandError(
                f"{_clips(n)} still {'has' if n == 1 else 'have'} no peak: their files cannot be"
                " read "
                f"(restore them under MEDIA_ROOT and run it again):\n{lines}"
            )


def _clips(n: int) -> str:
    return f"{n} clip" if n == 1 else f"{n} clips"
