"""The accessibility audit the browser tests share: axe-core's WCAG 2.0 and 2.1 level A and AA
rules run on the page as it is now, every finding kept so that one test reports all its pages'
violations at once (test_accessibility.py, test_accessibility_states.py)."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

__all__ = ["Audit", "audit"]

# The success criteria of WCAG 2.0 and 2.1, levels A and AA (axe's tags); axe's "best-practice"
# rules are advice beyond WCAG and are not asserted here.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": WCAG_TAGS},
    "resultTypes": ["violations", "incomplete"],
}
# axe leaves an aria-describedby or aria-labelledby naming an id not on the page for review
# ("incomplete"), since a script could add that element later; these pages make their markup on
# the server, so such a reference is a broken label and fails here like a violation.
BROKEN_REFERENCE = "aria-valid-attr-value"


class Audit:
    """Runs axe on the page as it is now and keeps what it found, so that one run reports every
    page's violations at once (`assert_clean`) instead of stopping at the first."""

    def __init__(self) -> None:
        self.axe = Axe()  # bundles axe.min.js: nothing is fetched at run time
        self.found: list[str] = []

    def __call__(self, page, name: str) -> None:
        results = self.axe.run(page, options=AXE_OPTIONS).response
        broken = [v for v in results["incomplete"] if v["id"] == BROKEN_REFERENCE]
        for v in results["violations"] + broken:
            targets = "; ".join(" ".join(n["target"]) for n in v["nodes"])
            self.found.append(f"{name}: {v['id']} ({v['impact']}): {v['help']} -- {targets}")

    def assert_clean(self) -> None:
        assert not self.found, "accessibility violations (axe-core, WCAG 2.1 AA):\n" + "\n".join(
            self.found
        )


@pytest.fixture
def audit():
    return Audit()
