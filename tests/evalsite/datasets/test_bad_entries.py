"""Bad entries in a dataset on the site and in `manage.py import_slakh`: a track folder whose name
is not UTF-8, a stray file with such a name, track entries that are dangling symlinks or loops.
The listing shows an error row, the Import page and the command give the reader's error naming
the entry, and no catalogue is left behind.

Personas: `ada`, an experimenter logged in on `client`; `offer(root)`, the site offering root."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils.text import slugify

from evalsite.datasets.catalog import datasets
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Study
from tests.csn_model.data.test_bad_entries import _copy, _first, _latin1

pytestmark = pytest.mark.django_db


@pytest.fixture
def offer(settings, tmp_path):
    """offer(root): the site's only dataset is root."""

    def set_root(root: Path) -> Path:
        settings.CSN_DATA_DIR, settings.CSN_DATASETS = tmp_path / "none", [root]
        return root

    return set_root


def _latin1_track(tiny_dataset, tmp_path) -> Path:
    """A copy of tiny_dataset whose first test track folder is named b'Track\\xff02'."""
    root = _copy(tiny_dataset, tmp_path, "latin1")
    _first(root, "test").rename(_latin1(root / "test", b"Track\xff02"))
    return root


def _import_page(client, ada, root: Path):
    study = Study.objects.create(owner=ada, name="import", instruments=["drums", "bass"])
    (ref,) = datasets()
    url = reverse("studies:dataset_import", args=[study.pk])
    data = {"root": ref.slug, "split": "test", "seconds": 2, "attention": "on"}
    return client.post(url, data), study


def _command(root: Path, catalogue: str, owner) -> None:
    call_command("import_slakh", str(root), "--split", "test", "--catalogue", catalogue,
                 "--seconds", "2", "--owner", owner.username)  # fmt: skip


def test_it_lists_a_track_folder_named_in_latin1_as_an_error_row(
    client, ada, offer, tiny_dataset, tmp_path
):
    root = offer(_latin1_track(tiny_dataset, tmp_path))
    page = client.get(f"/datasets/{slugify(root.name)}/?split=test")
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert "Track\\xff02: track folder name is not valid UTF-8" in text
    assert "test/Track00005/mix.flac" in text  # the other tracks still listed


def test_it_refuses_to_import_a_track_folder_named_in_latin1_naming_it(
    client, ada, offer, tiny_dataset, tmp_path
):
    root = offer(_latin1_track(tiny_dataset, tmp_path))
    response, study = _import_page(client, ada, root)
    assert response.status_code == 200  # the form again, with the reason
    (shown,) = response.context["form"].errors["root"]
    assert "Track\\xff02" in shown and "not valid UTF-8" in shown
    with pytest.raises(CommandError) as command:
        _command(root, "c", ada)
    assert str(command.value) == shown
    study.refresh_from_db()
    assert study.catalogue_id is None
    assert not Catalogue.objects.exists() and not Clip.objects.exists()


def test_it_imports_and_lists_a_dataset_with_a_stray_latin1_file(
    client, ada, offer, tiny_dataset, tmp_path, capsys
):
    root = offer(_copy(tiny_dataset, tmp_path, "stray"))
    _latin1(_first(root, "test"), b"notes_caf\xe9.txt").write_text("x")
    page = client.get(f"/datasets/{slugify(root.name)}/?split=test")
    assert page.status_code == 200 and "not valid UTF-8" not in page.content.decode()
    _command(root, "c", ada)
    assert "4 mix clips" in capsys.readouterr().out
    response, _study = _import_page(client, ada, root)
    assert response.status_code == 303


def _dangling(tiny_dataset, tmp_path) -> Path:
    """A copy of tiny_dataset with a test track entry linking to a disk that is not mounted and
    one linking to itself."""
    root = _copy(tiny_dataset, tmp_path, "dangling")
    (root / "test" / "Track00077").symlink_to("/nonexistent/Track77")
    (root / "test" / "TrackLoop").symlink_to("TrackLoop")
    return root


def test_it_lists_track_links_that_lead_nowhere_as_error_rows(
    client, ada, offer, tiny_dataset, tmp_path
):
    root = offer(_dangling(tiny_dataset, tmp_path))
    page = client.get(f"/datasets/{slugify(root.name)}/?split=test")
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert "Track00077: track entry is a symlink to /nonexistent/Track77" in text
    assert "TrackLoop: track entry is a symlink loop" in text


def test_it_refuses_to_import_a_split_with_a_track_link_that_leads_nowhere(
    client, ada, offer, tiny_dataset, tmp_path
):
    root = offer(_dangling(tiny_dataset, tmp_path))
    response, study = _import_page(client, ada, root)
    assert response.status_code == 200
    (shown,) = response.context["form"].errors["root"]
    assert "Track00077" in shown and "dangling" in shown
    with pytest.raises(CommandError) as command:
        _command(root, "c", ada)
    assert str(command.value) == shown
    assert not Catalogue.objects.exists() and not Clip.objects.exists()
