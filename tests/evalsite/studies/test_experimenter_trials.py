"""Experimenter trials pages (evalsite/studies/experimenter_trials.py): one trial by form, a CSV
file, a random draw, A/B-swapped repeats."""

from __future__ import annotations

import re
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Study, Trial
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def test_it_lists_trials_and_counts_them_on_the_overview(client, alice, study):
    client.force_login(alice)
    html = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    assert html.count("<tr><td>") == Trial.objects.filter(study=study).count()
    overview = client.get(reverse("studies:study_detail", args=[study.pk]))
    assert overview.context["trial_counts"] == {"main": 4, "practice": 1, "catch": 3}


def test_it_adds_a_trial_from_the_form(client, alice, study):
    client.force_login(alice)
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue)[:3]
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk, "instrument": "bass",
            "catch_kind": "", "expected": "", "model_choice": "", "model_margin": ""}  # fmt: skip
    response = client.post(reverse("studies:trial_add", args=[study.pk]), data)
    assert response.status_code == 302
    trial = study.trials.latest("id")
    assert (trial.reference, trial.candidate_a, trial.instrument) == (ref, a, "bass")
    assert trial.model_choice is None and not trial.is_catch


def test_it_refuses_a_practice_trial_that_is_also_a_catch_trial(client, alice, study):
    client.force_login(alice)
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue)[:3]
    before = study.trials.count()
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk, "instrument": "bass",
            "is_practice": "on", "catch_kind": "identical", "expected": "a", "model_choice": "",
            "model_margin": ""}  # fmt: skip
    response = client.post(reverse("studies:trial_add", args=[study.pk]), data)
    assert response.status_code == 400
    assert "cannot be a catch trial" in " ".join(response.context["form"].errors["is_practice"])
    assert study.trials.count() == before


@pytest.mark.parametrize(
    ("picks", "fields", "field", "error"),
    [
        ((0, 0, 2), {}, "candidate_a", "The reference itself; expected another clip"),
        ((0, 1, 1), {}, "candidate_b", "The same clip as candidate_a; expected two different"),
        ((0, 1, 0), {"catch_kind": "attention", "expected": "a"}, "candidate_b", "The reference"),
        ((0, 1, 2), {"catch_kind": "identical", "expected": "a"}, "candidate_a",
         "Not the reference; expected the reference itself, as an identical catch trial's"),
    ],
)  # fmt: skip
def test_it_refuses_a_trial_whose_clips_give_the_answer_away(
    client, alice, study, picks, fields, field, error
):
    client.force_login(alice)
    c = list(Clip.objects.filter(catalogue=study.catalogue).order_by("id"))
    ref, a, b = (c[i].pk for i in picks)
    data = {"reference": ref, "candidate_a": a, "candidate_b": b, "instrument": "bass",
            "catch_kind": "", "expected": "", "model_choice": "", "model_margin": "",
            **fields}  # fmt: skip
    before = study.trials.count()
    response = client.post(reverse("studies:trial_add", args=[study.pk]), data)
    assert response.status_code == 400
    assert " ".join(response.context["form"].errors[field]).startswith(error)
    assert study.trials.count() == before
    data.update(candidate_a=c[0].pk, candidate_b=c[2].pk, catch_kind="identical", expected="a")
    assert client.post(reverse("studies:trial_add", args=[study.pk]), data).status_code == 302


def test_it_refuses_clips_of_another_researcher_in_a_trial(client, alice, bob, study):
    foreign = Clip.objects.create(catalogue=Catalogue.objects.create(owner=bob, name="b"),
                                  status="ready", name="bob.wav")  # fmt: skip
    client.force_login(alice)
    ref, a = Clip.objects.filter(catalogue=study.catalogue)[:2]
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": foreign.pk,
            "instrument": "drums"}  # fmt: skip
    response = client.post(reverse("studies:trial_add", args=[study.pk]), data)
    assert response.status_code == 400
    assert "candidate_b" in response.context["form"].errors


