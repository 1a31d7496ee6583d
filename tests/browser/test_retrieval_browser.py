"""The retrieval page's piece finder in real headless Chromium, by keyboard alone: Tab reaches the
find field from the catalogue (past its Show catalogue button), Enter there finds (a GET that
lists the matching pieces, no search), the piece list is chosen with the arrow keys, and Enter in
top-k searches with that piece. The page lists at most PIECE_LIST_MAX pieces and passes axe
(WCAG 2.1 AA). The catalogue changes only from its button, never from an arrow key in the
select, and no GET carries the search form's CSRF token."""

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
    assert focused(page) == ":submit"  # Show catalogue
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


@pytest.fixture
def two_catalogues(browser, live_server, django_user_model):
    """ada's two catalogues ("first" with pieces Alpha..., "second" with Beta...) and a logged-in
    browser session; the context is made by the test (with or without JavaScript)."""
    ada = django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")
    catalogues = []
    for name, piece in (("first", "Alpha"), ("second", "Beta")):
        catalogue = Catalogue.objects.create(owner=ada, name=name)
        Clip.objects.bulk_create(
            Clip(catalogue=catalogue, name=f"take {i}", piece=f"{piece}{i}", status="ready")
            for i in range(3)
        )
        catalogues.append(catalogue)
    client = Client()
    client.force_login(ada)
    return catalogues, client.cookies["sessionid"].value


@pytest.mark.parametrize("javascript", [True, False], ids=["script", "no-script"])
def test_it_changes_the_catalogue_only_from_its_button_and_never_puts_the_csrf_token_in_a_url(
    browser, live_server, two_catalogues, javascript
):
    # WCAG 3.2.2: an arrow key in the Catalogue select must not load another page; the GET that
    # shows the chosen catalogue must not carry the search form's CSRF token (browser history,
    # access logs, proxies), with or without JavaScript.
    (first, second), session = two_catalogues
    context = browser.new_context(locale="en-US", java_script_enabled=javascript)
    context.set_default_timeout(WAIT_MS)
    context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
    page = context.new_page()
    urls: list[str] = []  # every request's
    pages: list[str] = []  # the pages loaded (navigations)
    page.on("request", lambda request: urls.append(request.url))
    page.on("request", lambda r: pages.append(r.url) if r.is_navigation_request() else None)
    page.goto(f"{live_server.url}/retrieval/?catalogue={first.pk}")
    page.focus("select[name=catalogue]")
    page.keyboard.press("ArrowDown")
    # A fixed wait, the one kind here: what is shown is that no page starts loading in it.
    page.wait_for_timeout(1500)
    assert page.eval_on_selector("select[name=catalogue]", "s => s.value") == str(second.pk)
    assert pages == [f"{live_server.url}/retrieval/?catalogue={first.pk}"]
    assert focused(page) == "catalogue:select-one"  # focus stays on the select
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Show catalogue"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert f"catalogue={second.pk}" in page.url
    assert page.eval_on_selector("select[name=catalogue]", "s => s.value") == str(second.pk)
    assert clip_options(page) and all(
        "Beta" in t
        for t in page.eval_on_selector_all(
            "select[name=clip] option[value]:not([value=''])", "os => os.map(o => o.text)"
        )
    )
    assert not [u for u in urls if "csrfmiddlewaretoken" in u], urls
    context.close()
