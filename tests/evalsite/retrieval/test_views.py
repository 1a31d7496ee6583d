"""The retrieval page and JSON API, and the job progress page, through the test client."""

from __future__ import annotations

import html
import io
import tempfile

import numpy as np
import pytest
import soundfile as sf
from django.test import Client
from django.urls import reverse

from evalsite.jobs import progress
from evalsite.jobs.models import Job
from evalsite.retrieval import query
from evalsite.retrieval.embedder import current_version, get_embedder
from evalsite.retrieval.ingest import embed_clips
from evalsite.retrieval.models import Embedding
from evalsite.retrieval.search import exact_topk
from evalsite.stimuli import audio
from evalsite.stimuli.audio import clip_from_array
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import DEFAULT_SETTINGS, Study, Trial
from tests.evalsite.retrieval.helpers import SR, piece_audio

pytestmark = pytest.mark.django_db
API = "/retrieval/api/search"


@pytest.fixture
def embedded(catalogue):
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    return catalogue


def test_it_answers_top_k_per_instrument_as_exact_search_would(client, ada, embedded):
    client.force_login(ada)
    query = embedded.clips.order_by("id").first()
    r = client.get(API, {"clip": query.pk, "instrument": "drums", "k": 3,
                         "catalogue": embedded.pk})  # fmt: skip
    assert r.status_code == 200, r.content
    hits = r.json()["results"]["drums"]
    assert len(hits) == 3 and query.piece not in {h["piece"] for h in hits}
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    others = list(embedded.clips.exclude(pk=query.pk).order_by("id"))
    emb = get_embedder()
    vecs = emb.embed_files([c.file.path for c in others + [query]])
    sub = emb.subspace(vecs, "drums")
    _, idx = exact_topk(sub[:-1], sub[-1:], 3)
    assert [h["clip"] for h in hits] == [others[i].pk for i in idx[0]]
    audio = client.get(hits[0]["audio_url"])
    assert audio.status_code == 200 and audio["Content-Type"] == "audio/wav"
    # blind: the URL holds the clip's random token and nothing else (not `"P0" not in url`, which
    # a random 22-character token breaks about once in 200 runs)
    top = Clip.objects.get(pk=hits[0]["clip"])
    assert hits[0]["audio_url"] == reverse("retrieval:audio", args=[top.token])


def test_it_answers_every_instrument_for_all(client, ada, embedded):
    client.force_login(ada)
    r = client.get(API, {"clip": embedded.clips.first().pk, "catalogue": embedded.pk})
    assert list(r.json()["results"]) == ["drums", "bass", "piano", "guitar", "others"]


def test_it_makes_a_new_clip_findable(client, ada, embedded):
    client.force_login(ada)
    query = embedded.clips.order_by("id").first()
    params = {"clip": query.pk, "instrument": "piano", "k": 20, "catalogue": embedded.pk}
    before = {h["clip"] for h in client.get(API, params).json()["results"]["piano"]}
    new = clip_from_array(piece_audio(3, 9), SR, embedded, name="late", piece="LATE")
    embed_clips([new.pk])
    after = {h["clip"] for h in client.get(API, params).json()["results"]["piano"]}
    assert new.pk not in before and after == before | {new.pk}


def test_it_drops_a_failed_clip_from_the_results_when_a_new_clip_is_added_too(
    client, ada, embedded
):
    client.force_login(ada)
    query = embedded.clips.order_by("id").first()
    params = {"clip": query.pk, "instrument": "drums", "k": 20, "catalogue": embedded.pk}
    before = {h["clip"] for h in client.get(API, params).json()["results"]["drums"]}
    gone = embedded.clips.exclude(pk=query.pk).order_by("id").first()
    Clip.objects.filter(pk=gone.pk).update(status=Clip.Status.FAILED, error="withdrawn")
    new = clip_from_array(piece_audio(9), SR, embedded, name="late", piece="LATE")
    embed_clips([new.pk])  # one out, one in: as many embeddings in scope as before
    after = {h["clip"] for h in client.get(API, params).json()["results"]["drums"]}
    assert gone.pk in before and after == (before - {gone.pk}) | {new.pk}


