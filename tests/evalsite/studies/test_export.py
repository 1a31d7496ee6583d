"""The export: the tidy answers table (`ANSWER_COLUMNS`), the downloads, every answer once."""

from __future__ import annotations

import importlib.metadata
import io
import json
import zipfile

import django
import numpy as np
import pandas as pd
import pytest
from django.urls import reverse

import csn_model
from evalsite.stimuli.audio import clip_from_array
from evalsite.stimuli.models import Catalogue
from evalsite.studies.export import EXPORT_FILES, to_csv, to_json
from evalsite.studies.export_answers import (
    ANSWER_COLUMNS,
    answers_dataframe,
    full_answers_dataframe,
    participants_dataframe,
)
from evalsite.studies.export_codebook import CODEBOOK
from evalsite.studies.export_provenance import config_snapshot, manifest_dataframe
from evalsite.studies.models import Answer, Participant, Study, Trial
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

TEAM_MD_COLUMNS = [
    "study", "participant", "session", "trial", "trial_index", "instrument", "reference",
    "candidate_a", "candidate_b", "displayed_first", "chosen", "chosen_position", "model_choice",
    "model_margin", "agree", "is_catch", "catch_kind", "catch_correct", "response_ms",
    "plays_reference", "plays_a", "plays_b", "screening_passed", "created_at",
]  # fmt: skip


def _stored_pairs(study, practice=None) -> list[tuple[int, int]]:
    answers = Answer.objects.filter(participant__study=study)
    if practice is not None:
        answers = answers.filter(trial__is_practice=practice)
    return sorted(answers.values_list("participant_id", "trial_id"))


def test_it_has_exactly_the_team_md_columns(answered_study):
    frame = answers_dataframe(answered_study)
    assert list(frame.columns) == TEAM_MD_COLUMNS == list(ANSWER_COLUMNS)


def test_it_has_each_main_and_catch_answer_exactly_once(answered_study):
    frame = answers_dataframe(answered_study)
    pairs = sorted(zip(frame["participant"], frame["trial"]))
    assert pairs == _stored_pairs(answered_study, practice=False)
    assert len(pairs) == len(set(pairs)) == 16  # 7 + 7 + 2 non-practice answers


def test_it_returns_the_columns_for_a_study_without_answers(study):
    frame = answers_dataframe(study)
    assert frame.empty
    assert list(frame.columns) == TEAM_MD_COLUMNS


def test_it_derives_agreement_positions_and_catch_correctness(answered_study):
    frame = answers_dataframe(answered_study).set_index(["participant", "trial"])
    trials = {t.catch_kind or ("model" if t.model_choice else "plain"): t
              for t in answered_study.trials.filter(is_practice=False)}  # fmt: skip
    p1, p2 = sorted(frame.index.get_level_values(0).unique())[:2]
    row = frame.loc[(p1, trials["model"].pk)]
    assert row["agree"] == float(row["chosen"] == trials["model"].model_choice)
    assert row["chosen_position"] == ("A" if row["chosen"] == row["displayed_first"] else "B")
    plain = frame.loc[(p1, trials["plain"].pk)]
    assert plain["model_choice"] is None and np.isnan(plain["agree"])
    assert np.isnan(plain["catch_correct"])
    assert frame.loc[(p1, trials["identical"].pk), "catch_correct"] == 1.0
    assert frame.loc[(p1, trials["attention"].pk), "catch_correct"] == 1.0
    # p1 chose the same clip on the repeat as on its original, p2 did not.
    assert frame.loc[(p1, trials["repeat"].pk), "catch_correct"] == 1.0
    assert frame.loc[(p2, trials["repeat"].pk), "catch_correct"] == 0.0
    assert frame["screening_passed"].dtype == bool and frame["screening_passed"].all()
    assert frame["created_at"].str.endswith("Z").all()


