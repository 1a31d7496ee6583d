"""The limit on new participants per client address and study (entry_limit, CSN_ENTRY_LIMIT):
a script opening the study link with fresh ids is refused; people coming back never are."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from django.urls import reverse

from evalsite.studies import flow, participant
from evalsite.studies.export import export_zip
from evalsite.studies.export_codebook import CODEBOOK
from evalsite.studies.models import Participant, Study
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import DESKTOP_UA

pytestmark = pytest.mark.django_db

LIMIT = 3
MULTIPLE = 2  # a /48 network's count: LIMIT * MULTIPLE, over all its /64s
TOO_MANY = "Too many new sessions of this study were started from your network"


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.CSN_ENTRY_LIMIT = LIMIT
    settings.CSN_ENTRY_WINDOW_MINUTES = 10
    settings.CSN_ENTRY_LIMIT_48_MULTIPLE = MULTIPLE


def _open(client, study, **params):
    """Continue from the study link's welcome page (the POST that makes a participant)."""
    link = reverse("studies:entry", args=[study.slug])
    return client.post(f"{link}?{urlencode(params)}" if params else link)


def _fill(study, **client_kwargs) -> list[Participant]:
    """LIMIT new participants, each from a fresh browser (as a script would) at one address."""
    return [enter(Client(**client_kwargs), study, pid=f"bot{n}") for n in range(LIMIT)]


def test_it_refuses_a_new_participant_over_the_limit_and_creates_nothing(listening_study):
    _fill(listening_study)
    for params in ({"pid": "bot-next"}, {}):  # a new id, or none at all
        response = _open(Client(), listening_study, **params)
        assert response.status_code == 429
        assert TOO_MANY in response.content.decode()
    assert Participant.objects.filter(study=listening_study).count() == LIMIT


def test_its_refusal_says_nothing_of_the_participants_counted(listening_study):
    entered = _fill(listening_study)
    page = _open(Client(), listening_study, pid="bot-next").content.decode()
    assert not any(p.external_pid in page or p.token in page for p in entered)
    message = re.search(r'<p id="refused">(.*?)</p>', page, re.S)
    assert message is not None and message.group(1) == (
        TOO_MANY + " in a short time. Please try again in a few minutes."
    )


def test_it_refuses_in_the_participants_language(listening_study):
    _fill(listening_study)
    response = _open(Client(), listening_study, pid="bot-next", lang="ja")
    assert response.status_code == 429
    assert "新しいセッションが多数開始されました" in response.content.decode()


def test_it_lets_participants_come_back_from_the_same_address_over_the_limit(listening_study):
    browser = Client()
    first = enter(browser, listening_study, pid="bot0")
    for n in range(1, LIMIT):
        enter(Client(), listening_study, pid=f"bot{n}")
    assert enter(Client(), listening_study, pid="bot0").pk == first.pk  # the id, a new browser
    bound = browser.get(reverse("studies:entry", args=[listening_study.slug]))
    assert bound.status_code == 302 and first.token in bound["Location"]  # the bound browser


def test_it_counts_each_address_apart(listening_study):
    _fill(listening_study)
    assert enter(Client(REMOTE_ADDR="198.51.100.4"), listening_study, pid="person").external_pid
    assert _open(Client(), listening_study, pid="bot-next").status_code == 429


def test_it_counts_each_study_apart(listening_study, experimenter, listening_catalogue):
    _fill(listening_study)
    other = make_study(experimenter, listening_catalogue)
    assert enter(Client(), other, pid="bot-next").study == other


def test_it_forgets_entries_older_than_the_window(listening_study):
    entered = _fill(listening_study)
    Participant.objects.filter(pk=entered[0].pk).update(
        started_at=entered[0].started_at - timedelta(minutes=11)
    )
    enter(Client(), listening_study, pid="bot-next")
    assert _open(Client(), listening_study, pid="bot-after").status_code == 429


def test_it_has_no_limit_at_zero(listening_study, settings):
    settings.CSN_ENTRY_LIMIT = 0
    entered = [enter(Client(), listening_study, pid=f"bot{n}") for n in range(LIMIT + 2)]
    assert {p.entry_address for p in entered} == {""}  # nothing stored while it is off


