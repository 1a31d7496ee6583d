"""A model that cannot serve: a checkpoint whose embeddings are not finite (a diverged run), a
file that is not a loadable checkpoint, a CSN_DEVICE the process cannot use. Nothing non-finite
is stored or returned, the jobs fail saying why, and the page and the API answer 503 naming the
file or the setting (docs/workers.md)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from evalsite.jobs.models import Job
from evalsite.retrieval import ingest
from evalsite.retrieval.embedder import checkpoint_id, get_embedder, version_for
from evalsite.retrieval.models import Embedding, ModelVersion, to_bytes
from evalsite.stimuli.models import Clip
from evalsite.stimuli.tasks import queue_ingest
from evalsite.studies.models import Study, Trial
from evalsite.studies.tasks import queue_design, queue_model_choices
from tests.evalsite.retrieval.helpers import SR, piece_audio

pytestmark = pytest.mark.django_db
API = "/retrieval/api/search"


def _ids(catalogue) -> list[int]:
    return list(catalogue.clips.order_by("id").values_list("id", flat=True))


def _strict_json(content: bytes):
    """JSON as RFC 8259 has it: NaN and Infinity are not JSON (JavaScript's JSON.parse)."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(content, parse_constant=refuse)


def _upload(name: str = "mine.wav"):
    buf = io.BytesIO()
    sf.write(buf, piece_audio(2, 5), SR, format="WAV")
    buf.seek(0)
    buf.name = name
    return buf


class _NanFor:
    """The real model, but the vector of one file comes back NaN (the model failing on it)."""

    def __init__(self, embedder, bad_path: str):
        self._embedder, self._bad = embedder, bad_path

    def __getattr__(self, name):
        return getattr(self._embedder, name)

    def embed_files(self, paths):
        vectors = self._embedder.embed_files(paths).copy()  # (N, D)
        for i, path in enumerate(paths):
            if str(path) == self._bad:
                vectors[i, 3] = np.nan
        return vectors


# --- non-finite embeddings ---------------------------------------------------------------------


def test_it_stores_nothing_and_names_the_checkpoint_and_clips_when_embeddings_are_nan(
    catalogue, settings, nan_checkpoint
):
    settings.CSN_CHECKPOINT = str(nan_checkpoint)
    with pytest.raises(ingest.NonFiniteEmbeddings) as caught:
        ingest.embed_clips(_ids(catalogue))
    assert Embedding.objects.count() == 0
    message = str(caught.value)
    assert checkpoint_id(nan_checkpoint) in message and "diverged.pt" in message
    assert "P00 take 0" in message and "NaN" in message
    clip = catalogue.clips.order_by("id").first()
    assert "P00 take 0" in caught.value.clip_errors[clip.pk]


def test_it_stores_the_finite_vectors_and_refuses_only_the_clip_whose_vector_is_not(catalogue):
    clips = list(catalogue.clips.order_by("id"))
    bad = clips[2]
    embedder = _NanFor(get_embedder(), bad.file.path)
    with pytest.raises(ingest.NonFiniteEmbeddings) as caught:
        ingest.embed_clips([c.pk for c in clips], embedder=embedder)
    assert set(Embedding.objects.values_list("clip_id", flat=True)) == {
        c.pk for c in clips if c != bad
    }
    assert list(caught.value.clip_errors) == [bad.pk]
    assert all(np.isfinite(e.as_array()).all() for e in Embedding.objects.all())


def test_it_fails_the_ingest_job_of_a_nan_checkpoint_and_keeps_its_clips_ready_with_the_reason(
    catalogue, eager, settings, nan_checkpoint, django_capture_on_commit_callbacks
):
    settings.CSN_CHECKPOINT = str(nan_checkpoint)
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and Embedding.objects.count() == 0
    assert checkpoint_id(nan_checkpoint) in job.message and "non-finite" in job.message
    assert str(nan_checkpoint.parent) not in job.message  # no server path
    clips = list(catalogue.clips.order_by("id"))
    assert {c.status for c in clips} == {Clip.Status.READY}  # the audio is not at fault
    assert all(c.error.startswith(c.name) and "non-finite" in c.error for c in clips)
    assert job.failed == 6 and [e["clip"] for e in job.errors] == [c.pk for c in clips]


def test_it_stores_no_model_choice_from_a_nan_checkpoint(
    catalogue, eager, ada, settings, nan_checkpoint, django_capture_on_commit_callbacks
):
    clips = list(catalogue.clips.order_by("id"))
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    Trial.objects.create(study=study, instrument="drums", reference=clips[0],
                         candidate_a=clips[1], candidate_b=clips[2])  # fmt: skip
    settings.CSN_CHECKPOINT = str(nan_checkpoint)
    eager.conf.task_eager_propagates = False  # a worker's view: on_failure ends the job
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_model_choices(study)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "non-finite" in job.message
    assert list(study.trials.values_list("model_choice", "model_margin")) == [(None, None)]


def test_it_designs_nothing_from_a_nan_checkpoint(
    catalogue, eager, ada, settings, nan_checkpoint, django_capture_on_commit_callbacks
):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    settings.CSN_CHECKPOINT = str(nan_checkpoint)
    eager.conf.task_eager_propagates = False
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_design(study, catalogue, "nearest_random", per_instrument=2, user=ada)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "non-finite" in job.message
    assert not study.trials.exists()


def _replace(row: Embedding, vector: np.ndarray) -> None:
    """Store vector for the row's clip as a new row, as any writer but an SQL UPDATE does: a
    row's vector is never changed in place (docs/workers.md, "Index snapshots"), so a process
    whose index or snapshot already holds the old row sees the change by its id."""
    row.delete()
    Embedding.objects.create(
        clip_id=row.clip_id, version_id=row.version_id, vector=to_bytes(vector)
    )


def _spoil(clip) -> None:
    """Make a stored embedding NaN, as one stored before embeddings were checked would be."""
    row = Embedding.objects.get(clip=clip)
    _replace(row, np.full_like(row.as_array(), np.nan))


def test_it_leaves_a_stored_nan_vector_out_of_the_search_and_answers_valid_json(
    client, ada, catalogue
):
    clips = list(catalogue.clips.order_by("id"))
    ingest.embed_clips([c.pk for c in clips])
    _spoil(clips[1])
    client.force_login(ada)
    r = client.get(API, {"clip": clips[0].pk, "catalogue": catalogue.pk, "k": 10})
    assert r.status_code == 200
    answer = _strict_json(r.content)
    for hits in answer["results"].values():
        assert [h["clip"] for h in hits] and clips[1].pk not in [h["clip"] for h in hits]
        assert all(np.isfinite([h["distance"], h["score"]]).all() for h in hits)
    r = client.get(API, {"clip": clips[1].pk, "catalogue": catalogue.pk})
    assert r.status_code == 409 and "not finite" in r.json()["error"]
    assert f"clip {clips[1].pk}" in r.json()["error"]


def test_it_leaves_a_row_nan_in_one_instruments_part_out_of_every_search_and_the_count(
    client, ada, catalogue
):
    """As docs/workers.md says: such a row is no embedding, for every instrument."""
    clips = list(catalogue.clips.order_by("id"))
    ingest.embed_clips([c.pk for c in clips])
    version = ModelVersion.objects.get()
    row = Embedding.objects.get(clip=clips[1])
    vector = row.as_array().copy()
    vector[version.subspaces["drums"]["slice"][0]] = np.nan  # the drums part only
    _replace(row, vector)
    client.force_login(ada)
    for instrument in ("bass", "all"):  # a warm search too, after the first built the indexes
        r = client.get(API, {"clip": clips[0].pk, "catalogue": catalogue.pk, "k": 10,
                             "instrument": instrument})  # fmt: skip
        answer = _strict_json(r.content)
        for condition, hits in answer["results"].items():
            assert clips[1].pk not in [h["clip"] for h in hits], condition
            assert len(hits) == len(clips) - 2
        assert (answer["embedded"], answer["clips"], answer["partial"]) == (
            len(clips) - 1, len(clips), True
        )  # fmt: skip
    Clip.objects.filter(pk=clips[1].pk).update(status=Clip.Status.FAILED)  # the row leaves
    answer = client.get(API, {"clip": clips[0].pk, "catalogue": catalogue.pk}).json()
    assert (answer["embedded"], answer["clips"], answer["partial"]) == (
        len(clips) - 1, len(clips) - 1, False
    )  # fmt: skip


def test_it_gives_a_stored_nan_vector_no_model_choice(catalogue, ada):
    from evalsite.studies.model_design import assign_model_choices

    clips = list(catalogue.clips.order_by("id"))
    ingest.embed_clips([c.pk for c in clips])
    _spoil(clips[0])
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    trial = Trial.objects.create(study=study, instrument="drums", reference=clips[0],
                                 candidate_a=clips[1], candidate_b=clips[2])  # fmt: skip
    assigned = assign_model_choices([trial], version_for(get_embedder()))
    assert (assigned.set, assigned.missing) == (0, {clips[0].pk})
    trial.refresh_from_db()
    assert (trial.model_choice, trial.model_margin) == (None, None)


def test_it_answers_503_when_the_model_embeds_an_upload_as_nan(
    client, ada, catalogue, settings, nan_checkpoint
):
    settings.CSN_CHECKPOINT = str(nan_checkpoint)
    version = version_for(get_embedder())
    ids = _ids(catalogue)  # finite vectors stored under it, so the upload is what fails
    ingest.upsert_embeddings(version, ids, np.ones((len(ids), version.dim), np.float32))
    client.force_login(ada)
    r = client.post(API, {"catalogue": catalogue.pk, "audio": _upload()})
    assert r.status_code == 503, r.content
    error = _strict_json(r.content)["error"]
    assert error.startswith("mine.wav: ") and version.checkpoint_id in error
    assert "non-finite" in error


# --- a checkpoint file that cannot be loaded, a device that cannot be used ---------------------


@pytest.fixture
def garbage_checkpoint(settings, tmp_path):
    path = tmp_path / "final.pt"
    path.write_bytes(b"not a checkpoint" * 10)  # a half-copied deploy, a wrong file
    settings.CSN_CHECKPOINT = str(path)
    return path


def test_it_answers_503_naming_a_checkpoint_file_that_cannot_be_loaded(
    client, ada, catalogue, garbage_checkpoint
):
    client.force_login(ada)
    params = {"clip": catalogue.clips.first().pk, "catalogue": catalogue.pk, "instrument": "drums"}
    r = client.get(API, params)
    assert r.status_code == 503 and r["Content-Type"] == "application/json"
    error = r.json()["error"]
    assert error == f"CSN_CHECKPOINT={garbage_checkpoint}: not a csn checkpoint (a text file)"
    page = client.post("/retrieval/", params)
    assert page.status_code == 503
    assert f"CSN_CHECKPOINT={garbage_checkpoint}: not a csn checkpoint (a text file)" in (
        page.content.decode()
    )


def test_it_fails_the_ingest_job_naming_a_checkpoint_file_that_cannot_be_loaded(
    catalogue, eager, garbage_checkpoint, django_capture_on_commit_callbacks
):
    eager.conf.task_eager_propagates = False  # a worker's view: the embedding task ends the job
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.message == "CSN_CHECKPOINT=final.pt: not a csn checkpoint (a text file)"


def test_it_answers_503_naming_csn_device_when_the_process_cannot_use_it(
    client, ada, catalogue, settings
):
    settings.CSN_DEVICE = "cuda:99"  # no machine of ours has a hundredth GPU
    client.force_login(ada)
    r = client.post(API, {"catalogue": catalogue.pk, "audio": _upload()})
    assert r.status_code == 503
    assert r.json()["error"].startswith("CSN_DEVICE=cuda:99: ")
    page = client.post("/retrieval/", {"catalogue": catalogue.pk, "audio": _upload()})
    assert page.status_code == 503 and "CSN_DEVICE=cuda:99: " in page.content.decode()


def test_it_fails_the_ingest_job_naming_csn_device_when_the_worker_cannot_use_it(
    catalogue, eager, settings, django_capture_on_commit_callbacks
):
    settings.CSN_DEVICE = "cuda:99"
    eager.conf.task_eager_propagates = False
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.message.startswith("CSN_DEVICE=cuda:99: ")
    assert Embedding.objects.count() == 0
