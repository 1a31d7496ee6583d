"""The screening through the participant's page: passing, failing (screened out, sent back to
Prolific with the study's screen-out code), Huggins after antiphase, and a sound per draw.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from evalsite.studies import flow_screening, screening
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import post, screen, to_step, url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("back", "expected"),
    [("https://app.prolific.com/submissions/complete?cc=DONE1", "?cc=C1SCREEN"),
     ("https://app.prolific.com/submissions/complete", "?cc=C1SCREEN"),
     ("https://example.org/back?code={code}&x=1", "?code=C1SCREEN&x=1")],
)  # fmt: skip
def test_it_sends_a_screened_out_prolific_participant_back_with_the_screen_out_code(
    client, listening_study, back, expected
):
    listening_study.settings = {**listening_study.settings, "screen_out_code": "C1SCREEN",
                                "prolific_completion_url": back}  # fmt: skip
    listening_study.save()
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-so"), "screening")
    screen(client, p, correct=False)
    p.refresh_from_db()
    assert p.screen_out_code == "C1SCREEN"
    page = client.get(url(p)).content.decode()
    assert f'href="{back.split("?")[0]}{expected}"'.replace("&", "&amp;") in page
    assert "DONE1" not in page  # never the completion code


def test_it_offers_no_prolific_link_with_a_random_screen_out_code(client, listening_study):
    back = {"prolific_completion_url": "https://app.prolific.com/x"}
    listening_study.settings = {**listening_study.settings, **back}
    listening_study.save()
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-so2"), "screening")
    screen(client, p, correct=False)
    assert b'id="prolific"' not in client.get(url(p)).content


def test_it_screens_out_a_participant_who_fails_the_antiphase_test(client, listening_study):
    p = to_step(client, enter(client, listening_study), "screening")
    screen(client, p, correct=False)
    p.refresh_from_db()
    assert p.step == "screened_out" and p.screening_passed is False
    assert p.screen_out_code.startswith("SO-")
    assert not p.slots.exists()  # no trial reserved for someone who cannot take part
    assert b"screen-out-code" in client.get(url(p)).content


def test_it_runs_huggins_after_antiphase_when_enabled(client, experimenter, listening_catalogue):
    from tests.evalsite.studies.conftest import make_study

    study = make_study(experimenter, listening_catalogue, huggins=True)
    p = to_step(client, enter(client, study), "screening")
    screen(client, p)
    p.refresh_from_db()
    kinds = [a["kind"] for a in p.screening["answers"]]
    assert kinds == ["antiphase", "antiphase", "huggins", "huggins"]
    assert p.step == "instructions" and p.screening_passed is True


def test_it_serves_the_screening_sound_of_the_current_trial_only(client, listening_study, settings):
    p = to_step(client, enter(client, listening_study), "screening")
    page = client.get(url(p))
    audio = reverse("studies:screening_audio", args=[p.token, 0, 0])
    assert audio in page.content.decode()
    ok = client.get(audio)
    assert ok.status_code == 200 and ok["Content-Type"] == "audio/wav"
    again = client.get(audio, HTTP_RANGE="bytes=0-")
    assert b"".join(again.streaming_content) == b"".join(ok.streaming_content)  # the same sound
    assert not list(Path(settings.MEDIA_ROOT).glob("**/screen_*"))  # nothing kept per participant
    assert client.get(reverse("studies:screening_audio", args=[p.token, 1, 0])).status_code == 404
    assert client.get(reverse("studies:screening_audio", args=[p.token, 0, 1])).status_code == 404


def test_a_reloaded_screening_page_draws_a_new_trial_and_refuses_answers_to_the_old_one(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "screening")
    first = reverse("studies:screening_audio", args=[p.token, 0, 0])
    assert first in client.get(url(p)).content.decode()
    reloaded = client.get(url(p)).content.decode()  # the sound was heard once; now a reload
    second = reverse("studies:screening_audio", args=[p.token, 0, 1])
    assert second in reloaded and 'name="draw" value="1"' in reloaded
    assert client.get(first).status_code == 404  # the first draw cannot be heard again
    assert client.get(second).status_code == 200
    p.refresh_from_db()
    assert flow_screening.screening_draw(p) == 1 and p.screening["views"] == [2]
    old_key = screening.answer_key(p.seed, "antiphase", 0, 0)["target"]
    post(client, p, "screening", n=0, draw=0, choice=old_key, rt_ms=800)  # the old tab's answer
    p.refresh_from_db()
    assert p.screening.get("answers", []) == []  # not stored: it answers sounds not shown now
    key = flow_screening.screening_key(p)["target"]
    assert key == screening.answer_key(p.seed, "antiphase", 0, 1)["target"]
    post(client, p, "screening", n=0, draw=1, choice=key, rt_ms=800)
    p.refresh_from_db()
    assert p.screening["answers"] == [
        {"kind": "antiphase", "i": 0, "draw": 1, "choice": key, "rt_ms": 800, "correct": True}
    ]
    client.get(url(p))  # the next trial's first view is its draw 0
    p.refresh_from_db()
    assert p.screening["views"] == [2, 1] and flow_screening.screening_draw(p) == 0