def test_it_counts_the_right_most_forwarded_address_behind_the_proxy(listening_study, settings):
    settings.CSN_BEHIND_PROXY = True
    settings.CSN_TRUSTED_PROXIES = ["10.0.0.2"]
    proxy = {"REMOTE_ADDR": "10.0.0.2"}  # every request arrives from the proxy
    for n in range(LIMIT):  # the client writes what it likes to the left of the proxy's entry
        enter(Client(**proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.9"),
              listening_study, pid=f"bot{n}")  # fmt: skip
    spoofed = Client(**proxy, HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.9")
    assert _open(spoofed, listening_study, pid="bot-next").status_code == 429
    someone_else = Client(**proxy, HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert _open(someone_else, listening_study, pid="person").status_code == 302


def test_a_client_reaching_gunicorn_directly_cannot_pick_its_address(listening_study, settings):
    settings.CSN_BEHIND_PROXY = True  # 198.51.100.4 is no trusted proxy: its header is dropped
    for n in range(LIMIT):
        enter(Client(REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}"),
              listening_study, pid=f"bot{n}")  # fmt: skip
    spoofed = Client(REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert _open(spoofed, listening_study, pid="bot-next").status_code == 429


def test_it_counts_an_ipv6_client_by_its_64_network(listening_study):
    for n in range(LIMIT):
        enter(Client(REMOTE_ADDR=f"2001:db8:1:2::{n + 1}"), listening_study, pid=f"bot{n}")
    same_network = Client(REMOTE_ADDR="2001:db8:1:2:ffff::1")
    assert _open(same_network, listening_study, pid="bot-next").status_code == 429
    next_network = Client(REMOTE_ADDR="2001:db8:1:3::1")
    assert _open(next_network, listening_study, pid="person").status_code == 302


def test_it_counts_an_ipv6_clients_48_network_at_a_multiple_of_the_limit(listening_study):
    for subnet in (1, 2):  # two /64s of one /48, each at its own limit
        for n in range(LIMIT):
            client = Client(REMOTE_ADDR=f"2001:db8:7:{subnet}::{n + 1}")
            assert enter(client, listening_study, pid=f"bot{subnet}-{n}").external_pid
    # A third /64 of that /48 has no entry of its own, but the /48 has LIMIT * MULTIPLE.
    third = Client(REMOTE_ADDR="2001:db8:7:3::1")
    response = _open(third, listening_study, pid="bot-next")
    assert response.status_code == 429 and TOO_MANY in response.content.decode()
    assert Participant.objects.filter(study=listening_study).count() == LIMIT * MULTIPLE
    another_48 = Client(REMOTE_ADDR="2001:db8:8:3::1")
    assert _open(another_48, listening_study, pid="person").status_code == 302


def test_it_counts_ipv4_clients_by_their_address_alone(listening_study):
    entered = [enter(Client(REMOTE_ADDR=f"198.51.100.{host}"), listening_study, pid=f"p{host}-{n}")
               for host in range(1, MULTIPLE + 2) for n in range(LIMIT)]  # fmt: skip
    assert len(entered) == LIMIT * (MULTIPLE + 1)  # no coarser count: one /24 is not one holder
    assert {p.entry_network for p in entered} == {""}
    mapped = Client(REMOTE_ADDR="::ffff:198.51.100.1")  # the IPv4 address, as IPv6
    assert _open(mapped, listening_study, pid="p1-next").status_code == 429


def test_it_stores_a_keyed_hash_of_the_48_network_and_clears_it_with_the_address(
    listening_study, experimenter
):
    here = enter(Client(REMOTE_ADDR="2001:db8:7:1::1"), listening_study, pid="here")
    there = enter(Client(REMOTE_ADDR="2001:db8:7:2::1"), listening_study, pid="there")
    assert len(here.entry_network) == 64 and "2001" not in here.entry_network
    assert here.entry_network == there.entry_network != here.entry_address
    assert there.entry_address != here.entry_address  # two /64s
    Participant.objects.filter(pk=here.pk).update(
        started_at=F("started_at") - timedelta(minutes=11)
    )
    enter(Client(REMOTE_ADDR="198.51.100.4"), listening_study, pid="person")  # any new entry
    here.refresh_from_db()
    assert (here.entry_address, here.entry_network) == ("", "")  # past the window: both go
    researcher = Client()
    researcher.force_login(experimenter)
    researcher.post(reverse("studies:study_status", args=[listening_study.pk]), {"action": "pause"})
    hashes = Participant.objects.filter(study=listening_study).values_list(
        "entry_address", "entry_network"
    )
    assert set(hashes) == {("", "")}


def test_it_stores_a_keyed_hash_of_the_address_not_the_address(listening_study, settings):
    here, there = _fill(listening_study)[0], enter(Client(REMOTE_ADDR="198.51.100.4"),
                                                   listening_study, pid="person")  # fmt: skip
    assert len(here.entry_address) == 64 and "127.0.0.1" not in here.entry_address
    assert there.entry_address not in ("", here.entry_address)
    # Keyed: with another secret the same address hashes to another value (and, under this
    # key, has no entries yet, so the fourth entry from 127.0.0.1 is not refused).
    settings.SECRET_KEY = "another-secret-key-" * 4
    again = enter(Client(), listening_study, pid="rekeyed")
    assert again.entry_address not in ("", here.entry_address)


def test_it_never_refuses_a_researchers_preview_of_a_draft(listening_study, experimenter):
    Study.objects.filter(pk=listening_study.pk).update(status=Study.Status.DRAFT)
    researcher = Client()
    researcher.force_login(experimenter)
    previews = [enter(researcher, listening_study, pid=f"preview{n}") for n in range(LIMIT + 1)]
    assert all(p.is_preview and p.entry_address == "" for p in previews)


def test_it_keeps_the_hashed_address_out_of_every_export_file(listening_study):
    entered = _fill(listening_study)
    archive = zipfile.ZipFile(io.BytesIO(export_zip(listening_study)))
    for name in archive.namelist():
        content = archive.read(name).decode()
        assert "entry_address" not in content, name
        assert not any(p.entry_address in content for p in entered), name
    assert "entry_address" not in str(CODEBOOK)


def test_it_keeps_the_hashed_address_no_longer_than_the_window(listening_study):
    old, recent, *_ = _fill(listening_study)
    Participant.objects.filter(pk=old.pk).update(started_at=old.started_at - timedelta(minutes=11))
    enter(Client(REMOTE_ADDR="198.51.100.4"), listening_study, pid="person")  # any new entry
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.entry_address == ""  # nothing left to count it for: the hash goes
    assert len(recent.entry_address) == 64  # still inside the window: kept


def test_it_hashes_one_address_apart_in_each_study(
    listening_study, experimenter, listening_catalogue
):
    other = make_study(experimenter, listening_catalogue)
    here, there = (enter(Client(), study, pid="person") for study in (listening_study, other))
    assert "" not in (here.entry_address, there.entry_address)
    # Whoever reads the database cannot link one person's participations across studies.
    assert here.entry_address != there.entry_address


@pytest.mark.parametrize("action", ["pause", "close"])
def test_it_clears_every_hash_of_a_study_as_it_is_paused_or_closed(
    listening_study, experimenter, listening_catalogue, action
):
    _fill(listening_study)
    elsewhere = enter(Client(), make_study(experimenter, listening_catalogue), pid="elsewhere")
    researcher = Client()
    researcher.force_login(experimenter)
    data = {"action": action, "confirm": "yes"}  # closing asks for it; pausing ignores it
    researcher.post(reverse("studies:study_status", args=[listening_study.pk]), data)
    listening_study.refresh_from_db()
    assert listening_study.status != Study.Status.OPEN
    addresses = Participant.objects.filter(study=listening_study).values_list("entry_address")
    assert set(addresses) == {("",)}  # no new participant enters it: nothing left to count
    elsewhere.refresh_from_db()
    assert len(elsewhere.entry_address) == 64  # another study's: kept


def test_its_command_clears_the_hashes_past_the_window_in_every_study(
    listening_study, experimenter, listening_catalogue
):
    other = make_study(experimenter, listening_catalogue)
    old = [enter(Client(), study, pid="old") for study in (listening_study, other)]
    recent = enter(Client(), listening_study, pid="recent")
    Participant.objects.filter(pk__in=[p.pk for p in old]).update(
        started_at=F("started_at") - timedelta(minutes=11)
    )  # studies that got no entry since: only the command clears them
    outputs = []
    for _ in range(2):  # and again: nothing left to clear
        out = io.StringIO()
        call_command("clear_entry_addresses", stdout=out)
        outputs.append(out.getvalue())
    assert outputs == [
        "Cleared the address hashes of 2 participants who entered over 10 minutes ago.\n",
        "Cleared the address hashes of 0 participants who entered over 10 minutes ago.\n",
    ]
    cleared = Participant.objects.filter(pk__in=[p.pk for p in old])
    assert set(cleared.values_list("entry_address", flat=True)) == {""}
    recent.refresh_from_db()
    assert len(recent.entry_address) == 64


DOUBLE_CLICKS = {"pid": {"pid": "double"}, "prolific": {"PROLIFIC_PID": "pp", "SESSION_ID": "se"}}


@pytest.mark.parametrize("kind", DOUBLE_CLICKS)
def test_it_resumes_the_second_click_of_a_double_click_at_the_limit(
    listening_study, monkeypatch, kind
):
    """The second click looked the id up before the first click made the participant, then
    found the count at the limit: that first click's participant is its own."""
    for n in range(LIMIT - 1):
        enter(Client(), listening_study, pid=f"bot{n}")
    made = []

    def first_click_made_it(study, key):
        made.append(flow.create(study, DOUBLE_CLICKS[kind], DESKTOP_UA, "en"))
        Participant.objects.filter(pk=made[0].pk).update(entry_address=key.address)
        return True  # the first click is counted: the limit is reached

    monkeypatch.setattr(participant, "refuses_new", first_click_made_it)
    response = _open(Client(), listening_study, **DOUBLE_CLICKS[kind])
    assert response.status_code == 302 and made[0].token in response["Location"]
    assert Participant.objects.filter(study=listening_study).count() == LIMIT
