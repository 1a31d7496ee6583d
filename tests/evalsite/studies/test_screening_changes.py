"""A participant in the screening keeps the screening it started: the researcher may edit the
study's screening settings meanwhile, and a second tab may load the page while the last answer
is being scored; the page never fails and the participant always moves on."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies import export_answers, flow_screening
from evalsite.studies.models import Participant
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.form_pages import page_version
from tests.evalsite.studies.participant_steps import DESKTOP_UA, post, screen, to_step, url
from tests.evalsite.studies.test_experimenter import _study_post

pytestmark = pytest.mark.django_db

TURN_OFF = {"antiphase": {"screening": ""}, "huggins": {"screening": "on", "huggins": ""}}


def _answer_one(client, p: Participant, correct: bool = True) -> None:
    p.refresh_from_db()
    target = flow_screening.screening_key(p)["target"]
    choice = target if correct else target % 3 + 1
    n = len(p.screening.get("answers", []))
    draw = flow_screening.screening_draw(p)
    post(client, p, "screening", n=n, draw=draw, choice=choice, rt_ms=700)
    p.refresh_from_db()


def _edit(experimenter, study, **fields) -> None:
    researcher = Client()
    researcher.force_login(experimenter)
    data = _study_post(name=study.name, instruments=["drums", "guitar"], **fields,
                       version=page_version(researcher, study))  # fmt: skip
    assert researcher.post(reverse("studies:study_edit", args=[study.pk]), data).status_code == 302


@pytest.mark.parametrize("off", ["antiphase", "huggins"])
def test_a_participant_finishes_the_screening_it_started_when_the_study_turns_it_off(
    experimenter, listening_catalogue, off
):
    study = make_study(experimenter, listening_catalogue, huggins=True)
    client = Client(raise_request_exception=False)
    p = to_step(client, enter(client, study, pid="mid-screen"), "screening")
    for _ in range(3 if off == "huggins" else 1):  # into the Huggins part, or mid-antiphase
        _answer_one(client, p)
    _edit(experimenter, study, **TURN_OFF[off])
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert page.status_code == 200 and b'name="draw"' in page.content
    audio = reverse("studies:screening_audio", args=[p.token, len(p.screening["answers"]), 0])
    assert client.get(audio).status_code == 200
    screen(client, p)
    p.refresh_from_db()
    kinds = [a["kind"] for a in p.screening["answers"]]
    assert kinds == ["antiphase", "antiphase", "huggins", "huggins"]
    assert p.step == "instructions" and p.screening_passed is True
    row = export_answers.participants_dataframe(study).set_index("participant").loc[p.pk]
    assert (row["antiphase_trials"], row["huggins_trials"], row["huggins_correct"]) == (2, 2, 2)


def test_the_huggins_screening_turned_on_meanwhile_is_not_added_to_a_started_one(
    client, experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue)
    p = to_step(client, enter(client, study), "screening")
    _answer_one(client, p)
    _edit(experimenter, study, huggins="on")
    screen(client, p)
    p.refresh_from_db()
    assert [a["kind"] for a in p.screening["answers"]] == ["antiphase", "antiphase"]
    assert p.step == "instructions"


def _started_before_kinds_were_kept(p: Participant) -> None:
    p.refresh_from_db()
    Participant.objects.filter(pk=p.pk).update(
        screening={k: v for k, v in p.screening.items() if k != "kinds"}
    )


def test_a_participant_mid_screening_from_before_the_kinds_were_kept_finishes_the_kind_it_began(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, huggins=True)
    client = Client(raise_request_exception=False)
    p = to_step(client, enter(client, study), "screening")
    for _ in range(3):
        _answer_one(client, p)
    _started_before_kinds_were_kept(p)
    _edit(experimenter, study, **TURN_OFF["huggins"])
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 200
    screen(client, p)
    p.refresh_from_db()
    assert [a["kind"] for a in p.screening["answers"]][-1] == "huggins"
    assert p.step == "instructions" and p.screening_passed is True


def test_a_participant_at_the_screening_with_nothing_left_to_answer_moves_on(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue)
    client = Client(raise_request_exception=False)
    p = to_step(client, enter(client, study), "screening")
    _started_before_kinds_were_kept(p)
    _edit(experimenter, study, **TURN_OFF["antiphase"])
    assert client.get(reverse("studies:screening_audio", args=[p.token, 0, 0])).status_code == 404
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA, follow=True)
    p.refresh_from_db()
    assert page.status_code == 200 and p.step == "instructions"
    assert p.screening_passed is None  # no screening run: not screened out, not passed


@pytest.mark.parametrize("correct", [True, False])
def test_a_page_loaded_after_the_last_screening_answer_was_stored_but_not_yet_scored_moves_on(
    experimenter, listening_catalogue, correct
):
    study = make_study(experimenter, listening_catalogue)
    client = Client(raise_request_exception=False)
    p = to_step(client, enter(client, study), "screening")
    _answer_one(client, p, correct)
    answers = p.screening["answers"]
    last = {**answers[0], "i": 1, "correct": correct}  # stored; advance() not yet run
    stored = {**p.screening, "answers": [*answers, last]}
    Participant.objects.filter(pk=p.pk).update(screening=stored)
    assert client.get(reverse("studies:screening_audio", args=[p.token, 2, 0])).status_code == 404
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA, follow=True)
    p.refresh_from_db()
    assert page.status_code == 200
    assert p.step == ("instructions" if correct else "screened_out")
    assert p.screening_passed is correct
