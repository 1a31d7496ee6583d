"""The retrieval page's piece finder in real headless Chromium, by keyboard alone: Tab reaches the
find field from the catalogue, Enter there finds (a GET that lists the matching pieces, no
search), the piece list is chosen with the arrow keys, and Enter in top-k searches with that
piece. The page lists at most PIECE_LIST_MAX pieces and passes axe (WCAG 2.1 AA)."""

from __future__ import annotations

import pytest
from django.test import Client

from evalsite.retrieval.views import PIECE_LIST_MAX
from evalsite.stimuli.models import Catalogue, Clip
from tests.browser.axe_audit import audit  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WAIT_MS = 15000
N = PIECE_LIST_MAX + 50


@pytest.fixture
def page(browser, live_server, django_user_model):
    ada = django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")
    catalogue = Catalogue.objects.create(owner=ada, name="big")
    Clip.objects.bulk_create(
        Clip(catalogue=catalogue, name=f"take {i}", piece=f"Track{i:05d}", status="ready")
        for i in range(N)
    )
    client = Client()
    client.force_login(ada)
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/retrieval/?catalogue={catalogue.pk}")
    yield page
    context.close()


def focused(page) -> str:
    return page.evaluate("document.activeElement.name + ':' + document.activeElement.type")


def clip_options(page) -> list[str]:
    return page.eval_on_selector_all(
        "select[name=clip] option", "os => os.map(o => o.value).filter(Boolean)"
    )


def test_it_finds_and_searches_a_piece_with_the_keyboard_alone(page, audit):  # noqa: F811
    assert len(clip_options(page)) == PIECE_LIST_MAX
    assert f"Listing {PIECE_LIST_MAX} of {N} pieces" in page.inner_text("#piece-count")
    audit(page, "retrieval, first pieces listed")
    page.focus("select[name=catalogue]")
    page.keyboard.press("Tab")
    assert focused(page) == "q:search"
    page.keyboard.type("track0014")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # finds: the find form's GET, not a search
    assert "q=track0014" in page.url and not page.query_selector("[role=alert]")
    assert len(clip_options(page)) == N - 140
    audit(page, "retrieval, pieces found")
    page.focus("input[type=search]")
    assert page.input_value("input[type=search]") == "track0014"
    page.keyboard.press("Tab")
    assert focused(page) == ":submit"  # Find
    page.keyboard.press("Tab")
    assert focused(page) == "clip:select-one"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # past "(upload a clip instead)" to the second piece
    chosen = page.eval_on_selector("select[name=clip]", "s => s.value")
    assert chosen == clip_options(page)[1]
    page.focus("input[name=k]")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # searches: nothing is embedded, which the page says
    assert page.query_selector("[role=alert]")
    assert page.eval_on_selector("select[name=clip]", "s => s.value") == chosen
    assert len(clip_options(page)) == N - 140  # still the pieces found
    audit.assert_clean()