def test_it_sees_two_clips_return_while_two_leave_with_the_same_id_sum(client, ada, embedded):
    client.force_login(ada)
    query = embedded.clips.order_by("id").first()
    params = {"clip": query.pk, "instrument": "drums", "k": 20, "catalogue": embedded.pk}
    rows = list(Embedding.objects.exclude(clip=query).order_by("id").values_list("id", "clip_id"))
    (a, clip_a), (b, clip_b), (c, clip_c), (d, clip_d) = rows[:4]
    assert a + d == b + c  # count and id sum alone cannot tell the two states apart
    Clip.objects.filter(pk__in=[clip_a, clip_d]).update(status=Clip.Status.FAILED)
    client.get(API, params)  # the index now holds b and c, not a and d
    Clip.objects.filter(pk__in=[clip_a, clip_d]).update(status=Clip.Status.READY)
    Clip.objects.filter(pk__in=[clip_b, clip_c]).update(status=Clip.Status.FAILED)
    found = {h["clip"] for h in client.get(API, params).json()["results"]["drums"]}
    assert {clip_a, clip_d} <= found and not {clip_b, clip_c} & found


def _leave(clip: Clip, how: str, ada) -> None:
    """One write path by which a clip leaves the search scope."""
    if how == "deleted":
        clip.delete()  # its embedding rows go with it
    elif how == "failed":
        Clip.objects.filter(pk=clip.pk).update(status=Clip.Status.FAILED)
    elif how == "made a stem combination":
        clip.meta = {**clip.meta, "kind": "combination"}
        clip.save()
    elif how == "moved":
        clip.catalogue = Catalogue.objects.create(owner=ada, name="elsewhere")
        clip.save()
    elif how == "embedding deleted":
        Embedding.objects.filter(clip=clip).delete()


@pytest.mark.parametrize(
    "how", ["deleted", "failed", "made a stem combination", "moved", "embedding deleted"]
)
def test_it_sees_each_way_a_clip_leaves_in_the_next_warm_search(client, ada, embedded, how):
    client.force_login(ada)
    query = embedded.clips.order_by("id").first()
    params = {"clip": query.pk, "catalogue": embedded.pk}  # all: every instrument's index
    before = client.get(API, params).json()
    gone = embedded.clips.exclude(pk=query.pk).order_by("id").first()
    gone_pk = gone.pk  # delete() clears it
    _leave(gone, how, ada)
    after = client.get(API, params).json()
    assert (before["embedded"], after["embedded"]) == (6, 5)
    for condition, hits in after["results"].items():
        was = {h["clip"] for h in before["results"][condition]}
        assert gone_pk in was and {h["clip"] for h in hits} == was - {gone_pk}, condition


def _stored_at(owner, target, name, pieces) -> Catalogue:
    catalogue = Catalogue.objects.create(owner=owner, name=name)
    for p, audio_of in pieces:
        clip_from_array(audio_of(p), SR, catalogue, target_lufs=target, name=f"P{p:02d}",
                        piece=f"P{p:02d}")  # fmt: skip
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    return catalogue