def test_it_uses_clip_tokens_that_the_manifest_lists(answered_study):
    frame = answers_dataframe(answered_study)
    manifest = manifest_dataframe(answered_study)
    used = set(frame[["reference", "candidate_a", "candidate_b"]].to_numpy().ravel())
    assert used <= set(manifest["token"])
    assert manifest["token"].is_unique
    assert manifest["sha256"].str.len().eq(64).all()


def test_it_documents_every_exported_column_in_the_codebook(answered_study):
    full = full_answers_dataframe(answered_study)
    assert list(full.columns) == list(CODEBOOK["answers"])
    assert list(manifest_dataframe(answered_study).columns) == list(CODEBOOK["manifest"])
    participants = participants_dataframe(answered_study)
    assert list(participants.columns) == list(CODEBOOK["participants"])


def test_it_downloads_csv_and_json_with_every_answer_once(client, alice, answered_study):
    client.force_login(alice)
    base = [answered_study.pk]
    csv = client.get(reverse("studies:export_file", args=[*base, "answers.csv"]))
    assert csv.status_code == 200 and csv["Content-Type"] == "text/csv"
    table = pd.read_csv(io.BytesIO(csv.content))
    records = json.loads(client.get(reverse("studies:export_file", args=[*base, "answers.json"]))
                         .content)  # fmt: skip
    stored = _stored_pairs(answered_study)
    assert len(stored) == 19  # practice answers included in the downloads
    assert sorted(zip(table["participant"], table["trial"])) == stored
    assert sorted((r["participant"], r["trial"]) for r in records) == stored


def test_it_bundles_every_export_file_in_one_zip(client, carol, answered_study):
    client.force_login(carol)  # a collaborator may export too
    response = client.get(reverse("studies:export_file", args=[answered_study.pk, "bundle.zip"]))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = sorted(n.split("/", 1)[1] for n in archive.namelist())
    assert names == sorted(EXPORT_FILES)
    folder = f"study-{answered_study.pk}"
    answers = pd.read_csv(archive.open(f"{folder}/answers.csv"))
    assert len(answers) == len(_stored_pairs(answered_study))
    design = pd.read_csv(archive.open(f"{folder}/design.csv"))
    assert len(design) == 3 * answered_study.trials.count()
    assert design["answered"].sum() == len(answers)
    config = json.loads(archive.read(f"{folder}/config.json"))
    assert config["settings"]["target_answers_per_trial"] == 2
    assert config["trials"] == {"total": 8, "main": 4, "practice": 1, "catch": 3}


def test_it_refuses_an_unknown_export_name(client, alice, study):
    client.force_login(alice)
    url = reverse("studies:export_file", args=[study.pk, "secrets.txt"])
    assert client.get(url).status_code == 404


def test_it_snapshots_the_config_with_defaults_filled_in(study):
    snapshot = config_snapshot(study)
    assert snapshot["settings"]["screening"] is True  # a default
    assert snapshot["settings"]["target_answers_per_trial"] == 2  # the study's own value
    assert snapshot["shared_with"] == ["carol"]


def test_it_lists_every_participant_with_ids_status_codes_and_answer_counts(answered_study):
    p1 = answered_study.participants.get(external_pid="p1")
    p1.prolific_pid, p1.completion_code = "5f1e2d3c4b5a", "C0DE1234"
    p1.questionnaire = {"musical_training": "gt5", "device": "laptop", "headphones": "over_ear"}
    p1.screening = {"answers": [{"kind": "antiphase", "i": i, "correct": i != 1} for i in range(3)],
                    "views": [1, 3, 1, 2]}  # fmt: skip
    p1.save()
    frame = participants_dataframe(answered_study).set_index("external_pid")
    assert list(frame.index) == ["p1", "p2", "p3", "p4"]  # the screened-out one included
    assert frame.loc["p1", "prolific_pid"] == "5f1e2d3c4b5a"
    assert frame.loc["p1", "completion_code"] == "C0DE1234"
    assert frame.loc["p1", "musical_training"] == "gt5"
    assert (frame.loc["p1", "antiphase_correct"], frame.loc["p1", "antiphase_trials"]) == (2, 3)
    assert frame.loc["p1", "screening_reloads"] == 3 and frame.loc["p2", "screening_reloads"] == 0
    assert list(frame["status"]) == ["done", "done", "trials", "screened_out"]
    assert list(frame["screening_passed"]) == [True, True, True, False]
    stored = Answer.objects.filter(participant__study=answered_study)
    for pid in ("p1", "p2", "p3", "p4"):
        mine = stored.filter(participant__external_pid=pid)
        assert frame.loc[pid, "answers"] == mine.filter(trial__is_practice=False).count()
        assert frame.loc[pid, "practice_answers"] == mine.filter(trial__is_practice=True).count()
    assert list(frame["slots"]) == [8, 8, 8, 0]
    assert frame.loc["p1", "catch_correct"] == 3 and frame.loc["p2", "catch_correct"] == 2


