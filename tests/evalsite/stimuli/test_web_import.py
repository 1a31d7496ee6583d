"""The experimenter's Import page (studies:dataset_import) runs `slakh_import` as the command
does: a dataset refused as a whole leaves no catalogue behind, with the command's error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from evalsite.datasets.catalog import datasets
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Study

pytestmark = pytest.mark.django_db


def _broken_metadata(tiny_dataset: Path, tmp_path: Path) -> Path:
    """A copy of tiny_dataset whose first test track's metadata.yaml is not YAML."""
    root = Path(shutil.copytree(tiny_dataset, tmp_path / "broken"))
    track = sorted(p for p in (root / "test").iterdir() if p.is_dir())[0]
    (track / "metadata.yaml").write_text("stems: [unclosed\n")
    return root


def test_a_refused_dataset_leaves_the_study_without_a_catalogue_and_gives_the_commands_error(
    client, owner, tiny_dataset, settings, tmp_path
):
    root = _broken_metadata(tiny_dataset, tmp_path)
    settings.CSN_DATA_DIR, settings.CSN_DATASETS = tmp_path / "none", [root]
    (ref,) = datasets()
    study = Study.objects.create(owner=owner, name="import", instruments=["drums", "bass"])
    client.force_login(owner)
    url = reverse("studies:dataset_import", args=[study.pk])
    data = {"root": ref.slug, "split": "test", "seconds": 2, "attention": "on"}
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with the reason
    (shown,) = response.context["form"].errors["root"]
    study.refresh_from_db()
    assert study.catalogue_id is None
    assert not Catalogue.objects.exists() and not Clip.objects.exists()
    assert not study.events.exists()  # no catalogue recorded in the study's history
    with pytest.raises(CommandError) as command:
        call_command("import_slakh", str(root), "--split", "test", "--catalogue", "c",
                     "--owner", owner.username)  # fmt: skip
    assert shown == str(command.value) and "metadata.yaml" in shown


@pytest.mark.django_db(transaction=True)
def test_an_import_sent_twice_at_once_makes_each_clip_once(owner, tiny_dataset, settings):
    """A double click on Import: the second POST starts before the first made anything."""
    import threading
    from collections import Counter

    from django.db import connection
    from django.test import Client

    settings.CSN_DATA_DIR, settings.CSN_DATASETS = Path("/nonexistent"), [tiny_dataset]
    (ref,) = datasets()
    catalogue = Catalogue.objects.create(owner=owner, name="live")
    study = Study.objects.create(
        owner=owner, name="import", instruments=["drums", "bass"], catalogue=catalogue
    )
    url = reverse("studies:dataset_import", args=[study.pk])
    data = {"root": ref.slug, "split": "validation", "seconds": 2, "attention": "on"}
    gate, codes = threading.Barrier(2), []

    def click():
        client = Client()
        client.force_login(owner)
        gate.wait()
        codes.append(client.post(url, data).status_code)
        connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [303, 303]
    once = Client()
    once.force_login(owner)
    rows = Clip.objects.filter(catalogue=catalogue).values_list("name", "start_s")
    assert rows and [k for k, n in Counter(rows).items() if n > 1] == []
    # as many as one import alone makes into a fresh catalogue
    alone = Catalogue.objects.create(owner=owner, name="alone")
    Study.objects.filter(pk=study.pk).update(catalogue=alone)
    assert once.post(url, data).status_code == 303
    assert Clip.objects.filter(catalogue=alone).count() == len(rows)