def _with_transients(p: int) -> np.ndarray:
    """A quiet piece under loud clicks: normalised to a loud target, its peak caps the gain, so
    it is stored below the target (never above it)."""
    data = 0.1 * piece_audio(p)
    data[:: SR // 4] += 0.3 * (p - 2)
    return data


@pytest.fixture
def normalised(ada):
    """A catalogue stored at -16 LUFS (not the default -23, so a search that never read the
    catalogue's level would fail), as an import or a study's Clips page stores one, three of its
    clips held below it by their peaks."""
    pieces = [(p, piece_audio) for p in range(3)] + [(p, _with_transients) for p in (3, 4, 5)]
    return _stored_at(ada, -16.0, "at -16", pieces)


@pytest.mark.parametrize("gain", [1.0, 0.25, 0.03])
def test_it_brings_an_uploaded_clip_to_the_catalogues_loudness(client, ada, normalised, gain):
    client.force_login(ada)
    buf = io.BytesIO()
    sf.write(buf, piece_audio(2, 0) * gain, SR, format="WAV", subtype="FLOAT")
    buf.seek(0)
    buf.name = "mine.wav"
    r = client.post(API, {"audio": buf, "instrument": "guitar", "k": 1, "catalogue": normalised.pk})
    assert r.status_code == 200, r.content
    top = r.json()["results"]["guitar"][0]
    assert top["piece"] == "P02" and top["distance"] == pytest.approx(0.0, abs=1e-2)


def test_it_reports_the_level_it_brings_an_upload_to_on_the_api_and_the_page(
    client, ada, normalised
):
    client.force_login(ada)
    clip = normalised.clips.order_by("id").first()
    form = {"clip": clip.pk, "instrument": "bass", "k": 1, "catalogue": normalised.pk}
    level = client.get(API, form).json()["catalogue_lufs"]
    assert level == query.catalogue_loudness(normalised) == pytest.approx(-16.0, abs=0.2)
    page = client.post("/retrieval/", form).content.decode()
    assert f"{level:.1f} LUFS" in page and f"--target-lufs {level:.1f}" in page


def test_it_reads_a_catalogues_level_past_clips_its_peaks_held_below_it(normalised):
    levels = sorted(c.loudness_lufs for c in normalised.clips.all())
    assert levels[0] < -16.5  # the clicks did hold some below the target
    # the target itself, not pulled down by the held clips: Python's `csn embed --target-lufs`
    # at it gives the site's vectors (a mean of the levels read -16.13 once, findings_rdocs F1)
    assert query.catalogue_loudness(normalised) == pytest.approx(-16.0, abs=0.02)


def test_it_reads_a_catalogues_level_as_its_target_where_a_clip_is_held_just_below_it(ada):
    """A clip its peak held 0.38 LU under the target sits inside the spread and pulled a mean
    of the levels to -16.13 (findings_rdocs F1): the level is the target the clips were stored
    at, the loudest of them, since normalising never leaves a clip above it."""
    near = Catalogue.objects.create(owner=ada, name="one held just below")
    for p, target in enumerate((-16.0, -16.0, -16.0, -16.38)):
        clip_from_array(piece_audio(p), SR, near, target_lufs=target, piece=f"P{p:02d}")
    assert query.catalogue_loudness(near) == pytest.approx(-16.0, abs=0.02)


def test_it_reports_the_louder_of_two_levels_that_hold_half_the_clips_each_and_says_so(client, ada):
    """A study's target changed half-way through its uploads: half the clips at -23, half at
    -16. Normalising never leaves a clip above its target (a peak holds it below), so the louder
    level is the one quieter clips can belong to: it is used, and the page's text says that
    rule (it said -23 "where they are at several levels", findings_rf F5)."""
    tie = Catalogue.objects.create(owner=ada, name="tie")
    for p, target in enumerate((-23.0, -23.0, -16.0, -16.0)):
        clip_from_array(piece_audio(p), SR, tie, target_lufs=target, piece=f"P{p:02d}")
    embed_clips(list(tie.clips.values_list("id", flat=True)))
    assert query.catalogue_loudness(tie) == pytest.approx(-16.0, abs=0.02)
    client.force_login(ada)
    clip = tie.clips.order_by("id").first()
    form = {"clip": clip.pk, "instrument": "bass", "k": 1, "catalogue": tie.pk}
    page = html.unescape(client.post("/retrieval/", form).content.decode())
    assert "-16.0 LUFS" in page
    assert "the loudest level at least half of them are stored at" in page
    assert "where they are at several levels" not in page


def test_it_brings_an_upload_to_the_default_loudness_for_a_catalogue_of_mixed_levels(
    client, ada, monkeypatch
):
    mixed = Catalogue.objects.create(owner=ada, name="mixed")
    for p, target in enumerate((-14.0, -20.0, -26.0, -32.0)):  # no level holds half the clips
        clip_from_array(piece_audio(p), SR, mixed, target_lufs=target, piece=f"P{p:02d}")
    embed_clips(list(mixed.clips.values_list("id", flat=True)))
    targets = []
    level_query = query.level_query

    def spy(data, sr, name, target_lufs):
        targets.append(target_lufs)
        return level_query(data, sr, name, target_lufs)

    monkeypatch.setattr(query, "level_query", spy)
    client.force_login(ada)
    params = {"instrument": "guitar", "k": 1, "catalogue": mixed.pk}
    assert client.post(API, {**params, "audio": _wav_upload("mine.wav")}).status_code == 200
    assert targets == [DEFAULT_SETTINGS["loudness_target_lufs"]]


def test_it_refuses_an_uploaded_query_too_long_for_the_limit_without_decoding_it(
    client, ada, embedded, monkeypatch
):
    client.force_login(ada)
    buf = io.BytesIO()
    sf.write(buf, np.zeros((16000 * 180, 1), np.float32), 16000, format="FLAC")  # 3 min
    buf.seek(0)
    buf.name = "talk.flac"

    def decoded(*args, **kwargs):
        raise AssertionError("decoded a file its header already refused")

    monkeypatch.setattr(sf, "read", decoded)
    monkeypatch.setattr(sf.SoundFile, "read", decoded)
    r = client.post(API, {"audio": buf, "instrument": "all", "catalogue": embedded.pk})
    assert r.status_code == 400
    assert r.json()["error"] == "talk.flac: duration 180.00 s; expected 0.5-120 s"


def _wav_upload(name: str) -> io.BytesIO:
    buf = io.BytesIO()
    sf.write(buf, piece_audio(2, 0), SR, format="WAV")
    buf.seek(0)
    buf.name = name
    return buf


def test_it_refuses_an_uploaded_query_over_the_per_file_limit_before_reading_it(
    client, ada, embedded, monkeypatch
):
    client.force_login(ada)
    size = len(_wav_upload("big.wav").getvalue())
    monkeypatch.setattr(query, "MAX_UPLOAD_BYTES", size - 1)

    def read(*args, **kwargs):
        raise AssertionError("read a file over the limit")

    monkeypatch.setattr(audio, "read_audio", read)
    params = {"instrument": "all", "catalogue": embedded.pk}
    r = client.post(API, {**params, "audio": _wav_upload("big.wav")})
    expected = f"big.wav: {size:,} bytes; expected at most {size - 1:,} bytes (the per-file limit)"
    assert r.status_code == 400 and r.json()["error"] == expected
    page = client.post("/retrieval/", {**params, "audio": _wav_upload("big.wav")})
    assert page.status_code == 400 and expected in page.content.decode()


def test_it_reads_an_upload_spooled_to_disk_in_place(client, ada, embedded, settings, monkeypatch):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every upload goes to a temporary file

    def copy(*args, **kwargs):
        raise AssertionError("copied an upload that is already a file")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", copy)
    client.force_login(ada)
    r = client.post(API, {"audio": _wav_upload("mine.wav"), "instrument": "guitar", "k": 1,
                          "catalogue": embedded.pk})  # fmt: skip
    assert r.status_code == 200, r.content


def test_it_answers_409_for_a_catalogue_with_no_clip_embedded(client, ada, catalogue):
    client.force_login(ada)
    params = {"instrument": "drums", "catalogue": catalogue.pk}
    r = client.post(API, {**params, "audio": _wav_upload("mine.wav")})
    expected = (
        f"catalogue {catalogue.name}: 0 of 6 clips embedded with checkpoint "
        f"{get_embedder().checkpoint_id}; embed the catalogue (Embed clips on the model-work "
        f"page of its study, or `manage.py embed_catalogue {catalogue.name}`)"
    )
    assert r.status_code == 409 and r.json() == {"error": expected}
    page = client.post("/retrieval/", {**params, "audio": _wav_upload("mine.wav")})
    assert page.status_code == 409 and expected in page.content.decode()
    assert "No other piece" not in page.content.decode()


def test_it_flags_a_partly_embedded_catalogue_and_never_says_no_other_piece(client, ada, catalogue):
    client.force_login(ada)
    query = catalogue.clips.order_by("id").first()
    embed_clips([query.pk])  # only the query: nothing else to find yet
    params = {"clip": query.pk, "instrument": "drums", "catalogue": catalogue.pk}
    answer = client.get(API, params).json()
    assert (answer["embedded"], answer["clips"], answer["partial"]) == (1, 6, True)
    assert answer["results"]["drums"] == []
    page = client.get("/retrieval/", params).content.decode()
    assert "Only 1 of 6 clips" in page and "No other piece" not in page
    assert "<code>manage.py embed_catalogue</code>" in page  # a catalogue of no study too
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    answer = client.get(API, params).json()
    assert (answer["embedded"], answer["clips"], answer["partial"]) == (6, 6, False)
    assert "Only" not in client.get("/retrieval/", params).content.decode()


def test_it_explains_bad_requests(client, ada, bob, embedded):
    assert client.get(API, {"clip": 1}).status_code == 401
    client.force_login(ada)
    r = client.get(API, {"clip": embedded.clips.first().pk, "instrument": "kazoo",
                         "catalogue": embedded.pk})  # fmt: skip
    assert r.status_code == 400 and "kazoo" in r.json()["error"]
    assert client.get(API, {"clip": 1, "k": "many", "catalogue": embedded.pk}).status_code == 400
    client.force_login(bob)  # not his catalogue
    r = client.get(API, {"clip": embedded.clips.first().pk, "catalogue": embedded.pk})
    assert r.status_code == 404


def test_it_says_what_is_missing_when_searching_without_a_piece_or_a_clip(client, ada, embedded):
    client.force_login(ada)
    page = client.post("/retrieval/", {"catalogue": embedded.pk, "clip": "", "k": 2})
    assert page.status_code == 400
    assert "choose a piece or upload a clip" in page.content.decode()
    r = client.post(API, {"catalogue": embedded.pk})
    assert r.status_code == 400 and r.json()["error"].startswith("choose a piece or upload a clip")
    # Opening the page (or switching the catalogue, a GET) asks for nothing yet.
    assert b"choose a piece" not in client.get("/retrieval/", {"catalogue": embedded.pk}).content


def test_it_answers_json_for_a_missing_csrf_token_and_a_wrong_method(ada, embedded):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    params = {"clip": embedded.clips.first().pk, "catalogue": embedded.pk}
    r = client.post(API, params)
    assert r.status_code == 403 and r["Content-Type"] == "application/json"
    assert r.json()["error"].startswith("CSRF check failed")
    for method in (client.put, client.delete, client.patch):
        r = method(API)
        assert r.status_code == 405 and r["Allow"] == "GET, POST"
        assert r.json()["error"] == f"method {method.__name__.upper()}: expected GET or POST"
    assert client.get(API, params).status_code == 200  # a GET needs no token


def test_it_answers_400_naming_an_id_parameter_that_is_not_an_integer(client, ada, embedded):
    client.force_login(ada)
    clip = embedded.clips.first()
    for params, name in [
        ({"catalogue": "abc", "clip": clip.pk}, "catalogue"),
        ({"catalogue": embedded.pk, "clip": "abc"}, "clip"),
    ]:
        r = client.get(API, params)
        assert r.status_code == 400 and r.json()["error"] == f"{name}='abc': expected an integer id"
        page = client.get("/retrieval/", params)
        assert page.status_code == 400 and f"{name}=&#x27;abc&#x27;" in page.content.decode()
    assert client.get("/retrieval/", {"catalogue": "abc"}).status_code == 400


def test_it_answers_404_on_the_page_for_a_catalogue_that_is_not_yours_or_does_not_exist(
    client, ada, bob, embedded
):
    client.force_login(bob)
    missing = embedded.pk + 1000
    for catalogue_id in (embedded.pk, missing):
        page = client.get("/retrieval/", {"catalogue": catalogue_id})
        assert page.status_code == 404, catalogue_id
        assert f"catalogue={catalogue_id}: no such catalogue" in page.content.decode()
        assert b"P00" not in page.content


def test_it_renders_the_page_with_players(client, ada, embedded):
    client.force_login(ada)
    page = client.get("/retrieval/")
    assert page.status_code == 200 and b"P00" in page.content
    clip = embedded.clips.order_by("id").first()
    r = client.post("/retrieval/", {"catalogue": embedded.pk, "clip": clip.pk,
                                    "instrument": "bass", "k": 2})  # fmt: skip
    assert r.status_code == 200
    assert r.content.count(b"<audio") == 3  # the query and two hits


def test_it_shows_job_progress_with_the_failing_clip(client, ada, catalogue):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    errors = [{"clip": 7, "name": "x.wav", "error": "bad"}]
    Job.objects.create(kind=Job.Kind.INGEST, study=study, status=Job.Status.DONE, total=3,
                       done=2, failed=1, errors=errors)  # fmt: skip
    client.force_login(ada)
    fragment = client.get(reverse("jobs:study_fragment", args=[study.pk]))
    assert b"2 / 3" in fragment.content and b"x.wav" in fragment.content
    data = client.get(reverse("jobs:study_json", args=[study.pk])).json()
    assert data["jobs"][0]["errors"][0]["clip"] == 7
    assert client.get(reverse("jobs:study", args=[study.pk])).status_code == 200


def test_it_hides_other_peoples_jobs(client, bob, ada, catalogue):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    client.force_login(bob)
    assert client.get(reverse("jobs:study_fragment", args=[study.pk])).status_code == 404


def test_it_queues_a_model_design_from_the_jobs_page(
    client, ada, catalogue, eager, django_capture_on_commit_callbacks
):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    client.force_login(ada)
    url = reverse("jobs:queue", args=[study.pk, "design"])
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(url, {"strategy": "nearest_farthest", "per_instrument": 2, "seed": 4,
                              "catch_per_kind": 0})  # fmt: skip
    assert r.status_code == 302
    job = Job.objects.get(study=study)
    assert job.status == Job.Status.DONE, job.message
    assert study.trials.filter(is_practice=False).count() == 2
    empty = Study.objects.create(owner=ada, name="e", instruments=["drums"])
    r = client.post(reverse("jobs:queue", args=[empty.pk, "design"]), {"strategy": "x"})
    assert r.status_code == 302 and not Job.objects.filter(study=empty).exists()


@pytest.mark.parametrize(
    "posted, study_settings, practice",
    [({"practice": "0"}, {}, 0), ({}, {}, 2), ({}, {"practice_trials": 1}, 1)],
    ids=["posted-0", "default", "study-setting"],
)
def test_it_designs_the_practice_trials_the_page_asks_for(
    client,
    ada,
    catalogue,
    eager,
    django_capture_on_commit_callbacks,
    posted,
    study_settings,
    practice,
):
    study = Study.objects.create(
        owner=ada, name="s", catalogue=catalogue, instruments=["drums"], settings=study_settings
    )
    client.force_login(ada)
    page = client.get(reverse("jobs:study", args=[study.pk])).content.decode()
    assert f'name="practice" value="{practice if not posted else 2}"' in page
    data = {"strategy": "nearest_random", "per_instrument": 1, "catch_per_kind": 0, **posted}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("jobs:queue", args=[study.pk, "design"]), data)
    job = Job.objects.get(study=study)
    assert job.status == Job.Status.DONE, job.message
    assert study.trials.filter(is_practice=True).count() == practice
    assert study.events.get(kind="trials").changes["practice"] == practice


