"""A Prolific completion URL and the study's completion code go together: Prolific accepts only
the code(s) set on its study, so the settings page refuses a URL without a study-wide code (or
takes the code from the URL's `cc`), the Open button refuses a study saved without one, and the
done page, the link back to Prolific and participants.csv all carry the same code."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.urls import reverse

from evalsite.studies.export import export_file
from evalsite.studies.flow_prolific import is_prolific
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.form_pages import settings_page_values
from tests.evalsite.studies.participant_steps import finish, to_step, url

pytestmark = pytest.mark.django_db

COMPLETE = "https://app.prolific.com/submissions/complete"


def _save(client, study, **changes):
    """Save the study's settings page as loaded, with `changes` typed in."""
    values = settings_page_values(client, study) | changes
    return client.post(reverse("studies:study_edit", args=[study.pk]), values)


@pytest.mark.parametrize("link", [COMPLETE, f"{COMPLETE}?cc={{code}}"])
def test_it_refuses_a_prolific_url_without_a_study_wide_completion_code(client, alice, study, link):
    client.force_login(alice)
    response = _save(client, study, prolific_completion_url=link, completion_code="")
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "Completion code" in str(errors["completion_code"])
    assert "Prolific accepts only" in str(errors["completion_code"])
    study.refresh_from_db()
    assert not study.setting("prolific_completion_url")


def test_it_takes_the_completion_code_from_the_urls_cc_when_none_is_given(client, alice, study):
    client.force_login(alice)
    link = f"{COMPLETE}?cc=C7XK2P9Q"
    assert _save(client, study, prolific_completion_url=link, completion_code="").status_code == 302
    study.refresh_from_db()
    assert study.setting("completion_code") == "C7XK2P9Q"
    assert study.setting("prolific_completion_url") == link
    html = client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()
    assert "code C7XK2P9Q" in html


def test_it_refuses_a_url_whose_cc_differs_from_the_completion_code(client, alice, study):
    client.force_login(alice)
    link = f"{COMPLETE}?cc=C7XK2P9Q"
    response = _save(client, study, prolific_completion_url=link, completion_code="OTHER123")
    assert response.status_code == 200
    message = str(response.context["form"].errors["completion_code"])
    assert "cc=C7XK2P9Q" in message and "OTHER123" in message
    ok = _save(client, study, prolific_completion_url=link, completion_code="C7XK2P9Q")
    assert ok.status_code == 302


def test_it_refuses_a_urls_cc_longer_than_a_completion_code_may_be(client, alice, study):
    client.force_login(alice)
    response = _save(client, study, prolific_completion_url=f"{COMPLETE}?cc={'X' * 33}")
    assert response.status_code == 200
    assert "longer than the 32 characters" in str(response.context["form"].errors)


@pytest.mark.parametrize("status", ["draft", "paused"])
def test_open_refuses_a_study_saved_with_a_prolific_url_and_no_code(client, alice, study, status):
    """A study saved before the settings page refused this (or through the admin) is not
    changed: Open says what to fix, the overview says it too."""
    study.status = status
    study.settings |= {"prolific_completion_url": COMPLETE, "completion_code": ""}
    study.save()
    client.force_login(alice)
    response = client.post(
        reverse("studies:study_status", args=[study.pk]), {"action": "open"}, follow=True
    )
    html = response.content.decode()
    assert "Not opened" in html and "Completion code" in html
    study.refresh_from_db()
    assert study.status == status and study.setting("completion_code") == ""
    assert 'class="error completion-code"' in html


def test_the_done_page_the_link_and_the_export_carry_the_urls_code(client, listening_study):
    """A study saved with the URL as Prolific gives it and no code of its own (before the
    settings page filled it in): every participant gets the URL's code, not a random one."""
    listening_study.settings |= {"prolific_completion_url": f"{COMPLETE}?cc=C7XK2P9Q"}
    listening_study.save()
    codes = []
    for pid in ("pp-1", "pp-2"):
        p = to_step(client, enter(client, listening_study, PROLIFIC_PID=pid), "practice")
        finish(client, p)
        page = client.get(url(p)).content.decode()
        assert 'id="completion-code">C7XK2P9Q<' in page
        assert f'href="{COMPLETE}?cc=C7XK2P9Q"' in page
        codes.append(p.completion_code)
    assert codes == ["C7XK2P9Q", "C7XK2P9Q"]
    frame = pd.read_csv(
        io.BytesIO(export_file(listening_study, "participants.csv")), dtype={"completion_code": str}
    )
    assert set(frame["completion_code"]) == {"C7XK2P9Q"}


