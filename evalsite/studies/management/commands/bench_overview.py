"""manage.py bench_overview: how long the study overview and the Clips page take to render for
a catalogue of N clips stored under the study's loudness target (the case where a clip's peak
decides whether it is named as played under the target, served_level). Builds the catalogue
and study inside a transaction it rolls back, and a clip file in a temporary folder: it leaves
nothing behind. docs/experimenter.md ("Stimuli") gives the figures it measured."""

from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test import Client, override_settings
from django.urls import reverse

from evalsite.stimuli.audio import clip_from_array
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Study

SR = 44100


def _music(seconds: float = 10.0) -> np.ndarray:
    """Stereo noise with a loud hit every half second: peaks leave room for +7 LU of gain."""
    rng = np.random.default_rng(1)
    x = 0.05 * rng.standard_normal((int(seconds * SR), 2)).astype(np.float32)  # (T, 2)
    x[:: SR // 2] *= 2.0
    return x


def _catalogue(owner, n: int, stored_lufs: float) -> Catalogue:
    """n ready clips, all rows naming one stored file (its reads hit the page cache: the
    cheapest case for a page that reads them)."""
    catalogue = Catalogue.objects.create(owner=owner, name="bench_overview")
    proto = clip_from_array(_music(), SR, catalogue, stored_lufs, name="proto.wav", piece="P")
    skip = {"id", "token", "sha256", "name", "piece"}
    fields = {
        f.attname: getattr(proto, f.attname)
        for f in Clip._meta.concrete_fields
        if f.attname not in skip
    }
    Clip.objects.bulk_create(
        Clip(**fields, name=f"c{i}.wav", piece=f"P{i}", sha256=f"{i:064x}") for i in range(n - 1)
    )
    return catalogue


class Command(BaseCommand):
    help = "Time the overview and Clips page GETs of a study whose catalogue holds N clips."

    def add_arguments(self, parser):
        parser.add_argument("--clips", type=int, nargs="+", default=[500, 3000])
        parser.add_argument("--stored-lufs", type=float, default=-30.0)
        parser.add_argument("--target-lufs", type=float, default=-23.0)
        parser.add_argument("--repeats", type=int, default=3)

    def handle(self, *args, clips, stored_lufs, target_lufs, repeats, **options):
        with (
            tempfile.TemporaryDirectory() as media,
            override_settings(MEDIA_ROOT=media, ALLOWED_HOSTS=["testserver"]),
        ):
            for n in clips:
                self._one(n, stored_lufs, target_lufs, repeats)

    def _one(self, n: int, stored_lufs: float, target_lufs: float, repeats: int) -> None:
        with transaction.atomic():
            owner = get_user_model().objects.create_user("bench_overview_owner")
            study = Study.objects.create(
                owner=owner, name="bench", instruments=["drums"],
                catalogue=_catalogue(owner, n, stored_lufs),
                settings={"loudness_target_lufs": target_lufs},
            )  # fmt: skip
            client = Client()
            client.force_login(owner)
            pages = {"overview": "studies:study_detail", "Clips page": "studies:clips"}
            figures = []
            for label, name in pages.items():
                url = reverse(name, args=[study.pk])
                client.get(url)  # warm: templates, the file in the page cache
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    assert client.get(url).status_code == 200
                    times.append(time.perf_counter() - t0)
                figures.append(f"{label} {statistics.median(times):.3f} s")
            self.stdout.write(
                f"{n} clips stored at {stored_lufs:g} LUFS, target {target_lufs:g}: "
                f"median of {repeats} GETs: " + ", ".join(figures)
            )
            transaction.set_rollback(True)