def test_it_bulk_creates_trials_from_csv_and_names_bad_lines(client, alice, study):
    client.force_login(alice)
    c = list(Clip.objects.filter(catalogue=study.catalogue))
    before = study.trials.count()
    good = (f"reference,candidate_a,candidate_b,instrument,catch_kind,expected,model_choice\n"
            f"{c[0].token},{c[1].token},{c[5].token},drums,,,a\n"
            f"{c[3].name},{c[4].pk},{c[3].pk},bass,identical,b,\n")  # fmt: skip
    url = reverse("studies:trials_csv", args=[study.pk])
    response = client.post(url, {"csv_file": SimpleUploadedFile("t.csv", good.encode())})
    assert response.status_code == 302
    made = list(study.trials.order_by("-id")[:2])[::-1]
    assert study.trials.count() == before + 2
    assert made[0].model_choice == "a" and made[1].catch_kind == "identical" and made[1].is_catch
    bad = (f"reference,candidate_a,candidate_b,instrument\n"
           f"{c[0].token},{c[1].token},{c[2].token},drums\n"
           f"nope,{c[1].token},{c[2].token},vocals\n")  # fmt: skip
    response = client.post(url, {"csv_file": SimpleUploadedFile("bad.csv", bad.encode())})
    assert response.status_code == 400
    errors = " ".join(response.context["csv_form"].errors["csv_file"])
    assert "bad.csv, line 3: field 'reference' = 'nope'" in errors
    assert "field 'instrument' = 'vocals'" in errors
    assert study.trials.count() == before + 2  # nothing from a file with errors


