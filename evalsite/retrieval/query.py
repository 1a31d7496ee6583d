"""What the retrieval page and API do with a request: find the query vector (a catalogue clip's
stored embedding, or an uploaded file embedded now), search each asked subspace, and describe
the hits with blind audio URLs. Errors are QueryError with the HTTP status to answer."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import numpy as np
from django.db.models import Case, Count, F, FilteredRelation, FloatField, Q, Value, When
from django.urls import reverse

from evalsite.retrieval.embedder import (
    CheckpointMissing,
    ModelUnavailable,
    current_version,
    get_embedder,
)
from evalsite.retrieval.models import Embedding
from evalsite.retrieval.service import scope_state, search_vector, unsearchable
from evalsite.stimuli.audio import MAX_UPLOAD_BYTES
from evalsite.stimuli.models import Catalogue, Clip

MAX_K = 100
LOUDNESS_SPREAD_LU = 0.5  # clips within this of each other were normalised to one target


NO_QUERY = (
    "choose a piece or upload a clip: expected a clip id (clip=...) or an uploaded file (audio)"
)


class QueryError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def visible_catalogues(user):
    if user.is_superuser:
        return Catalogue.objects.all()
    return Catalogue.objects.filter(
        Q(owner=user) | Q(studies__owner=user) | Q(studies__shared_with=user)
    ).distinct()


def parse_k(raw) -> int:
    try:
        k = int(raw or 10)
    except (TypeError, ValueError):
        raise QueryError(f"k={raw!r}: expected an integer 1-{MAX_K}") from None
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k={k}: expected an integer 1-{MAX_K}")
    return k


def parse_id(params: dict, name: str) -> int | None:
    """The integer id in params[name]; None when it is absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise QueryError(f"{name}={raw!r}: expected an integer id") from None


def _version():
    try:
        version = current_version(load=True)
    except (CheckpointMissing, ModelUnavailable) as exc:  # no file, a broken one, no device
        raise QueryError(str(exc), status=503) from None
    return version


def clip_vector(version, clip: Clip) -> np.ndarray:
    emb = Embedding.objects.filter(clip=clip, version=version).first()
    if emb is None:
        raise QueryError(
            f"clip {clip.pk}: not embedded with checkpoint {version.checkpoint_id} yet; "
            "expected an ingested clip (see its catalogue's jobs)",
            status=409,
        )
    vector = emb.as_array()
    # Migration 0002 deleted those stored before ingest refused them: a row written otherwise.
    if not np.isfinite(vector).all():
        raise QueryError(
            f"clip {clip.pk}: its embedding with checkpoint {version.checkpoint_id} is not finite "
            "(NaN or infinity); expected finite values: the checkpoint is broken, deploy a "
            "working one and embed the catalogue again",
            status=409,
        )
    return vector


def check_upload_size(uploaded) -> None:
    """Refuse a file over the per-file upload limit (the Clips page's) before reading it."""
    if uploaded.size > MAX_UPLOAD_BYTES:
        raise QueryError(
            f"{uploaded.name}: {uploaded.size:,} bytes; expected at most {MAX_UPLOAD_BYTES:,} "
            "bytes (the per-file limit)"
        )


def _decoded(uploaded) -> tuple[np.ndarray, int]:
    """The upload decoded and validated like catalogue audio; read in place when Django spooled
    it to a temporary file, else copied to one (libsndfile reads paths)."""
    from evalsite.stimuli.audio import AudioError, read_audio, validate

    try:
        if hasattr(uploaded, "temporary_file_path"):
            data, sr = read_audio(uploaded.temporary_file_path(), uploaded.name)
        else:
            suffix = Path(uploaded.name).suffix.lower()[:8] or ".bin"
            with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
                for chunk in uploaded.chunks():
                    tmp.write(chunk)
                tmp.flush()
                data, sr = read_audio(tmp.name, uploaded.name)
        validate(data, sr, uploaded.name)
    except AudioError as exc:
        raise QueryError(str(exc)) from None
    return data, sr