def test_the_link_sends_the_code_the_done_page_shows(client, listening_study):
    """A study whose code and URL disagree (saved before they were checked): the link sends the
    code the page shows and participants.csv records, in place of the URL's."""
    listening_study.settings |= {
        "prolific_completion_url": f"{COMPLETE}?cc=OLD12345&x=1",
        "completion_code": "C7XK2P9Q",
    }
    listening_study.save()
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-1"), "practice")
    finish(client, p)
    page = client.get(url(p)).content.decode()
    assert p.completion_code == "C7XK2P9Q" and 'id="completion-code">C7XK2P9Q<' in page
    assert f'href="{COMPLETE}?x=1&amp;cc=C7XK2P9Q"' in page


def test_the_settings_page_help_pairs_the_code_with_the_url(client, alice, study):
    client.force_login(alice)
    form = client.get(reverse("studies:study_edit", args=[study.pk])).context["form"]
    assert "Prolific" in form.fields["completion_code"].help_text


def test_a_participant_who_finished_before_the_pairing_is_sent_the_code_prolific_accepts(
    client, listening_study
):
    """A study saved with the URL's cc and no code of its own: a participant who finished before
    the code was taken from the URL holds a random code (findings_rdiff.md, 2). Their done page
    shows, and the link sends, the URL's code, which Prolific accepts; participants.csv keeps the
    code they were given when they finished (`completion_code`) and says beside it what a revisit
    shows now (`completion_code_now`), empty for those shown their stored code."""
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-early"), "practice")
    finish(client, p)  # no URL yet: a random code, as everyone got before the pairing
    p.refresh_from_db()
    given = p.completion_code
    assert given and given != "C7XK2P9Q"
    listening_study.settings |= {"prolific_completion_url": f"{COMPLETE}?cc=C7XK2P9Q"}
    listening_study.save()
    page = client.get(url(p)).content.decode()
    assert 'id="completion-code">C7XK2P9Q<' in page
    assert f'href="{COMPLETE}?cc=C7XK2P9Q"' in page
    later = finish(client, to_step(client, enter(client, listening_study), "practice"))
    unfinished = enter(client, listening_study)  # at the browser check
    frame = pd.read_csv(
        io.BytesIO(export_file(listening_study, "participants.csv")),
        dtype=str,
        keep_default_na=False,
    ).set_index("participant")
    codes = frame[["completion_code", "completion_code_now"]]
    assert codes.loc[str(p.pk)].tolist() == [given, "C7XK2P9Q"]
    assert codes.loc[str(later.pk)].tolist() == ["C7XK2P9Q", ""]
    assert codes.loc[str(unfinished.pk)].tolist() == ["", ""]


def test_an_edited_code_leaves_earlier_finishers_the_code_they_were_shown(
    client, experimenter, listening_study
):
    """The study's code edited while it is open (findings_rdiff2, 1): who finished before the
    edit was shown, and sent to Prolific, the old code, which participants.csv keeps as their
    `completion_code`, the one to match Prolific's submissions against; `completion_code_now`
    says their done page would now show the new one."""
    client.force_login(experimenter)
    assert _save(client, listening_study, prolific_completion_url=f"{COMPLETE}?cc=AAAA1111",
                 completion_code="AAAA1111").status_code == 302  # fmt: skip
    p = finish(client, to_step(client, enter(client, listening_study, PROLIFIC_PID="pp1"),
                               "practice"))  # fmt: skip
    assert 'id="completion-code">AAAA1111<' in client.get(url(p)).content.decode()
    assert _save(client, listening_study, prolific_completion_url=f"{COMPLETE}?cc=BBBB2222",
                 completion_code="BBBB2222").status_code == 302  # fmt: skip
    listening_study.refresh_from_db()
    assert listening_study.status == "open"
    finish(client, to_step(client, enter(client, listening_study, PROLIFIC_PID="pp2"), "practice"))
    frame = pd.read_csv(
        io.BytesIO(export_file(listening_study, "participants.csv")),
        dtype=str,
        keep_default_na=False,
    ).set_index("prolific_pid")
    codes = frame[["completion_code", "completion_code_now"]]
    assert codes.loc["pp1"].tolist() == ["AAAA1111", "BBBB2222"]
    assert codes.loc["pp2"].tolist() == ["BBBB2222", ""]


def test_a_urls_cc_too_long_to_store_does_not_stop_anyone_finishing(
    client, experimenter, listening_study
):
    """An open study saved (before the check, or in the admin) with a URL whose cc is longer
    than a stored completion code may be (32): each participant still finishes (the last answer
    was a 500, findings_rdiff.md, 3); the link sends the URL's code, the done page shows it,
    and the overview says what is wrong."""
    long_cc = "X" * 40
    listening_study.settings |= {
        "prolific_completion_url": f"{COMPLETE}?cc={long_cc}",
        "completion_code": "",
    }
    listening_study.save()
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-long"), "practice")
    finish(client, p)
    p.refresh_from_db()
    assert p.step == "done" and len(p.completion_code) <= 32
    page = client.get(url(p)).content.decode()
    assert f'id="completion-code">{long_cc}<' in page and f"?cc={long_cc}" in page
    client.force_login(experimenter)
    html = client.get(reverse("studies:study_detail", args=[listening_study.pk])).content.decode()
    assert 'class="error completion-code"' in html and "longer than the 32 characters" in html