def test_it_defuses_formulas_in_text_columns_of_every_pandas_dtype():
    # pandas 3 stores text as a `str` dtype, not object; categoricals and object columns of
    # mixed values hold text too. Numbers (negative ones included) stay numbers.
    frame = pd.DataFrame({
        "str": pd.Series(["=1+1", "fine"], dtype="string"),
        "object": pd.Series([{"k": 1}, "+2"], dtype=object),
        "category": pd.Categorical(["@A", "b"]),
        "number": [-3, 4],
    })  # fmt: skip
    read = pd.read_csv(io.BytesIO(to_csv(frame)), keep_default_na=False)
    assert list(read["str"]) == ["'=1+1", "fine"]
    assert list(read["object"]) == ["{'k': 1}", "'+2"]
    assert list(read["category"]) == ["'@A", "b"]
    assert list(read["number"]) == [-3, 4]


def test_it_defuses_text_a_spreadsheet_would_run_in_every_csv(client, alice, answered_study):
    p = answered_study.participants.get(external_pid="p3")
    Participant.objects.filter(pk=p.pk).update(
        external_pid="=HYPERLINK(\"http://x\")", session="@SUM(1)",
        questionnaire={"plays_instrument": "+1 guitar"}, browser={"web_audio": "-2+3"},
    )  # fmt: skip
    client.force_login(alice)

    def table(name):
        url = reverse("studies:export_file", args=[answered_study.pk, name])
        frame = pd.read_csv(io.BytesIO(client.get(url).content), keep_default_na=False)
        return frame[frame["participant"] == p.pk]

    row = table("participants.csv").iloc[0]
    assert row["external_pid"] == '\'=HYPERLINK("http://x")'
    assert row["plays_instrument"] == "'+1 guitar" and row["web_audio"] == "'-2+3"
    assert set(table("answers.csv")["session"]) == {"'@SUM(1)"}
    assert set(table("design.csv")["session"]) == {"'@SUM(1)"}
    records = json.loads(
        client.get(reverse("studies:export_file", args=[answered_study.pk, "answers.json"])).content
    )
    assert {r["session"] for r in records if r["participant"] == p.pk} == {"@SUM(1)"}  # as stored
    assert table("answers.csv")["response_ms"].min() > 0  # numbers untouched