def catalogue_loudness(catalogue: Catalogue | None) -> float:
    """The playback loudness (LUFS) the catalogue's clips are stored at: the level an import or
    a study's Clips page normalised them to, read from what was measured when each was stored.
    Normalising never leaves a clip above its target, but one whose peak would clip is held
    below it, so the target is the loudest level that at least half of the measured clips sit
    within LOUDNESS_SPREAD_LU below of. Where two levels hold half each (a study's target changed
    half-way through its uploads), that is the louder: clips at the quieter may be the louder
    target's clips their peaks held down, never the other way round. A catalogue where no level
    holds half (stored as they came, or at several targets), or with none measured, gets the
    project default, a study's default loudness target (the retrieval page says so)."""
    from evalsite.stimuli.audio import DUAL_MONO_LU
    from evalsite.studies.models import DEFAULT_SETTINGS

    clips = Clip.objects.filter(status=Clip.Status.READY, loudness_lufs__isnull=False)
    clips = clips.exclude(meta__has_key="kind")
    if catalogue is not None:
        clips = clips.filter(catalogue=catalogue)
    playback = Case(  # as audio.playback_lufs: a mono file plays on both speakers
        When(channels=1, then=F("loudness_lufs") + Value(DUAL_MONO_LU)),
        default=F("loudness_lufs"),
        output_field=FloatField(),
    )
    levels = np.sort(np.fromiter(clips.annotate(level=playback).values_list("level", flat=True),
                                 float))  # fmt: skip  # (N,) ascending
    # clips within LOUDNESS_SPREAD_LU below each level, counted by binary search: O(N log N)
    low = np.searchsorted(levels, levels - LOUDNESS_SPREAD_LU, side="left")  # (N,)
    high = np.searchsorted(levels, levels, side="right")  # (N,)
    held = np.flatnonzero(2 * (high - low) >= len(levels))
    if len(held):
        # the loudest such level: the target itself, which normalising never exceeds (a mean
        # of the levels within the spread is pulled under it by clips their peaks held)
        return float(levels[held[-1]])
    return float(DEFAULT_SETTINGS["loudness_target_lufs"])


def level_query(data: np.ndarray, sr: int, name: str, target_lufs: float) -> np.ndarray:
    """The mono signal (T,) an upload (T, C) is embedded from: mixed to mono and brought to
    target_lufs by the Embedder's own rule and arithmetic (csn_model.loudness.fit_gain, then the
    gain on the float32 mix as csn_model.inference.prepare applies it), so `csn embed
    --target-lufs` gives the same vector for the same file."""
    from csn_model.loudness import LevelError, fit_gain

    try:
        gain = fit_gain(data, sr, target_lufs)
    except LevelError as exc:
        raise QueryError(f"{name}: {exc}") from None
    mono = data.mean(axis=1)  # (T,) float32
    return (mono * gain).astype(np.float32) if gain != 1.0 else mono


def upload_vector(uploaded, target_lufs: float) -> np.ndarray:
    """Embed an uploaded file with the model (validated like catalogue audio), brought to the
    catalogue's loudness first: the model's log-mel is not level-invariant, so the same piece
    at another level lands elsewhere."""
    check_upload_size(uploaded)
    data, sr = _decoded(uploaded)  # (T, C)
    mono = level_query(data, sr, uploaded.name, target_lufs)  # (T,)
    try:
        embedder = get_embedder()
    except (CheckpointMissing, ModelUnavailable) as exc:
        raise QueryError(str(exc), status=503) from None
    from csn_model.inference import EmbedError  # torch is imported only where needed

    try:
        vector = embedder.embed_waveforms([mono], sr)[0]  # (D,)
    except EmbedError as exc:  # e.g. channels that cancel: each loud, their mix silent
        raise QueryError(f"{uploaded.name}: {str(exc).removeprefix('waveform 0: ')}") from None
    if not np.isfinite(vector).all():  # the model's fault, not the upload's (validated above)
        raise QueryError(
            f"{uploaded.name}: checkpoint {embedder.checkpoint_id} gave a non-finite embedding "
            "(NaN or infinity); expected finite values: the checkpoint is broken, deploy a "
            "working one",
            status=503,
        )
    return vector


def audio_url(clip: Clip) -> str:
    return reverse("retrieval:audio", args=[clip.token])


def describe(clip: Clip) -> dict:
    return {"clip": clip.pk, "name": clip.name, "piece": clip.piece, "dataset": clip.dataset,
            "audio_url": audio_url(clip)}  # fmt: skip


