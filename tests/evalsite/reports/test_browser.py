"""The report page in real headless Chromium: the owner logs in, sees when the report was
computed, the plots and the consent table; a screenshot lands in artifacts/reports/."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evalsite.reports.tasks import recompute_report
from tests.evalsite.studies.experimenter_personas import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_shows_the_owner_plots_and_tables(live_server, browser, sim_study, artifacts_dir):
    recompute_report(sim_study.pk)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    url = f"{live_server.url}{reverse('reports:page', args=[sim_study.pk])}"
    page.goto(url)  # not logged in: the login page, then back to the report
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url)
    assert page.locator("[data-testid=computed-at]").is_visible()
    assert page.locator("#plot-consent svg").is_visible()
    rows = page.locator("table[data-table=consent] tbody tr")
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())] == [
        "drums", "guitar", "overall",
    ]  # fmt: skip
    (artifacts_dir / "reports").mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts_dir / "reports" / "report_page.png"), full_page=False)
    context.close()
