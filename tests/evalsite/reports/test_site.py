"""The report in the site: computed by the task from the export, shown to the owner and shared
researchers only, downloads equal to the stored tables at full precision, a bundle that recomputes
itself, and debounced scheduling."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
from django.urls import reverse

from evalsite.reports import services
from evalsite.reports.analysis.proportions import wilson_interval
from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.reports.tasks import recompute_report, schedule_report
from evalsite.studies.export_answers import answers_dataframe
from evalsite.studies.models import Participant, Study
from tests.evalsite.reports.conftest import answer_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot(sim_study) -> ReportSnapshot:
    return ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))


def test_it_stores_consent_per_instrument_as_computed_from_the_answers(sim_study, snapshot):
    assert snapshot.error == ""
    # The study's pre-registered rules (settings "exclusion", defaults filled in) and its report
    # settings are what the report applied.
    assert snapshot.config["rules"]["min_median_rt_ms"] == 0
    assert snapshot.config["rules"]["min_catch_accuracy"] == 0.75
    assert snapshot.config["n_boot"] == 200
    frame = answers_dataframe(sim_study)
    main = frame[~frame["is_catch"].astype(bool)]
    rows = {r["term"]: r for r in snapshot.tables["consent"]}
    for instrument in ("drums", "guitar"):
        agree = main.loc[main["instrument"] == instrument, "agree"].astype(float)
        row = rows[instrument]
        assert row["n"] == len(agree) == 40
        assert row["estimate"] == agree.mean()
        assert (row["ci_low"], row["ci_high"]) == wilson_interval(int(agree.sum()), len(agree))
    assert rows["drums"]["estimate"] > rows["guitar"]["estimate"]  # simulated 0.9 vs 0.6


def test_it_keeps_the_snapshot_when_nothing_changed_and_recomputes_when_answers_arrive(
    sim_study, snapshot
):
    assert recompute_report(sim_study.pk) == snapshot.pk
    p = Participant.objects.create(
        study=sim_study, external_pid="late", step="done", screening_passed=True
    )
    import numpy as np

    answer_all(sim_study, p, list(sim_study.trials.order_by("id")), np.random.default_rng(1))
    newer = recompute_report(sim_study.pk)
    assert newer != snapshot.pk
    assert ReportSnapshot.objects.get(pk=newer).n_answers == snapshot.n_answers + 12


def test_it_debounces_scheduling_until_the_queued_run_starts(
    sim_study, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert schedule_report(sim_study.pk) is True
        assert schedule_report(sim_study.pk) is False
        assert schedule_report(sim_study.pk) is False
    assert len(callbacks) == 1  # one task queued for the burst, after the commit
    assert ReportState.objects.get(study=sim_study).pending
    recompute_report(sim_study.pk)  # the queued run starts: new answers may queue again
    assert not ReportState.objects.get(study=sim_study).pending
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert schedule_report(sim_study.pk) is True
    assert len(callbacks) == 1


def test_it_shows_the_report_to_the_owner_and_shared_researchers_only(
    client, sim_study, snapshot, alice, bob, carol
):
    url = reverse("reports:page", args=[sim_study.pk])
    assert client.get(url).status_code == 302  # anonymous: to the login page
    for user, status in ((alice, 200), (carol, 200), (bob, 404)):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == status, user
    client.force_login(alice)
    page = client.get(reverse("reports:page", args=[sim_study.slug])).content.decode()
    assert 'data-testid="computed-at"' in page and snapshot.computed_at.strftime("%Y-%m-%d") in page
    assert 'data-table="consent"' in page and "<svg" in page


def test_it_answers_404_for_a_key_of_non_ascii_digits(client, sim_study, snapshot, alice):
    # "²".isdigit() is true but int("²") raises: the key must be no study, not a server error.
    client.force_login(alice)
    for url in (
        reverse("reports:page", args=["²"]),
        reverse("reports:json", args=["²"]),
        reverse("reports:bundle", args=["²"]),
        reverse("reports:table", args=["²", "consent", "csv"]),
        reverse("reports:plot", args=["²", "consent"]),
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("reports:recompute", args=["²"])).status_code == 404


def test_it_titles_the_tables_with_the_reports_confidence(client, sim_study, alice):
    sim_study.settings["report"]["confidence"] = 0.8
    sim_study.save()
    recompute_report(sim_study.pk)
    client.force_login(alice)
    page = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    headings = re.findall(r"<h2 id=\"table-[^\"]*\">(.*?)</h2>", page)
    levels = [h for h in headings if "%" in h]
    assert len(levels) == 4 and all("80%" in h and "95%" not in h for h in levels), headings


def test_it_never_computes_in_the_request(client, sim_study, alice):
    client.force_login(alice)
    page = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    assert "No report has been computed yet" in page
    assert not ReportSnapshot.objects.exists()


def test_it_says_when_the_first_report_is_computed_while_answers_wait_for_it(
    client, sim_study, alice
):
    client.force_login(alice)
    page = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    (notice,) = re.findall(r'data-testid="no-report-yet">([^<]*)<', page)
    assert "computed when the first participant finishes the study" in notice, notice
    assert "press Recompute now to compute it from the answers so far" in notice, notice


def test_it_queues_a_recomputation_from_the_button(
    client, sim_study, alice, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("reports:recompute", args=[sim_study.pk]))
    assert response.status_code == 302
    assert len(callbacks) == 1 and ReportState.objects.get(study=sim_study).pending


def test_it_downloads_every_table_at_full_precision(client, sim_study, snapshot, alice):
    client.force_login(alice)
    for name, rows in snapshot.tables.items():
        got = client.get(reverse("reports:table", args=[sim_study.pk, name, "json"]))
        assert json.loads(got.content) == rows, name
        if not snapshot.columns[name]:  # a part with nothing to show (e.g. no repeats)
            continue
        csv = client.get(reverse("reports:table", args=[sim_study.pk, name, "csv"]))
        frame = pd.read_csv(io.BytesIO(csv.content))
        assert list(frame.columns) == snapshot.columns[name]
    consent = pd.read_csv(
        io.BytesIO(
            client.get(reverse("reports:table", args=[sim_study.pk, "consent", "csv"])).content
        )
    )
    assert list(consent["estimate"]) == [r["estimate"] for r in snapshot.tables["consent"]]


def test_it_bundles_the_same_cells_the_page_and_downloads_show(
    client, sim_study, alice, monkeypatch
):
    compute = services.compute

    def with_extremes(study, csv, *read):
        report = compute(study, csv, *read)
        consent = report.tables["consent"]
        consent.loc[0, "ci_high"] = math.inf  # an open interval (docs/statistics.md, mixed)
        consent.loc[1, "ci_high"] = 5.8591016025996005e203  # an SD the data barely determine
        return report

    monkeypatch.setattr(services, "compute", with_extremes)
    snap = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    client.force_login(alice)
    bundle = client.get(reverse("reports:bundle", args=[sim_study.pk])).content
    z, root = zipfile.ZipFile(io.BytesIO(bundle)), f"report-study-{sim_study.pk}"
    stored = json.loads(z.read(f"{root}/report.json"))["tables"]
    assert client.get(reverse("reports:json", args=[sim_study.pk])).json()["tables"] == stored
    for name in snap.tables:
        csv = client.get(reverse("reports:table", args=[sim_study.pk, name, "csv"])).content
        assert csv == z.read(f"{root}/tables/{name}.csv"), name
        rows = client.get(reverse("reports:table", args=[sim_study.pk, name, "json"])).json()
        assert rows == stored[name], name
    consent = pd.read_csv(io.BytesIO(z.read(f"{root}/tables/consent.csv")))
    assert math.isnan(consent["ci_high"][0]) and consent["ci_high"][1] == 5.8591016025996005e203
    # The page's rounded rows are the summary's.
    summary = z.read(f"{root}/summary.md").decode().splitlines()
    page = client.get(reverse("reports:page", args=[sim_study.pk]))
    for table in page.context["tables"]:
        for row in table["rows"]:
            assert "| " + " | ".join(row) + " |" in summary, (table["name"], row)


def test_it_bundles_a_script_that_recomputes_identical_tables(
    client, sim_study, snapshot, alice, tmp_path
):
    client.force_login(alice)
    response = client.get(reverse("reports:bundle", args=[sim_study.pk]))
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(tmp_path)
    root = tmp_path / f"report-study-{sim_study.pk}"
    for name in (
        "config.json",
        "seeds.json",
        "design.csv",
        "answers.csv",
        "codebook.json",
        "report_config.json",
        "report.json",
        "recompute.py",
    ):
        assert (root / name).is_file(), name
    assert json.loads((root / "seeds.json").read_text())["design"] == 3
    result = subprocess.run(
        [sys.executable, "recompute.py"], cwd=root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all tables identical" in result.stdout
    stored = json.loads((root / "report.json").read_text())["tables"]
    assert stored["consent"] == snapshot.tables["consent"]


def test_it_reports_a_study_without_answers_with_a_message(alice):
    study = Study.objects.create(owner=alice, name="Empty", instruments=["drums"])
    snap = ReportSnapshot.objects.get(pk=recompute_report(study.pk))
    assert "no answers" in snap.error
    assert snap.tables == {}


def test_it_tells_the_researcher_a_study_has_no_answers_yet_as_a_notice(
    client, alice, django_capture_on_commit_callbacks
):
    study = Study.objects.create(owner=alice, name="Empty", instruments=["drums"])
    client.force_login(alice)
    url = reverse("reports:page", args=[study.pk])
    page = client.get(url).content.decode()
    assert 'data-testid="no-answers"' in page and "no answers yet" in page
    # Recompute has nothing to analyse: it says so and stores no error snapshot.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(reverse("reports:recompute", args=[study.pk]), follow=True)
    assert callbacks == [] and not ReportSnapshot.objects.filter(study=study).exists()
    (message,) = response.context["messages"]
    assert message.level_tag == "info" and "no answers yet" in str(message)
    # A snapshot computed from no answers (as after every participant withdrew) is the same notice.
    recompute_report(study.pk)
    page = client.get(url).content.decode()
    assert 'data-testid="no-answers"' in page
    assert "report-error" not in page and 'class="error"' not in page
    # A report from answers since withdrawn: neither its figures nor "from N answers" are shown
    # or served until the recomputation the withdrawal queued replaces it.
    ReportSnapshot.objects.create(study=study, n_answers=40, tables={"consent": [{"n": 40}]},
                                  plots={"consent": "<svg/>"}, bundle=b"zip")  # fmt: skip
    page = client.get(url).content.decode()
    assert "from 40 answers" not in page and 'data-testid="no-answers"' in page
    for name, args in [("json", []), ("bundle", []), ("table", ["consent", "csv"]),
                       ("plot", ["consent"])]:  # fmt: skip
        assert client.get(reverse(f"reports:{name}", args=[study.pk, *args])).status_code == 404


def test_it_names_a_study_instrument_that_has_no_answers(alice):
    study = Study.objects.create(
        owner=alice,
        name="Planned",
        instruments=["drums", "bass", "piano"],
        settings={"report": {"n_boot": 50, "mixed_model": False}},
    )
    rows = [
        f"p{p},{inst}{t},{inst},{'a' if (p + t) % 3 else 'b'},a"
        for inst in ("drums", "bass")
        for p in range(3)
        for t in range(4)
    ]
    csv = "\n".join(["participant,trial,instrument,chosen,model_choice", *rows]).encode()
    report = services.compute(study, csv)
    assert list(report.meta["config"]["planned_instruments"]) == ["drums", "bass", "piano"]
    (text,) = [m["text"] for m in report.messages if "no answers" in m["text"]]
    assert text.startswith("piano has no answers")


def test_it_keeps_bundles_on_the_latest_snapshots_only(sim_study):
    from datetime import timedelta

    from django.utils import timezone

    old = [
        ReportSnapshot.objects.create(
            study=sim_study, computed_at=timezone.now() - timedelta(hours=h), bundle=b"old"
        )
        for h in (3, 2, 1)
    ]
    recompute_report(sim_study.pk)
    kept = [bytes(ReportSnapshot.objects.get(pk=s.pk).bundle) for s in old]
    assert kept == [b"", b"old", b"old"]  # the newest three (two old + the new one) keep theirs


def test_it_queues_again_when_a_pending_request_went_stale(
    sim_study, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    ReportState.objects.create(
        study=sim_study, pending=True, requested_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert schedule_report(sim_study.pk) is True
    assert len(callbacks) == 1


def test_it_computes_the_report_of_a_study_whose_instruments_hold_an_unknown_name(alice):
    # Saved before the study checked them (raw JSON in the admin): the report names the field
    # and leaves the name out, instead of failing for an instrument no answer can have.
    settings = {"report": {"n_boot": 50, "mixed_model": False}}
    study = Study.objects.create(owner=alice, name="Typo", instruments=["drums", "Piano"],
                                 settings=settings)  # fmt: skip
    rows = [f"p{p},d{t},drums,{'a' if (p + t) % 3 else 'b'},a" for p in range(3) for t in range(4)]
    csv = "\n".join(["participant,trial,instrument,chosen,model_choice", *rows]).encode()
    report = services.compute(study, csv)
    assert list(report.meta["config"]["planned_instruments"]) == ["drums"]
    (text,) = [m["text"] for m in report.messages if "Piano" in m["text"]]
    assert "study instruments" in text and "left out" in text