def test_it_says_after_a_draw_when_recurring_references_shorten_each_participants_trials(
    client, alice, study
):
    empty = Study.objects.create(owner=alice, name="empty", instruments=["drums"],
                                 catalogue=study.catalogue)  # fmt: skip
    client.force_login(alice)
    data = {"per_instrument": 10, "catch_per_kind": 0, "seed": 0}  # 10 from 8 pieces
    response = client.post(reverse("studies:trials_random", args=[empty.pk]), data, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    main = empty.trials.filter(is_catch=False, is_practice=False)
    n = len(set(main.values_list("reference_id", flat=True)))
    assert n < 10  # references recur
    said = f"Each participant gets at most {n} main trials (drums {n}), not all 10 of the study's"
    assert said in " ".join(shown)


def test_it_explains_why_random_trials_cannot_be_drawn(client, alice):
    study = Study.objects.create(owner=alice, name="no clips", instruments=["drums"])
    client.force_login(alice)
    data = {"per_instrument": 2, "catch_per_kind": 1, "seed": 0}
    response = client.post(reverse("studies:trials_random", args=[study.pk]), data)
    assert response.status_code == 400
    assert "expected at least 3" in str(response.context["random_form"].non_field_errors())
    assert not study.trials.exists()
    # A refused draw changes nothing: no catalogue made for it, nothing in the history.
    study.refresh_from_db()
    assert study.catalogue_id is None and not Catalogue.objects.exists()
    assert not study.events.exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # each request commits on its own connection
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
def test_it_draws_random_trials_once_when_the_form_is_sent_twice_at_once(alice, study, monkeypatch):
    from evalsite.studies import random_design

    empty = Study.objects.create(owner=alice, name="empty", instruments=["drums", "bass"],
                                 catalogue=study.catalogue)  # fmt: skip
    both_checked, mixes, statuses = threading.Barrier(2, timeout=60), random_design._mixes, []

    def mixes_together(catalogue):  # both draws are past every check made outside the lock
        both_checked.wait()
        return mixes(catalogue)

    def draw():
        try:
            researcher = Client()
            researcher.force_login(alice)
            url = reverse("studies:trials_random", args=[empty.pk])
            statuses.append(researcher.post(url, {"per_instrument": 3, "catch_per_kind": 1,
                                                  "seed": 0}).status_code)  # fmt: skip
        finally:
            connection.close()

    monkeypatch.setattr(random_design, "_mixes", mixes_together)
    threads = [threading.Thread(target=draw) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(statuses) == [302, 400]  # the second is told the study has trials
    assert empty.trials.filter(is_catch=False, is_practice=False).count() == 6
    assert empty.events.filter(kind="trials").count() == 1


def test_it_adds_ab_swapped_repeats_of_main_trials_without_one(client, alice, study):
    client.force_login(alice)
    url = reverse("studies:trials_repeats", args=[study.pk])
    before = set(study.trials.values_list("pk", flat=True))
    assert client.post(url, {"per_instrument": 5, "seed": 1}).status_code == 302
    made = study.trials.exclude(pk__in=before)
    originals = [t.repeat_of for t in made]
    # main[0] (drums) already had a repeat: the other three main trials get one each
    assert len(made) == 3 and all(t.catch_kind == "repeat" and t.is_catch for t in made)
    assert len(set(originals)) == 3 and all(not o.is_catch for o in originals)
    for t, o in zip(made, originals):
        assert (t.reference, t.candidate_a, t.candidate_b, t.instrument, t.model_choice) == (
            o.reference, o.candidate_a, o.candidate_b, o.instrument, o.model_choice)  # fmt: skip
    again = client.post(url, {"per_instrument": 5, "seed": 1})
    assert again.status_code == 400
    assert "no main trial without a repeat" in str(again.context["repeats_form"].non_field_errors())
    assert study.events.filter(kind="trials").count() == 1


PAGES = ["trials", "clips", "dataset_import", "study_edit", "study_detail", "progress", "export"]


@pytest.mark.parametrize("page", PAGES)
def test_no_two_elements_of_an_experimenter_page_share_an_id(client, alice, study, page):
    """The trials page shows the random-draw and repeats forms, which both have per_instrument
    and seed fields: with the same ids, a label would focus the other form's field."""
    client.force_login(alice)
    html = client.get(reverse(f"studies:{page}", args=[study.pk])).content.decode()
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert not [i for i in set(ids) if ids.count(i) > 1]
    for target in re.findall(r'<label for="([^"]+)"', html):
        assert target in ids  # each label names a field of the page


def test_the_repeats_form_posts_the_same_names_under_its_own_ids(client, alice, study):
    client.force_login(alice)
    html = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    assert 'for="id_repeats_per_instrument">Repeats per instrument' in html
    (field,) = re.findall(r'<input [^>]*id="id_repeats_per_instrument"[^>]*>', html)
    assert 'name="per_instrument"' in field


def _csv_upload(body: str) -> dict:
    return {"csv_file": SimpleUploadedFile("more.csv", body.encode(), "text/csv")}


@pytest.mark.parametrize("how", ["form", "csv", "repeats"])
def test_a_trial_added_while_a_close_commits_is_refused(alice, study, how, monkeypatch):
    from evalsite.studies.forms import RepeatsForm, TrialForm
    from evalsite.studies.trials_csv import TrialCSVForm

    study.status = Study.Status.OPEN
    study.save()
    adding, closing = Client(), Client()
    adding.force_login(alice)
    closing.force_login(alice)
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue).order_by("id")[2:5]
    form_class, url, data = {
        "form": (TrialForm, "studies:trial_add", {
            "reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk, "instrument": "drums",
            "catch_kind": "", "expected": "", "model_choice": "", "model_margin": ""}),
        "csv": (TrialCSVForm, "studies:trials_csv", _csv_upload(
            f"reference,candidate_a,candidate_b,instrument\n{ref.pk},{a.pk},{b.pk},drums\n")),
        "repeats": (RepeatsForm, "studies:trials_repeats", {"per_instrument": 2, "seed": 0}),
    }[how]  # fmt: skip
    validate = form_class.is_valid

    def close_meanwhile(form):  # the Close confirmed while the trial's form is validated
        closing.post(reverse("studies:study_status", args=[study.pk]),
                     {"action": "close", "confirm": "yes"})  # fmt: skip
        return validate(form)

    monkeypatch.setattr(form_class, "is_valid", close_meanwhile)
    before = study.trials.count()
    response = adding.post(reverse(url, args=[study.pk]), data)
    study.refresh_from_db()
    assert study.status == Study.Status.CLOSED and study.trials.count() == before
    assert response.status_code == 302
    assert [str(m) for m in response.wsgi_request._messages] == [
        "Study 'Drums and bass' is closed; it can no longer be changed."
    ]
    assert [e.kind for e in study.events.all()] == ["status"]


def _one_trial(study, instrument="drums", **fields) -> dict:
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue).order_by("id")[4:7]  # no trial's
    return {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk,
            "instrument": instrument, "catch_kind": "", "expected": "", "model_choice": "",
            "model_margin": ""} | fields  # fmt: skip


