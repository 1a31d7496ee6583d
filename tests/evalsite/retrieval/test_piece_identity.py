"""A piece is its name within its dataset (and catalogue), not its name alone: every Slakh-layout
or `csn synth` dataset names its tracks Track00001..., so two datasets imported into one
catalogue (or two catalogues searched together) hold different pieces with the same name. The
search keeps one clip per piece and leaves the query's own piece out by that identity."""

from __future__ import annotations

import html
import re

import pytest

from evalsite.retrieval.ingest import embed_clips
from evalsite.retrieval.models import ModelVersion
from evalsite.stimuli.audio import clip_from_array
from evalsite.stimuli.models import Catalogue
from evalsite.studies.model_design import build_model_trials
from evalsite.studies.models import Study
from evalsite.studies.random_design import build_random_trials
from tests.evalsite.retrieval.helpers import SR, piece_audio

pytestmark = pytest.mark.django_db
API = "/retrieval/api/search"
TRACKS = ("Track00001", "Track00002", "Track00003")


def import_datasets(catalogue, roots=("/srv/data", "/srv/data2"), tracks=TRACKS) -> dict:
    """Each root's tracks (Track00001..3) as ready mixes (different audio per dataset, as two
    synth seeds make), embedded; {(dataset, piece): clip}."""
    clips = {}
    for d, root in enumerate(roots):
        for p, name in enumerate(tracks):
            clips[root, name] = clip_from_array(
                piece_audio(20 * d + p), SR, catalogue, name=f"{name} mix @0.0s",
                piece=name, dataset=root, split="train",
            )  # fmt: skip
    embed_clips([c.pk for c in clips.values()])
    return clips


@pytest.fixture
def two_datasets(ada):
    catalogue = Catalogue.objects.create(owner=ada, name="two datasets")
    return catalogue, import_datasets(catalogue)


def test_it_returns_every_other_piece_of_two_datasets_that_share_track_names(
    client, ada, two_datasets
):
    catalogue, clips = two_datasets
    client.force_login(ada)
    query = clips["/srv/data", "Track00001"]
    r = client.get(API, {"catalogue": catalogue.pk, "clip": query.pk, "k": 100})
    assert r.status_code == 200, r.content
    others = {c.pk for c in clips.values()} - {query.pk}
    for condition, hits in r.json()["results"].items():
        # data2's Track00001 is another piece, not the query's; neither dataset's Track00002
        # hides the other's
        assert {h["clip"] for h in hits} == others, condition
        assert {(h["dataset"], h["piece"]) for h in hits} == set(clips) - {
            ("/srv/data", "Track00001")
        }


def test_it_still_keeps_one_clip_per_piece_of_a_dataset(client, ada, two_datasets):
    catalogue, clips = two_datasets
    again = clip_from_array(
        piece_audio(1, 1), SR, catalogue, name="Track00002 mix @4.0s", piece="Track00002",
        dataset="/srv/data", split="train",
    )  # fmt: skip
    own = clip_from_array(
        piece_audio(0, 1), SR, catalogue, name="Track00001 mix @4.0s", piece="Track00001",
        dataset="/srv/data", split="train",
    )  # fmt: skip
    embed_clips([again.pk, own.pk])
    client.force_login(ada)
    query = clips["/srv/data", "Track00001"]
    r = client.get(API, {"catalogue": catalogue.pk, "clip": query.pk, "k": 100,
                         "instrument": "drums"})  # fmt: skip
    hits = r.json()["results"]["drums"]
    keys = [(h["dataset"], h["piece"]) for h in hits]
    assert len(keys) == len(set(keys)) == 5  # the six pieces less the query's own
    assert own.pk not in {h["clip"] for h in hits}  # another clip of the query's own piece


def test_it_tells_pieces_of_two_catalogues_apart_in_the_all_catalogues_search(
    client, ada, bob, django_user_model
):
    """Uploaded pieces have no dataset: two people's "Song" are two pieces."""
    root = django_user_model.objects.create_superuser("root", "root@example.org", "all-of-it-33")
    mine, theirs = (Catalogue.objects.create(owner=u, name="songs") for u in (ada, bob))
    clips = [
        clip_from_array(piece_audio(i), SR, cat, name=f"song {i}.wav", piece=piece)
        for i, (cat, piece) in enumerate(
            [(mine, "Song"), (mine, "Tune"), (theirs, "Song"), (theirs, "Tune")]
        )
    ]
    embed_clips([c.pk for c in clips])
    client.force_login(root)
    r = client.get(API, {"clip": clips[0].pk, "k": 100, "instrument": "bass"})
    assert r.status_code == 200, r.content
    assert {h["clip"] for h in r.json()["results"]["bass"]} == {c.pk for c in clips[1:]}


def test_it_names_the_dataset_of_same_named_pieces_in_the_piece_list(client, ada, two_datasets):
    catalogue, clips = two_datasets
    client.force_login(ada)
    body = html.unescape(client.get("/retrieval/", {"catalogue": catalogue.pk}).content.decode())
    labels = dict(re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', body))
    first, second = clips["/srv/data", "Track00001"], clips["/srv/data2", "Track00001"]
    assert labels[str(first.pk)] != labels[str(second.pk)]
    assert "data2" in labels[str(second.pk)] and "data2" not in labels[str(first.pk)]
    # the result lists name it too
    page = client.get("/retrieval/", {"catalogue": catalogue.pk, "clip": first.pk, "k": 10,
                                      "instrument": "drums"})  # fmt: skip
    items = re.findall(r'<span class="piece">([^<]*)</span>', html.unescape(page.content.decode()))
    assert len(items) == 5 and len(set(items)) == 5, items


@pytest.mark.parametrize("design", ["random", "model"])
def test_it_designs_a_study_from_two_datasets_whose_tracks_share_names(ada, design):
    """Two tracks in each of two datasets are four pieces, enough for trials of three."""
    catalogue = Catalogue.objects.create(owner=ada, name="two small datasets")
    import_datasets(catalogue, tracks=TRACKS[:2])
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    if design == "random":
        build_random_trials(study, catalogue, 4, seed=1, practice=0, catch_per_kind=1)
    else:
        build_model_trials(study, catalogue, ModelVersion.objects.get(), "nearest_random", 4,
                           seed=1, practice=0, catch_per_kind=1)  # fmt: skip
    main = study.trials.filter(is_catch=False, is_practice=False)
    assert main.count() == 4
    for t in main:
        trio = {c.piece_key for c in (t.reference, t.candidate_a, t.candidate_b)}
        assert len(trio) == 3, t
    for t in study.trials.filter(catch_kind="identical"):  # the other candidate: another piece
        assert len({c.piece_key for c in (t.reference, t.candidate_a, t.candidate_b)}) == 2
