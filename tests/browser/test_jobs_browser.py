"""The model-work page in real headless Chromium while jobs run: its poll refreshes the job table
and, with it, the count of the catalogue's clips without an embedding (the warning that also
describes the Embed clips button), and a polite live region announces a job whose status changed
(queued, running, done, failed), and nothing else: a poll that changed no status, or only a
running job's counts, says nothing.

The page polls every 3 s; here every 0.3 s (its 3 s timer shortened in the page, FAST_POLL), so
that the tests' few polls take seconds, not half a minute. The tests wait for what the page does
(its fetches, the table's text), never for a time.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from evalsite.jobs.models import Job
from evalsite.retrieval.embedder import checkpoint_id
from evalsite.retrieval.models import Embedding, ModelVersion
from tests.browser.axe_audit import audit  # noqa: F401 (fixture)
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WAIT_MS = 20000
EMBED = "form[action$='/ingest'] button"
STATUS = "#jobs-status"

# Counted in the page: fetches started (the poll calls the global fetch, wrapped here), and each
# text the live region took.
_WATCH = """() => {
  window.fetches = 0;
  const fetch = window.fetch;
  window.fetch = (...args) => { window.fetches += 1; return fetch(...args); };
  window.statusTexts = [];
  const status = document.getElementById("jobs-status");
  if (!status) return;
  new MutationObserver(() => { window.statusTexts.push(status.textContent); })
    .observe(status, {childList: true, characterData: true, subtree: true});
}"""


@pytest.fixture
def checkpoint(settings, tmp_path) -> str:
    # The page counts clips against the checkpoint's identity (a hash of the file); no model is
    # loaded here, so any file will do.
    path = tmp_path / "final.pt"
    path.write_bytes(b"a checkpoint's bytes")
    settings.CSN_CHECKPOINT = str(path)
    return checkpoint_id()


def _clips(study) -> list[int]:
    return list(
        study.catalogue.clips.filter(status="ready").order_by("pk").values_list("pk", flat=True)
    )


def _embed(clips: list[int], ckpt: str) -> None:
    """What a gpu worker stores for each clip (the vector's values do not matter here)."""
    version, _ = ModelVersion.objects.get_or_create(
        checkpoint_id=ckpt, defaults={"path": "final.pt", "dim": 4, "sample_rate": 16000}
    )
    for pk in clips:
        Embedding.objects.create(clip_id=pk, version=version, vector=np.zeros(4, "<f4").tobytes())


# The poll's timer (INTERVAL_MS in static/jobs/study-jobs.js) at a tenth: every other timer as
# the page sets it. Should the interval change, the tests only wait longer.
FAST_POLL = """(() => {
  const setTimeout = window.setTimeout;
  window.setTimeout = (f, ms, ...args) => setTimeout(f, ms === 3000 ? 300 : ms, ...args);
})()"""


def _open(browser, live_server, client, alice, study):
    client.force_login(alice)  # a session made here, handed to the browser as its cookie
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.add_init_script(FAST_POLL)
    page.goto(f"{live_server.url}/jobs/study/{study.pk}/")
    page.evaluate("window.notReloaded = true")  # a reload or navigation would lose it
    page.evaluate(_WATCH)
    return page


def _wait_for_fetches(page, more: int) -> None:
    start = page.evaluate("window.fetches")
    page.wait_for_function(f"window.fetches >= {start + more}", timeout=WAIT_MS)


def _row(page, job: Job):
    return page.locator(f"tr[data-job='{job.pk}']")


def test_it_refreshes_the_clip_count_with_the_table_and_announces_only_the_finished_job(
    browser,
    live_server,
    client,
    alice,
    study,
    checkpoint,
    audit,  # noqa: F811
):
    clips = _clips(study)
    n = len(clips)
    job = Job.objects.create(
        kind=Job.Kind.INGEST, study=study, status=Job.Status.RUNNING, checkpoint_id=checkpoint,
        params={"clips": clips}, total=n,
    )  # fmt: skip
    page = _open(browser, live_server, client, alice, study)
    expect(page.locator("#unembedded")).to_contain_text(f"{n} of {n} ready clips", timeout=WAIT_MS)
    expect(page.locator(EMBED)).to_have_attribute("aria-describedby", "unembedded", timeout=WAIT_MS)
    _wait_for_fetches(page, 2)  # polls that change nothing say nothing

    _embed(clips[:3], checkpoint)  # counts change, the status does not
    expect(_row(page, job)).to_contain_text(f"3 / {n}", timeout=WAIT_MS)
    expect(page.locator("#unembedded")).to_contain_text(
        f"{n - 3} of {n} ready clips", timeout=WAIT_MS
    )

    _embed(clips[3:], checkpoint)
    expect(_row(page, job)).to_contain_text("done", timeout=WAIT_MS)
    expect(page.locator("#unembedded")).to_have_count(0)  # no clip left without an embedding
    expect(page.locator(EMBED)).not_to_have_attribute(
        "aria-describedby", "unembedded", timeout=WAIT_MS
    )
    status = page.locator(STATUS)
    expect(status).to_have_attribute("role", "status", timeout=WAIT_MS)
    expect(status).to_have_text("embed clips: done", timeout=WAIT_MS)
    assert page.evaluate("window.statusTexts") == ["embed clips: done"]  # said once, at the end
    assert page.evaluate("window.notReloaded") is True
    audit(page, "model work, after the job finished")
    audit.assert_clean()


def test_it_announces_each_status_change_of_the_jobs_it_polls(
    browser, live_server, client, alice, study, checkpoint
):
    study.trials.all().delete()  # a design job belongs to a study without trials
    design = Job.objects.create(kind=Job.Kind.DESIGN, study=study, status=Job.Status.RUNNING)
    ingest = Job.objects.create(
        kind=Job.Kind.INGEST, study=study, checkpoint_id=checkpoint,
        params={"clips": _clips(study)}, total=len(_clips(study)),
    )  # fmt: skip
    page = _open(browser, live_server, client, alice, study)
    expect(_row(page, ingest)).to_contain_text("queued (waiting for a cpu worker)", timeout=WAIT_MS)
    _wait_for_fetches(page, 2)
    assert page.evaluate("window.statusTexts") == []

    Job.objects.filter(pk=ingest.pk).update(status=Job.Status.RUNNING)
    expect(page.locator(STATUS)).to_have_text("embed clips: running", timeout=WAIT_MS)
    design.fail("worker lost")
    expect(page.locator(STATUS)).to_have_text(
        "design from the model: failed: worker lost", timeout=WAIT_MS
    )
    assert page.evaluate("window.statusTexts") == [
        "embed clips: running",
        "design from the model: failed: worker lost",
    ]
    assert page.evaluate("window.notReloaded") is True
