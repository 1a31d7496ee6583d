"""Codes and recruitment ids in the exported CSVs survive a round trip through pandas read as
the codebook says (its `text` columns as strings), however much they look like numbers: a
researcher's own study code `01234567`, Prolific ids of digits, a code stored before the codes
changed (`12E45678`, which pandas' default inference reads as inf)."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import pytest

from evalsite.studies.export import export_zip
from evalsite.studies.models import Participant
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import finish, to_step

pytestmark = pytest.mark.django_db

PROLIFIC = "https://app.prolific.com/submissions/complete"


def _read_as_the_docs_say(archive: zipfile.ZipFile, folder: str, table: str) -> pd.DataFrame:
    """docs/experimenter.md's snippet: the codebook's text columns as strings."""
    codebook = json.loads(archive.read(f"{folder}/codebook.json"))
    text = [c for c, d in codebook[table].items() if d["type"].startswith("text")]
    return pd.read_csv(
        io.BytesIO(archive.read(f"{folder}/{table}.csv")),
        dtype=dict.fromkeys(text, str),
        keep_default_na=False,
        na_values=[""],
    )


def test_it_round_trips_numeric_looking_codes_and_ids_through_pandas(client, listening_study):
    listening_study.settings |= {"completion_code": "01234567"}
    listening_study.save()
    ids = {"PROLIFIC_PID": "12345678", "STUDY_ID": "00012", "SESSION_ID": "1E5"}
    finished = finish(client, to_step(client, enter(client, listening_study, **ids), "practice"))
    early = to_step(client, enter(client, listening_study, pid="007"), "practice")
    finish(client, early)
    # a code stored before the codes changed, kept as it is
    Participant.objects.filter(pk=early.pk).update(completion_code="12E45678")
    # a Prolific URL set afterwards: a revisit of the early finisher's done page shows its code
    listening_study.settings |= {"prolific_completion_url": f"{PROLIFIC}?cc=01234567"}
    listening_study.save()
    folder = f"study-{listening_study.pk}"
    with zipfile.ZipFile(io.BytesIO(export_zip(listening_study))) as archive:
        people = _read_as_the_docs_say(archive, folder, "participants").set_index("participant")
        answers = _read_as_the_docs_say(archive, folder, "answers")
    one, two = people.loc[finished.pk], people.loc[early.pk]
    assert (one["completion_code"], two["completion_code"]) == ("01234567", "12E45678")
    assert pd.isna(one["completion_code_now"]) and two["completion_code_now"] == "01234567"
    assert (one["prolific_pid"], one["prolific_study_id"], one["prolific_session_id"]) == (
        "12345678", "00012", "1E5",
    )  # fmt: skip
    assert (one["participant_id"], two["participant_id"], two["external_pid"]) == (
        "12345678", "007", "007",
    )  # fmt: skip
    assert set(answers.loc[answers["participant"] == finished.pk, "session"]) == {"1E5"}
    # no model choices here: every margin cell is empty, still a number column (NaN), not ''
    assert answers["model_margin"].isna().all() and answers["model_margin"].dtype.kind == "f"


def test_a_random_participant_id_never_starts_like_a_spreadsheet_formula(client, listening_study):
    # token_urlsafe's alphabet holds "-": 1 in 64 tokens started with it, and participants.csv
    # then wrote the ID the participant quotes as "'-..." (export.FORMULA_START)
    from evalsite.stimuli.models import new_token

    assert not [t for t in (new_token() for _ in range(3000)) if t.startswith("-")]
    someone = to_step(client, enter(client, listening_study), "practice")
    assert someone.quoted_id == someone.token[:8] and len(someone.token) >= 22