def test_it_answers_404_for_an_unknown_job_action(client, ada, catalogue):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    client.force_login(ada)
    r = client.post(reverse("jobs:queue", args=[study.pk, "desing"]))
    assert r.status_code == 404 and not Job.objects.filter(study=study).exists()


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("per_instrument", "-3", "per_instrument=-3: expected an integer >= 1"),
        ("per_instrument", "0", "per_instrument=0: expected an integer >= 1"),
        ("per_instrument", "ten", "per_instrument='ten': expected an integer"),
        ("catch_per_kind", "-1", "catch_per_kind=-1: expected an integer >= 0"),
        ("seed", "1.5", "seed='1.5': expected an integer"),
        ("practice", "-1", "practice=-1: expected an integer from 0 to 20"),
        ("practice", "two", "practice='two': expected an integer"),
        ("practice", "21", "practice=21: expected an integer from 0 to 20"),
    ],
)
def test_it_refuses_design_numbers_out_of_range_naming_the_field_before_queueing(
    client, ada, catalogue, field, value, expected
):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    client.force_login(ada)
    data = {"strategy": "nearest_random", "per_instrument": 2, "catch_per_kind": 0, field: value}
    r = client.post(reverse("jobs:queue", args=[study.pk, "design"]), data, follow=True)
    assert expected in html.unescape(r.content.decode())
    assert not Job.objects.filter(study=study).exists()