def test_a_code_in_the_url_is_cleaned_as_a_typed_one(client, alice, study):
    client.force_login(alice)
    link = f"{COMPLETE}?cc=C7XK2P9Q%20"
    assert _save(client, study, prolific_completion_url=link, completion_code="").status_code == 302
    study.refresh_from_db()
    assert study.setting("completion_code") == "C7XK2P9Q"


@pytest.mark.parametrize("code", ["", "C7XK2P9Q"])
def test_it_refuses_an_upper_case_cc_key(client, alice, study, code):
    """Prolific's completion URL names its code `cc`: a `CC=` pasted is neither missed (refused as
    no code) nor carried beside the `cc` the link adds (two codes sent)."""
    client.force_login(alice)
    link = f"{COMPLETE}?CC=C7XK2P9Q"
    response = _save(client, study, prolific_completion_url=link, completion_code=code)
    assert response.status_code == 200
    message = str(response.context["form"].errors["completion_code"])
    assert "CC=C7XK2P9Q" in message and "lower-case cc" in message


@pytest.mark.parametrize(
    "link", ["https://www.example.org/return?code={code}", "https://www.example.org/return/{code}"]
)
def test_another_panels_url_gives_each_participant_their_own_code(
    client, experimenter, listening_study, link
):
    """Only Prolific's completion URLs need one code for everyone: a lab panel's or SONA's URL
    with a {code} slot sends each participant their own (findings_rdiff.md, 7)."""
    client.force_login(experimenter)
    response = _save(client, listening_study, prolific_completion_url=link, completion_code="")
    assert response.status_code == 302
    client.logout()
    codes = []
    for pid in ("lab-1", "lab-2"):
        p = to_step(client, enter(client, listening_study, pid=pid), "practice")
        finish(client, p)
        p.refresh_from_db()
        page = client.get(url(p)).content.decode()
        assert f'id="completion-code">{p.completion_code}<' in page
        assert f'href="{link.replace("{code}", p.completion_code)}"' in page
        assert "Return to the site that sent you here" in page and "Prolific" not in page
        codes.append(p.completion_code)
    assert len(set(codes)) == 2


@pytest.mark.parametrize(
    "link",
    [
        "https://app.prolific.com/submissions/complete",
        "https://APP.PROLIFIC.COM/submissions/complete",
        "https://app.prolific.com:443/submissions/complete",
        "https://app.prolific.com./submissions/complete",
        "https://app.prolific.co/submissions/complete",
        "https://app.prolific.ac/submissions/complete",
        "https://prolific.ac./submissions/complete",
    ],
)
def test_it_knows_prolifics_hosts_old_and_new_and_with_a_trailing_dot(link):
    """prolific.ac was Prolific's first domain and older templates still name it; a host ending
    in a dot is the same host to a browser (findings_rpf2.md, 1)."""
    assert is_prolific(link)


@pytest.mark.parametrize(
    "link",
    [
        "https://prolific.com.evil.org/submissions/complete",
        "https://prolific.ac.evil.org/submissions/complete",
        "https://evilprolific.com/submissions/complete",
        "https://evilprolific.ac/submissions/complete",
        "https://app.prolific.com@evil.org/submissions/complete",
        "https://app.prolific.com\\@evil.org/submissions/complete",
        "https://app.xn--prolifc-wxa.com/submissions/complete",
        "https://app.prolific.com../submissions/complete",
        "https://www.example.org/return?code={code}",
    ],
)
def test_it_does_not_take_a_look_alike_host_for_prolific(link):
    assert not is_prolific(link)


@pytest.mark.parametrize(
    "link",
    [
        "https://app.prolific.ac/submissions/complete?cc=C7XK2P9Q",
        "https://app.prolific.com./submissions/complete?cc=C7XK2P9Q",
    ],
)
def test_an_old_domain_or_trailing_dot_url_sends_everyone_its_cc(client, alice, study, link):
    client.force_login(alice)
    assert _save(client, study, prolific_completion_url=link, completion_code="").status_code == 302
    study.refresh_from_db()
    assert study.setting("completion_code") == "C7XK2P9Q"
    study.status = "open"
    study.save()
    client.logout()
    p = to_step(client, enter(client, study, PROLIFIC_PID="pp"), "practice")
    finish(client, p)
    p.refresh_from_db()
    assert p.completion_code == "C7XK2P9Q"
    page = client.get(url(p)).content.decode()
    assert f'href="{link}"' in page
    assert "Return to Prolific" in page