def test_a_trial_sent_twice_is_added_once_and_the_second_is_refused_saying_so(client, alice, study):
    study.status = Study.Status.OPEN
    study.save()
    client.force_login(alice)
    url = reverse("studies:trial_add", args=[study.pk])
    assert client.post(url, _one_trial(study)).status_code == 302  # a double click
    again = client.post(url, _one_trial(study))
    assert again.status_code == 400
    added = study.trials.latest("id")
    assert again.context["form"].non_field_errors() == [
        f"This trial is already in the study as trial {added.pk} (reference {added.reference_id}, "
        f"candidates {added.candidate_a_id} and {added.candidate_b_id}, drums, main); nothing was "
        "added. For a second look at the same clips, add a repeat (Add repeats with A/B swapped)."
    ]
    # the same clips with the candidates swapped are the same trial (positions are balanced)
    swapped = _one_trial(study, candidate_a=added.candidate_b_id, candidate_b=added.candidate_a_id)
    assert client.post(url, swapped).status_code == 400
    # another kind (a practice trial) or instrument on these clips is another trial
    assert client.post(url, _one_trial(study, instrument="bass")).status_code == 302
    assert study.events.filter(kind="trials").count() == 1 + 0 + 1


def test_a_trials_csv_sent_twice_adds_its_trials_once(client, alice, study):
    study.status = Study.Status.OPEN
    study.save()
    client.force_login(alice)
    c = list(Clip.objects.filter(catalogue=study.catalogue).order_by("id"))
    body = (f"reference,candidate_a,candidate_b,instrument\n{c[0].pk},{c[3].pk},{c[5].pk},drums\n"
            f"{c[1].pk},{c[4].pk},{c[6].pk},bass\n")  # fmt: skip
    url = reverse("studies:trials_csv", args=[study.pk])
    before = study.trials.count()
    assert client.post(url, _csv_upload(body)).status_code == 302
    again = client.post(url, _csv_upload(body))
    assert again.status_code == 400
    errors = again.context["csv_form"].errors["csv_file"]
    first = study.trials.order_by("id")[before]
    assert errors[0] == (
        f"more.csv, line 2: the same trial as trial {first.pk} (reference {c[0].pk}, candidates "
        f"{c[3].pk} and {c[5].pk}, drums, main); expected each trial once (for a second look at "
        "the same clips, add a repeat)"
    )
    assert len(errors) == 2 and study.trials.count() == before + 2


def test_a_trials_csv_naming_one_trial_twice_is_refused_naming_both_lines(client, alice, study):
    client.force_login(alice)
    c = list(Clip.objects.filter(catalogue=study.catalogue).order_by("id"))
    body = (f"reference,candidate_a,candidate_b,instrument\n{c[0].pk},{c[3].pk},{c[5].pk},drums\n"
            f"{c[0].pk},{c[5].pk},{c[3].pk},drums\n")  # fmt: skip
    before = study.trials.count()
    response = client.post(reverse("studies:trials_csv", args=[study.pk]), _csv_upload(body))
    assert response.status_code == 400
    assert response.context["csv_form"].errors["csv_file"] == [
        f"more.csv, line 3: the same trial as line 2 (reference {c[0].pk}, candidates {c[5].pk} "
        f"and {c[3].pk}, drums, main); expected each trial once (for a second look at the same "
        "clips, add a repeat)"
    ]
    assert study.trials.count() == before