def coverage(version, catalogue: Catalogue | None) -> tuple[int, int, tuple[int, int, int]]:
    """(embedded, clips, state): the searchable clips (ready whole mixes) of the catalogue
    (None: all), how many of them have an embedding under the version (the rows of its search
    scope: at most one per clip; search() then takes off those no search can use, not finite),
    and that scope's state for the indexes' sync check (service.scope_state), all in one query.
    Raises 409 when none has."""
    clips = Clip.objects.filter(status=Clip.Status.READY).exclude(meta__has_key="kind")
    if catalogue is not None:
        clips = clips.filter(catalogue=catalogue)
    own = FilteredRelation("embeddings", condition=Q(embeddings__version=version))
    row = clips.annotate(own=own).aggregate(total=Count("id"), **scope_state("own__id"))
    total, embedded = row["total"], row["n"]
    state = (embedded, int(row["s"] or 0), row["top"] or 0)
    if total and not embedded:
        raise _none_embedded(version, catalogue, total)
    return embedded, total, state


def _none_embedded(version, catalogue: Catalogue | None, total: int) -> QueryError:
    where = f"catalogue {catalogue.name}" if catalogue else "all catalogues"
    # A catalogue of no study (import_slakh --catalogue) has no model-work page: the command.
    name = shlex.quote(catalogue.name) if catalogue else "NAME"
    return QueryError(
        f"{where}: 0 of {total} clips embedded with checkpoint {version.checkpoint_id}; "
        "embed the catalogue (Embed clips on the model-work page of its study, or "
        f"`manage.py embed_catalogue {name}`)",
        status=409,
    )


def search(user, params: dict, uploaded=None) -> dict:
    """params: clip (id) or an uploaded file; instrument (a condition or "all"); k; catalogue."""
    version = _version()
    k = parse_k(params.get("k"))
    instrument = params.get("instrument") or "all"
    if instrument != "all" and instrument not in version.conditions:
        raise QueryError(
            f"instrument={instrument!r}: expected 'all' or one of {', '.join(version.conditions)}"
        )
    catalogue_id, clip_id = parse_id(params, "catalogue"), parse_id(params, "clip")
    if uploaded is None and clip_id is None:  # before the catalogue's state: the form's first step
        raise QueryError(NO_QUERY)
    catalogues = visible_catalogues(user)
    catalogue = None
    if catalogue_id is not None:
        catalogue = catalogues.filter(pk=catalogue_id).first()
        if catalogue is None:
            raise QueryError(f"catalogue={catalogue_id}: no such catalogue", status=404)
    elif not user.is_superuser:
        raise QueryError("catalogue: expected the id of one of your catalogues")
    embedded, total, state = coverage(version, catalogue)
    # Reported on every answer: a Python user's Embedder/`csn embed` gives the site's vectors
    # only with target_lufs set to this level (docs/model.md, "Inference, level").
    level = catalogue_loudness(catalogue)
    if uploaded is not None:
        vector = upload_vector(uploaded, level)
        query, exclude_piece, exclude_clip = None, None, None
    elif clip_id is not None:
        clip = Clip.objects.filter(pk=clip_id, catalogue__in=catalogues).first()
        if clip is None:
            raise QueryError(f"clip={clip_id}: no such clip", status=404)
        vector, query = clip_vector(version, clip), describe(clip)
        exclude_piece, exclude_clip = clip.piece_key, clip.pk
    else:  # refused above already
        raise QueryError(NO_QUERY)
    conditions = version.conditions if instrument == "all" else [instrument]
    results, methods = {}, {}
    for condition in conditions:
        hits, methods[condition] = search_vector(
            version, vector, condition, k, catalogue.pk if catalogue else None,
            exclude_piece=exclude_piece, exclude_clip=exclude_clip, state=state,
        )  # fmt: skip
        clips = Clip.objects.in_bulk([h.clip_id for h in hits])
        results[condition] = [
            {**describe(clips[h.clip_id]), "distance": h.distance, "score": 1 / (1 + h.distance)}
            for h in hits
            if h.clip_id in clips
        ]
    # Rows that are not finite count as no embedding (as in model choices and designs): the
    # indexes, synced to state above, know them; read after the searches, this costs no query.
    embedded -= unsearchable(version, conditions[0], catalogue.pk if catalogue else None, state)
    if total and not embedded:
        raise _none_embedded(version, catalogue, total)
    return {
        "checkpoint": version.checkpoint_id,
        "catalogue": catalogue.pk if catalogue else None,
        "catalogue_lufs": level,  # the level an uploaded query is brought to (catalogue_loudness)
        "instrument": instrument,
        "k": k,
        "query": query or {"upload": uploaded.name},
        "method": methods,
        "results": results,
        "embedded": embedded,  # clips searched; fewer than "clips" while embedding is unfinished
        "clips": total,
        "partial": embedded < total,
    }