def test_it_lists_the_served_file_of_a_clip_normalised_to_the_study_target(
    alice, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    t = np.arange(22050 * 2) / 22050
    tone = (0.1 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)  # (T,)
    catalogue = Catalogue.objects.create(owner=alice, name="tones")
    clips = [clip_from_array(tone * (i + 1), 22050, catalogue, target_lufs=-23.0, name=f"t{i}")
             for i in range(3)]  # fmt: skip
    study = Study.objects.create(owner=alice, name="quiet", instruments=["drums"],
                                 catalogue=catalogue)  # fmt: skip
    Trial.objects.create(study=study, reference=clips[0], candidate_a=clips[1],
                         candidate_b=clips[2], instrument="drums")  # fmt: skip
    at_target = manifest_dataframe(study)  # default target -23: the stored files are served
    assert (at_target["served_sha256"] == at_target["sha256"]).all()
    # Mono plays on both speakers: served (playback) loudness is the measured one + 3.01 LU.
    assert np.allclose(at_target["served_loudness_lufs"], -23.0, atol=0.05)
    assert np.allclose(at_target["loudness_lufs"], -23.0 - 10 * np.log10(2), atol=0.05)

    study.settings = {"loudness_target_lufs": -30.0}
    study.save()
    quieter = manifest_dataframe(study)
    assert not (quieter["served_sha256"] == quieter["sha256"]).any()
    assert np.allclose(quieter["served_loudness_lufs"], -30.0, atol=0.2)
    assert np.allclose(quieter["loudness_lufs"], -26.0, atol=0.2)  # the stored files, measured


def test_it_leaves_the_served_columns_empty_for_a_clip_without_a_file(answered_study):
    manifest = manifest_dataframe(answered_study)  # the fixture's clips have no files
    assert (manifest["served_sha256"] == "").all()
    assert manifest["served_loudness_lufs"].isna().all()


def test_the_snapshot_names_the_site_and_the_model_code_versions_apart(study):
    software = config_snapshot(study)["software"]
    assert software["csn-eval"] == importlib.metadata.version("csn-eval")  # the distribution
    assert software["csn_model"] == csn_model.__version__  # what a checkpoint records
    assert software["django"] == django.get_version()


def test_the_snapshot_says_when_the_site_runs_uninstalled(study, monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert config_snapshot(study)["software"]["csn-eval"] == "not installed"


def test_it_writes_json_floats_exactly_as_stored(client, alice, answered_study):
    margin, heard, tiny = 0.123456789012345678, 0.99999999999, 3e-11
    trial = answered_study.trials.get(model_choice="a", is_catch=False)
    Trial.objects.filter(pk=trial.pk).update(model_margin=margin)
    Answer.objects.filter(trial=trial).update(heard_a=heard, heard_b=tiny, heard_reference=None)
    client.force_login(alice)
    url = reverse("studies:export_file", args=[answered_study.pk, "answers.json"])
    records = [r for r in json.loads(client.get(url).content) if r["trial"] == trial.pk]
    assert records and all(r["model_margin"] == margin for r in records)
    assert all(r["heard_a"] == heard and r["heard_b"] == tiny for r in records)
    assert all(r["heard_reference"] is None for r in records)  # NULL, not NaN or 0.0
    plain = [r for r in json.loads(client.get(url).content) if r["model_choice"] is None]
    assert plain and all(r["agree"] is None for r in plain)
    assert all(r["created_at"].endswith("Z") for r in records)
    csv_text = client.get(reverse("studies:export_file", args=[answered_study.pk, "answers.csv"]))
    assert repr(margin) in csv_text.content.decode()  # the CSV holds the same digits


def test_it_writes_json_values_as_the_csv_writes_them():
    frame = pd.DataFrame({
        "when": pd.to_datetime(["2026-01-02T03:04:05.123456Z", None], format="ISO8601"),
        "day": pd.to_datetime(["2026-01-02", "2026-01-03"]),
        "count": pd.array([7, None], dtype="Int64"),
        "value": [0.1 + 0.2, np.nan],
        "flag": [True, False],
        "text": ["=1+1", None],
    })  # fmt: skip
    records = json.loads(to_json(frame))
    csv_rows = pd.read_csv(io.BytesIO(to_csv(frame)), dtype=str, keep_default_na=False)
    assert records[0]["when"] == csv_rows["when"][0] == "2026-01-02 03:04:05.123456+00:00"
    assert [r["day"] for r in records] == list(csv_rows["day"]) == ["2026-01-02", "2026-01-03"]
    assert records[1]["when"] is None and records[1]["count"] is None
    assert records[0]["count"] == 7 and records[0]["value"] == 0.30000000000000004
    assert records[1]["value"] is None
    assert [r["flag"] for r in records] == [True, False]
    assert [r["text"] for r in records] == ["=1+1", None]  # as stored, no apostrophe
    assert json.loads(to_json(frame.iloc[:0])) == []
