"""The report page in real headless Chromium: an experimenter logs in and reads a computed report.
Screenshot: artifacts/screens/report.png (the README's report picture comes from here)."""

from __future__ import annotations

import pytest

from evalsite.reports.tasks import recompute_report
from tests.evalsite.studies.experimenter_personas import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_shows_a_computed_report_with_tables_and_plots(browser, live_server, sim_study, alice,
                                                          artifacts_dir):  # fmt: skip
    recompute_report(sim_study.pk)
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(15000)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/reports/{sim_study.pk}/")
        assert "/accounts/login/" in page.url  # experimenter pages need a login
        page.fill("input[name=username]", alice.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/reports/{sim_study.pk}/")
        consent = page.locator('[data-table="consent"]')
        assert consent.count() >= 1
        text = consent.first.inner_text()
        assert "drums" in text and "guitar" in text
        assert page.locator("svg").count() >= 1  # the plots render inline
        (artifacts_dir / "screens").mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts_dir / "screens" / "report.png"), full_page=False)
    finally:
        context.close()
