"""WCAG 1.4.10 Reflow on the experimenter's pages that claim AA (findings_ra11y F4): the study
overview, its progress and its report, in a window 320 CSS px wide, need no scrolling sideways
for anything but a data table (1.4.10 exempts content whose meaning needs two dimensions): the
site header's links and its Log out button wrap onto further lines instead of running off the
window's edge."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from evalsite.reports import services
from tests.browser.page_layout import REFLOW, too_wide_beside_tables
from tests.evalsite.reports.conftest import sim_study
from tests.evalsite.studies.experimenter_personas import alice, answered_study, carol, study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["alice", "answered_study", "carol", "sim_study", "study"]  # fixtures, used by name
WAIT_MS = 15000


@pytest.fixture
def narrow_page(browser, live_server, client, alice):
    client.force_login(alice)  # a session made here, handed to the browser as its cookie
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(locale="en-US", viewport=REFLOW)
    context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


def test_it_reflows_the_experimenters_study_pages_at_320_px(
    live_server, narrow_page, answered_study, sim_study
):
    services.compute_snapshot(sim_study.pk)  # the report page shows a computed report
    page, found = narrow_page, []
    for name, path in [
        ("study overview", f"/studies/{answered_study.pk}/"),
        ("progress", f"/studies/{answered_study.pk}/progress/"),
        ("report", f"/reports/{sim_study.pk}/"),
    ]:
        page.goto(live_server.url + path)
        page.wait_for_selector("main h1")
        assert page.is_visible("header.site-header form.inline button")  # Log out, logged in
        found += [f"{name}: {f}" for f in too_wide_beside_tables(page)]
        logout = page.eval_on_selector(
            "header.site-header form.inline button", "b => b.getBoundingClientRect().right"
        )
        if logout > REFLOW["width"] + 1:
            found.append(f"{name}: the Log out button's right edge is at {logout} px")
    assert not found, "experimenter pages that do not reflow at 320 px (WCAG 1.4.10):\n" + (
        "\n".join(found)
    )


def test_it_leaves_a_wide_data_table_out_of_the_reflow_check_but_not_what_is_beside_it(
    narrow_page,
):
    page = narrow_page
    page.set_content('<html lang="en"><body style="margin:0"><table><tr><td style="width:500px">'
                     'x</td></tr></table><div id="wide" style="width:400px">x</div>'
                     "</body></html>")  # fmt: skip
    (finding,) = too_wide_beside_tables(page)
    assert "div#wide (right edge 400)" in finding and "td" not in finding
