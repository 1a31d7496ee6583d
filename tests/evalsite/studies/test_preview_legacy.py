"""A participant an older version (73fcce1) let in through a preview link after the study
opened: that version made a real participant of a `pid=preview-...` entry to an open study
(`is_preview` false, its answers counted). Since then a preview link is refused once the study
left draft; the participant that version stored still comes back with its link, as any
participant does, and only previews (stored as such) and new entries by a preview link are
refused (findings_rupg 2)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies import flow, participant
from evalsite.studies.models import Answer, Participant, Study
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    finish_practice,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db

PID = "preview-abcd1234"
PREVIEW_LINK = "This is a preview link"


def _link(study: Study, pid: str = PID) -> str:
    return reverse("studies:entry", args=[study.slug]) + f"?pid={pid}"


def _let_in_by_the_older_version(study: Study) -> tuple[Participant, Client]:
    """The participant 73fcce1 made of a preview link opened on the open study: the insert its
    entry made (that version checked no pid), bound to a browser through the session, as that
    version bound them, and taken through the flow to 3 answered main trials."""
    p = flow.create(study, {"pid": PID}, DESKTOP_UA, "en")
    assert p is not None and not p.is_preview
    browser = Client()
    session = browser.session
    session[participant.SESSION_KEY] = [p.token]
    session.save()
    finish_practice(browser, to_step(browser, p, "practice"))
    for _ in range(3):
        answer_current(browser, p)
    assert Answer.objects.filter(participant=p, trial__is_practice=False).count() == 3
    return p, browser


@pytest.mark.parametrize("status", [Study.Status.OPEN, Study.Status.PAUSED])
def test_a_participant_an_older_version_let_in_by_a_preview_link_comes_back_with_it(
    listening_study, status
):
    p, browser = _let_in_by_the_older_version(listening_study)
    answers = list(Answer.objects.filter(participant=p).values_list("pk", flat=True))
    Study.objects.filter(pk=listening_study.pk).update(status=status)
    # its browser, and another one (a generic pid: the id is the key), by its link
    for client in (browser, Client()):
        response = client.get(_link(listening_study), HTTP_USER_AGENT=DESKTOP_UA)
        assert response.status_code == 302 and response.url == url(p)
        page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
        shown = page.content.decode()  # its trial page, with no preview banner or refusal
        assert page.status_code == 200 and 'value="trials"' in shown
        assert "Preview of a draft study" not in shown and "This was a preview" not in shown
    assert list(listening_study.participants.values_list("pk", flat=True)) == [p.pk]
    assert list(Answer.objects.filter(participant=p).values_list("pk", flat=True)) == answers


def test_a_preview_link_naming_no_stored_participant_is_still_refused_beside_one(
    listening_study,
):
    _let_in_by_the_older_version(listening_study)
    response = Client().post(_link(listening_study, "preview-e6b88128"))
    assert response.status_code == 403 and PREVIEW_LINK in response.content.decode()
    assert listening_study.participants.count() == 1


def test_a_stored_preview_is_refused_once_its_study_left_draft(listening_study):
    # Opening deletes a draft's previews; were one left (stored `is_preview`), its link is still
    # a preview's, and the stored flag, not the pid, decides.
    preview = Participant.objects.create(
        study=listening_study, seed=7, external_pid=PID, is_preview=True
    )
    response = Client().get(_link(listening_study), HTTP_USER_AGENT=DESKTOP_UA)
    assert response.status_code == 403 and PREVIEW_LINK in response.content.decode()
    assert listening_study.participants.get().pk == preview.pk