@pytest.mark.django_db(transaction=True)
def test_a_trial_sent_twice_at_once_is_added_once(alice, study):
    gate, codes = threading.Barrier(2), []
    data = _one_trial(study)

    def click():
        c = Client()
        c.force_login(alice)
        gate.wait()
        codes.append(c.post(reverse("studies:trial_add", args=[study.pk]), data).status_code)
        connection.close()

    before = study.trials.count()
    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [302, 400] and study.trials.count() == before + 1


def test_the_add_and_csv_forms_are_sent_once_by_a_script_that_disables_their_button(
    client, alice, study
):
    client.force_login(alice)
    html = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    for view in ("trial_add", "trials_csv", "trials_random", "trials_repeats"):
        form = re.search(
            rf'<form [^>]*action="{reverse(f"studies:{view}", args=[study.pk])}"[^>]*>', html
        )
        assert form and "data-submit-once" in form.group(0), view
    assert 'src="/static/studies/submit-once.js"' in html


def test_a_draw_while_a_close_commits_is_refused(alice, study, monkeypatch):
    from evalsite.studies.forms import RandomTrialsForm

    empty = Study.objects.create(owner=alice, name="empty", instruments=["drums", "bass"],
                                 catalogue=study.catalogue)  # fmt: skip
    drawing, closing = Client(), Client()
    drawing.force_login(alice)
    closing.force_login(alice)
    validate = RandomTrialsForm.is_valid

    def close_meanwhile(form):
        closing.post(reverse("studies:study_status", args=[empty.pk]),
                     {"action": "close", "confirm": "yes"})  # fmt: skip
        return validate(form)

    monkeypatch.setattr(RandomTrialsForm, "is_valid", close_meanwhile)
    data = {"per_instrument": 1, "catch_per_kind": 0, "seed": 0}
    response = drawing.post(reverse("studies:trials_random", args=[empty.pk]), data)
    empty.refresh_from_db()
    assert empty.status == Study.Status.CLOSED and not empty.trials.exists()
    assert response.status_code == 302
    assert [e.kind for e in empty.events.all()] == ["status"]


def test_it_adds_a_trial_by_hand_marked_as_designed_by_a_model(client, alice, study):
    """A researcher's own model's trial gets the shared-candidate rule (Trial.model_designed);
    left unticked, a trial added by hand does not."""
    client.force_login(alice)
    ref, a, b, d = Clip.objects.filter(catalogue=study.catalogue).order_by("id")[:4]
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk, "instrument": "bass",
            "catch_kind": "", "expected": "", "model_choice": "", "model_margin": "",
            "model_designed": "on"}  # fmt: skip
    assert client.post(reverse("studies:trial_add", args=[study.pk]), data).status_code == 302
    assert study.trials.latest("id").model_designed
    data.pop("model_designed")
    data["candidate_b"] = d.pk
    assert client.post(reverse("studies:trial_add", args=[study.pk]), data).status_code == 302
    assert not study.trials.latest("id").model_designed


def test_it_refuses_a_practice_trial_by_hand_marked_as_designed_by_a_model(client, alice, study):
    client.force_login(alice)
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue).order_by("id")[:3]
    before = study.trials.count()
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk, "instrument": "bass",
            "is_practice": "on", "catch_kind": "", "expected": "a", "model_choice": "",
            "model_margin": "", "model_designed": "on"}  # fmt: skip
    response = client.post(reverse("studies:trial_add", args=[study.pk]), data)
    assert response.status_code == 400
    assert "main trials only" in " ".join(response.context["form"].errors["model_designed"])
    assert study.trials.count() == before