def _poll_while_a_worker_writes(client, job, monkeypatch, write) -> Job:
    """Poll the study's job fragment with `write` (a worker's update of the job) landing just
    after the poll has read the job and before it stores its recount; the job as stored."""
    original, fired = Job.refresh_from_db, []

    def read_then_worker_writes(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if not fired:
            fired.append(True)
            write(Job.objects.get(pk=self.pk))

    monkeypatch.setattr(Job, "refresh_from_db", read_then_worker_writes)
    assert client.get(reverse("jobs:study_fragment", args=[job.study_id])).status_code == 200
    monkeypatch.undo()
    assert fired
    job.refresh_from_db()
    return job


@pytest.mark.parametrize(
    "end, status, message",
    [
        (lambda j: progress.finish(j, "12 trial(s) designed"), "done", "12 trial(s) designed"),
        (lambda j: j.fail("design failed: boom"), "failed", "design failed: boom"),
    ],
    ids=["finish", "fail"],
)
def test_it_keeps_the_workers_ending_of_a_job_that_a_page_poll_was_recounting(
    client, ada, catalogue, monkeypatch, end, status, message
):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    job = Job.objects.create(kind=Job.Kind.DESIGN, study=study, catalogue=catalogue,
                             status=Job.Status.RUNNING, params={"clips": []})  # fmt: skip
    client.force_login(ada)
    job = _poll_while_a_worker_writes(client, job, monkeypatch, end)
    assert (job.status, job.message) == (status, message) and job.finished_at is not None


def test_it_keeps_an_error_a_worker_listed_while_a_page_poll_was_recounting(
    client, ada, catalogue, monkeypatch
):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    ids = list(catalogue.clips.values_list("id", flat=True))
    job = Job.objects.create(kind=Job.Kind.INGEST, study=study, catalogue=catalogue,
                             status=Job.Status.RUNNING, params={"clips": ids})  # fmt: skip
    client.force_login(ada)
    job = _poll_while_a_worker_writes(
        client, job, monkeypatch, lambda j: progress.add_error(j, "embed failed")
    )
    assert job.errors == [{"error": "embed failed"}] and job.status == Job.Status.RUNNING


def test_it_lists_errors_added_through_stale_copies_of_a_job(ada, catalogue):
    job = Job.objects.create(kind=Job.Kind.INGEST, catalogue=catalogue, status=Job.Status.RUNNING)
    first, second = Job.objects.get(pk=job.pk), Job.objects.get(pk=job.pk)  # two tasks' copies
    progress.add_error(first, "prepare failed")
    progress.add_error(second, "embed failed")
    job.refresh_from_db()
    assert job.errors == [{"error": "prepare failed"}, {"error": "embed failed"}]


def test_it_leaves_a_requeued_model_choice_job_queued_until_a_worker_runs_it(
    client, ada, catalogue, django_capture_on_commit_callbacks
):
    clips = list(catalogue.clips.order_by("id"))
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    for i in range(3):  # choices an earlier checkpoint's job stored
        Trial.objects.create(study=study, instrument="drums", reference=clips[i],
                             candidate_a=clips[i + 1], candidate_b=clips[i + 2],
                             model_choice="a", model_margin=0.5)  # fmt: skip
    client.force_login(ada)
    with django_capture_on_commit_callbacks(execute=False):  # no worker has run it
        client.post(reverse("jobs:queue", args=[study.pk, "model-choices"]))
    assert client.get(reverse("jobs:study_fragment", args=[study.pk])).status_code == 200
    job = Job.objects.get(study=study)
    assert (job.status, job.done, job.total) == (Job.Status.QUEUED, 0, 3)


def test_it_only_reloads_the_piece_list_when_the_catalogue_is_switched(client, ada, embedded):
    other = Catalogue.objects.create(owner=ada, name="zz second")
    clip_from_array(piece_audio(7), SR, other, name="Q07 take 0", piece="Q07")
    client.force_login(ada)
    query = embedded.clips.order_by("id").first()
    # A link (or an old bookmark: the catalogue <select> once sent the whole form by GET) with
    # another catalogue's piece.
    page = client.get("/retrieval/", {"catalogue": other.pk, "clip": query.pk,
                                      "instrument": "drums", "k": 3})  # fmt: skip
    body = page.content.decode()
    assert page.status_code == 200 and "Q07" in body
    assert "Query" not in body and "retrieval-list" not in body
    # A link to a search with one of the catalogue's own pieces still searches.
    page = client.get("/retrieval/", {"catalogue": embedded.pk, "clip": query.pk, "k": 3})
    assert page.status_code == 200 and "retrieval-list" in page.content.decode()


def test_it_says_an_upload_was_searched_and_the_chosen_piece_was_not(client, ada, embedded):
    client.force_login(ada)
    piece = embedded.clips.order_by("id").first()
    params = {"catalogue": embedded.pk, "clip": piece.pk, "instrument": "drums", "k": 3}
    page = client.post("/retrieval/", {**params, "audio": _wav_upload("mine.wav")})
    body = html.unescape(page.content.decode())
    assert page.status_code == 200 and "retrieval-list" in body
    assert "Query: mine.wav (uploaded clip)" in body
    assert f"The chosen piece ({piece.piece}) was not searched: the upload was." in body
    # An upload alone: the Query line, and no note about a piece.
    page = client.post("/retrieval/", {**params, "clip": "", "audio": _wav_upload("mine.wav")})
    body = html.unescape(page.content.decode())
    assert "Query: mine.wav (uploaded clip)" in body and "was not searched" not in body


def test_it_counts_the_clips_and_those_embedded_in_one_query(catalogue):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    embed_clips(list(catalogue.clips.order_by("id").values_list("id", flat=True)[:4]))
    Clip.objects.filter(pk=catalogue.clips.order_by("id").last().pk).update(status="failed")
    version = current_version()
    with CaptureQueriesContext(connection) as queries:
        assert query.coverage(version, catalogue)[:2] == (4, 5)
    assert len(queries) == 1


@pytest.mark.parametrize("instrument", ["drums", "all"])
def test_it_reads_an_unchanged_catalogue_once_in_a_warm_search(client, ada, embedded, instrument):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(ada)
    params = {"clip": embedded.clips.order_by("id").first().pk, "catalogue": embedded.pk}
    client.get(API, {**params, "instrument": "all"})  # builds the indexes
    with CaptureQueriesContext(connection) as queries:
        assert client.get(API, {**params, "instrument": instrument}).status_code == 200
    scans = [q["sql"] for q in queries if "COUNT(" in q["sql"]]
    assert len(scans) == 1, scans  # coverage's counts, which the indexes' sync check reuses
    Clip.objects.filter(pk=params["clip"]).update(status=Clip.Status.FAILED)
    other = embedded.clips.order_by("id").last().pk
    answer = client.get(API, {**params, "clip": other, "instrument": instrument}).json()
    found = {hit["clip"] for hits in answer["results"].values() for hit in hits}
    assert params["clip"] not in found and answer["embedded"] == len(found) + 1 == 5


def test_it_refuses_an_upload_whose_channels_cancel_as_silent(client, ada, embedded):
    # Each channel is loud, so the upload passes the clip checks, but the mono mix the model
    # hears is silence: a 400 naming the file, not a server error or a search with silence.
    left = piece_audio(2, 0)[:, None]  # (T, 1)
    buf = io.BytesIO()
    sf.write(buf, np.hstack([left, -left]), SR, format="WAV", subtype="FLOAT")
    buf.seek(0)
    buf.name = "phase.wav"
    client.force_login(ada)
    params = {"instrument": "guitar", "k": 1, "catalogue": embedded.pk}
    r = client.post(API, {**params, "audio": buf})
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error.startswith("phase.wav: ") and "silent" in error
