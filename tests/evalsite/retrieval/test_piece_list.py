"""The retrieval page lists at most PIECE_LIST_MAX of a catalogue's pieces, found by part of a
piece, clip or dataset name: a catalogue of 20,000 clips made a page of 20,000 <option>s (1 MB),
and the index is meant for a million."""

from __future__ import annotations

import html
import re

import pytest

from evalsite.retrieval.views import PIECE_LIST_MAX
from evalsite.stimuli.models import Catalogue, Clip

pytestmark = pytest.mark.django_db
N = PIECE_LIST_MAX + 50


@pytest.fixture
def big(ada):
    catalogue = Catalogue.objects.create(owner=ada, name="big")
    Clip.objects.bulk_create(
        Clip(
            catalogue=catalogue,
            name=f"take {i}",
            piece=f"Track{i:05d}",
            dataset="/srv/big",
            status=Clip.Status.READY,
        )  # fmt: skip
        for i in range(N)
    )
    return catalogue


def options(response) -> dict[str, str]:
    body = html.unescape(response.content.decode())
    select = re.search(r'<select name="clip".*?</select>', body, re.S).group(0)
    return dict(re.findall(r'<option value="(\d*)"[^>]*>([^<]*)</option>', select))


def test_it_lists_a_bounded_number_of_pieces_and_says_how_many_there_are(client, ada, big):
    client.force_login(ada)
    page = client.get("/retrieval/", {"catalogue": big.pk})
    listed = options(page)
    assert len(listed) == PIECE_LIST_MAX + 1  # and "(upload a clip instead)"
    body = html.unescape(page.content.decode())
    assert f"Listing {PIECE_LIST_MAX} of {N} pieces" in body


def test_it_finds_pieces_by_part_of_a_name(client, ada, big):
    client.force_login(ada)
    page = client.get("/retrieval/", {"catalogue": big.pk, "q": "track0014"})  # any case
    listed = options(page)
    assert sorted(v for k, v in listed.items() if k) == [
        f"Track{i:05d} — take {i}" for i in range(140, N)
    ]
    assert "Listing" not in page.content.decode() and "retrieval-list" not in page.content.decode()
    page = client.get("/retrieval/", {"catalogue": big.pk, "q": "no such piece"})
    assert list(options(page)) == [""]
    assert "No piece of this catalogue matches “no such piece”." in page.content.decode()


def test_it_keeps_the_chosen_piece_listed_and_selected_when_the_list_leaves_it_out(
    client, ada, big
):
    client.force_login(ada)
    last = big.clips.order_by("id").last()
    page = client.post("/retrieval/", {"catalogue": big.pk, "clip": last.pk, "q": "Track0000"})
    assert page.status_code in (409, 503)  # searched: nothing is embedded (or no checkpoint)
    body = page.content.decode()
    assert re.search(rf'<option value="{last.pk}"\s+selected>', body), body
    assert 'name="q" value="Track0000"' in body  # the list stays as it was found
