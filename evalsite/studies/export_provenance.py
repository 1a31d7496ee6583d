"""What a study played and how it was configured, for the export: the clip manifest (each clip's
provenance, and the hash and loudness of the file participants were served), the consent
versions (each exact consent page shown, and how many agreed to it) and the config snapshot
(settings, design, trial counts, the history of changes). Separate from the answers
tables (`export_answers`) because these read the catalogue's audio files and the study's
configuration, not what participants did.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

import django
import pandas as pd
import soundfile as sf
from django.db.models import Count

from evalsite.stimuli.audio import AudioError, loudness_lufs, normalised_path, playback_lufs
from evalsite.stimuli.models import Clip
from evalsite.studies import history
from evalsite.studies.export_answers import iso_utc
from evalsite.studies.models import ConsentVersion, Study, Trial

MANIFEST_COLUMNS = (
    "token", "clip_id", "name", "piece", "dataset", "split", "start_s", "parts", "sha256",
    "loudness_lufs", "duration_s", "sample_rate", "channels", "served_sha256",
    "served_loudness_lufs",
)  # fmt: skip


def served(clip: Clip, target_lufs: float) -> tuple[str, float | None]:
    """SHA-256 and playback loudness (`playback_lufs`: a mono file as dual-mono) of the file
    participants of a study with this loudness target are served for `clip` (`normalised_path`:
    the stored file when within 0.1 LU of the target, else a copy normalised to it); ("", None)
    when the clip has no readable file.
    """
    try:
        path = normalised_path(clip, target_lufs)
        payload = path.read_bytes()
        data, sr = sf.read(io.BytesIO(payload), dtype="float32", always_2d=True)  # (T, C)
    # no file (ValueError), gone, or undecodable (AudioError; soundfile's RuntimeError)
    except (OSError, ValueError, RuntimeError, AudioError):
        return "", None
    sha = hashlib.sha256(payload).hexdigest()
    if path != Path(clip.file.path):
        return sha, playback_lufs(round(loudness_lufs(data, sr), 3), data.shape[1])
    if clip.loudness_lufs is None:
        return sha, None
    return sha, playback_lufs(clip.loudness_lufs, data.shape[1])


def manifest_dataframe(study: Study) -> pd.DataFrame:
    """Every clip a trial of `study` uses, once: blind token, provenance, the stored file's hash
    and loudness, and those of the file participants were served (at the study's target)."""
    target = float(study.setting("loudness_target_lufs"))
    ids: set[int | None] = set()  # None: a catch trial's missing candidate
    for fields in Trial.objects.filter(study=study).values_list(
        "reference_id", "candidate_a_id", "candidate_b_id"
    ):
        ids.update(fields)
    rows = []
    for clip in Clip.objects.filter(pk__in=ids).order_by("id"):
        rows.append(
            {
                "token": clip.token,
                "clip_id": clip.pk,
                "name": clip.name,
                "piece": clip.piece,
                "dataset": clip.dataset,
                "split": clip.split,
                "start_s": clip.start_s,
                "parts": json.dumps(clip.parts or {}, sort_keys=True),
                "sha256": clip.sha256,
                "loudness_lufs": clip.loudness_lufs,
                "duration_s": clip.duration_s,
                "sample_rate": clip.sample_rate,
                "channels": clip.channels,
            }
        )
        rows[-1]["served_sha256"], rows[-1]["served_loudness_lufs"] = served(clip, target)
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


CONSENT_VERSION_COLUMNS = ("version", "language", "first_shown_at", "participants", "text")


def consent_versions_dataframe(study: Study) -> pd.DataFrame:
    """Every consent page `study` has shown (`ConsentVersion`), in the order first shown: its
    name (participants.csv `consent_version`), language, text and how many agreed to it."""
    versions = ConsentVersion.objects.filter(study=study).annotate(n=Count("participants"))
    rows = [
        (v.sha256, v.language, iso_utc(v.first_shown_at), v.n, v.text)
        for v in versions.order_by("first_shown_at", "id")
    ]
    return pd.DataFrame(rows, columns=list(CONSENT_VERSION_COLUMNS))


def config_snapshot(study: Study) -> dict:
    """The study as configured at export time (settings with defaults filled in, the design), and
    the history of changes made on the experimenter pages before it."""
    trials = Trial.objects.filter(study=study)
    return {
        "study": study.pk,
        "name": study.name,
        "status": study.status,
        "owner": study.owner.get_username(),
        "shared_with": sorted(u.get_username() for u in study.shared_with.all()),
        "instruments": list(study.instruments or []),
        "description": study.description,
        "consent_text": study.consent_text,
        "texts": study.texts,  # per language; where one has none, its participants read the above
        "settings": study.full_settings(),
        "design": study.design,
        "trials": {
            "total": trials.count(),
            "main": trials.filter(is_practice=False, is_catch=False).count(),
            "practice": trials.filter(is_practice=True).count(),
            "catch": trials.filter(is_catch=True).count(),
        },
        "created_at": iso_utc(study.created_at),
        "updated_at": iso_utc(study.updated_at),
        "exported_at": iso_utc(datetime.now(UTC)),
        # Every change since the study was created (settings edited while it ran, status, trials
        # added): what a participant got depends on when they took part.
        "history": [e | {"at": iso_utc(e["at"])} for e in history.events(study)],
        "software": software_versions(),
    }


def software_versions() -> dict:
    """What served the study: the installed csn-eval distribution, the model code's own version
    (csn_model.__version__, which a checkpoint records too) and the web stack under them."""
    import csn_model

    return {
        "csn-eval": _distribution_version("csn-eval"),
        "csn_model": csn_model.__version__,
        "django": django.get_version(),
        "python": platform.python_version(),
    }


def _distribution_version(name: str) -> str:
    """The installed distribution's version; a site run from a checkout that was never installed
    (`PYTHONPATH=.`) has none, and its export says so rather than failing."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
