"""Layout checks the accessibility tests run in the browser where axe cannot judge: reflow (WCAG
1.4.10), text resized to 200 % (1.4.4) and text spacing (1.4.12). Each returns what it found as
lines naming the element, so that a test can report every page's findings at once."""

from __future__ import annotations

# 1280x1024 at 400 % zoom: the 320 CSS px wide window WCAG 1.4.10 asks content to reflow into.
REFLOW = {"width": 320, "height": 256}
# 1280x800 at 200 % zoom: Chromium's zoom shrinks the window in CSS px and doubles device pixels.
ZOOM_200 = {"viewport": {"width": 640, "height": 400}, "device_scale_factor": 2}
# The text-spacing bookmarklet's style sheet (Steve Faulkner's, cited by WCAG's Understanding
# 1.4.12): the minimum spacing a user may set, which must lose no content.
TEXT_SPACING = """* { line-height: 1.5 !important; letter-spacing: 0.12em !important;
  word-spacing: 0.16em !important; }
p { margin-bottom: 2em !important; }"""

# A short name for an element in a finding: tag, id, classes.
_NAME_JS = """el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + [...el.classList].map(c => '.' + c).join('')"""

# Elements past the window's right edge whose children are not (the ones that push it wider).
_TOO_WIDE_JS = f"""() => {{
  const name = {_NAME_JS}, limit = document.documentElement.clientWidth + 1;
  const past = el => el.getBoundingClientRect().right > limit;
  return [...document.body.querySelectorAll('*')]
    .filter(el => past(el) && ![...el.children].some(past))
    .slice(0, 5).map(el => `${{name(el)}} (right edge ${{el.getBoundingClientRect().right}})`);
}}"""


def too_wide(page) -> list[str]:
    """Sideways scrolling on the page as it is now: empty when it fits its window's width (the
    width beside the vertical scrollbar, if one is shown), else what sticks out."""
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    if scroll <= client + 1:
        return []
    return [f"the page is {scroll} px wide in a {client} px window: " + ", ".join(
        page.evaluate(_TOO_WIDE_JS))]  # fmt: skip


# As _TOO_WIDE_JS, leaving out what sticks out inside a data table: WCAG 1.4.10 exempts content
# whose meaning needs two-dimensional layout, and a wide table may scroll sideways.
_TOO_WIDE_BESIDE_TABLES_JS = f"""() => {{
  const name = {_NAME_JS}, limit = document.documentElement.clientWidth + 1;
  const past = el => el.getBoundingClientRect().right > limit;
  return [...document.body.querySelectorAll('*')]
    .filter(el => past(el) && ![...el.children].some(past) && !el.closest('table'))
    .slice(0, 5).map(el => `${{name(el)}} (right edge ${{el.getBoundingClientRect().right}})`);
}}"""


def too_wide_beside_tables(page) -> list[str]:
    """What sticks out past the window's right edge on the page as it is now, apart from data
    tables and their cells (an experimenter's page of figures may hold a table wider than a
    320 px window: 1.4.10's exception for two-dimensional content)."""
    found = page.evaluate(_TOO_WIDE_BESIDE_TABLES_JS)
    width = page.evaluate("document.documentElement.clientWidth")
    return [f"sticks out of the {width} px window: " + ", ".join(found)] if found else []


# How many lines an element's text is laid out on: the distinct tops of its text's boxes (an
# element's own boxes would not say: a flex item is one box however many lines it holds).
_LINES_JS = """els => els.map(el => {
  const range = document.createRange();
  range.selectNodeContents(el);
  const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
  return [el.textContent, tops.size];
})"""


def wrapped(page, selector: str) -> list[str]:
    """Each element matching `selector` whose text is broken over more than one line (a short
    label such as a language's name, which reads wrongly when split: 日/本/語)."""
    lines = page.eval_on_selector_all(selector, _LINES_JS)
    return [f"{selector} {text!r} is broken over {n} lines" for text, n in lines if n > 1]


# Scroll `selector`'s element into view vertically: its box afterwards, and how far the page
# then stands scrolled sideways.
_SCROLL_TO_JS = """selector => {
  const el = document.querySelector(selector);
  if (!el || !el.getClientRects().length) return null;
  el.scrollIntoView({block: 'nearest', inline: 'nearest'});
  const r = el.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, scrollX: window.scrollX,
          width: document.documentElement.clientWidth, height: window.innerHeight};
}"""


def out_of_reach(page, selectors: tuple[str, ...]) -> list[str]:
    """Each of `selectors` that cannot be brought whole into the window by scrolling down or up
    alone (it is missing, hidden, or needs scrolling sideways)."""
    found = []
    for selector in selectors:
        box = page.evaluate(_SCROLL_TO_JS, selector)
        if box is None:
            found.append(f"{selector} is not shown")
        elif (box["scrollX"] != 0 or box["left"] < -1 or box["right"] > box["width"] + 1
              or box["top"] < -1 or box["bottom"] > box["height"] + 1):  # fmt: skip
            found.append(f"{selector} is out of reach by vertical scrolling: {box}")
    page.evaluate("window.scrollTo(0, 0)")
    return found


_BOXES_JS = """selectors => selectors.map(s => {
  const el = document.querySelector(s);
  if (!el || !el.getClientRects().length) return null;
  const r = el.getBoundingClientRect();
  return {left: r.left + window.scrollX, right: r.right + window.scrollX,
          top: r.top + window.scrollY, bottom: r.bottom + window.scrollY,
          clipped: getComputedStyle(el).display !== 'inline'  // inline text has no box of its own
            && (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)};
})"""


def overlapping(page, selectors: tuple[str, ...]) -> list[str]:
    """Each of `selectors` missing, wider than the page, its own content spilling over its box,
    and each pair of them whose boxes overlap."""
    boxes = dict(zip(selectors, page.evaluate(_BOXES_JS, list(selectors)), strict=True))
    width = page.evaluate("document.documentElement.clientWidth")
    found = [f"{s} is not shown" for s, box in boxes.items() if box is None]
    shown = {s: box for s, box in boxes.items() if box is not None}
    for s, box in shown.items():
        if box["left"] < 0 or box["right"] > width + 1:
            found.append(f"{s} runs past the page's {width} px width: {box}")
        if box["clipped"]:
            found.append(f"{s}: its content spills over its box")
    names = list(shown)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p, q = shown[a], shown[b]
            if (p["left"] < q["right"] - 1 and q["left"] < p["right"] - 1
                    and p["top"] < q["bottom"] - 1 and q["top"] < p["bottom"] - 1):  # fmt: skip
                found.append(f"{a} overlaps {b}: {p} / {q}")
    return found


# Elements that hide what overflows them (overflow hidden or clip) and hold text that overflows.
# Text hidden on purpose for screen readers only (clip: rect(0 0 0 0), the .sr-only pattern) and
# elements not rendered are left out; inline elements have no overflow of their own.
_CLIPPED_TEXT_JS = f"""() => {{
  const name = {_NAME_JS};
  return [...document.body.querySelectorAll('*')].filter(el => {{
    const s = getComputedStyle(el);
    const hides = [s.overflowX, s.overflowY].some(v => v === 'hidden' || v === 'clip');
    return hides && s.display !== 'inline' && s.clip === 'auto' && el.getClientRects().length
      && el.innerText.trim()
      && (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1);
  }}).map(el => `${{name(el)}} clips its text (${{el.scrollWidth}}x${{el.scrollHeight}} in `
              + `${{el.clientWidth}}x${{el.clientHeight}})`);
}}"""

# Shown buttons whose label's box reaches outside the button's own box.
_LABELS_OUT_JS = f"""() => {{
  const name = {_NAME_JS};
  return [...document.querySelectorAll('button, .button')].filter(b => {{
    if (!b.getClientRects().length || !b.textContent.trim()) return false;
    const range = document.createRange();
    range.selectNodeContents(b);
    const t = range.getBoundingClientRect(), r = b.getBoundingClientRect();
    return t.left < r.left - 1 || t.right > r.right + 1 || t.top < r.top - 1
      || t.bottom > r.bottom + 1;
  }}).map(b => `${{name(b)}}: its label runs outside the button`);
}}"""


def clipped_text(page) -> list[str]:
    """Text cut off by an element that hides its overflow, and button labels outside their
    buttons, on the page as it is now."""
    return page.evaluate(_CLIPPED_TEXT_JS) + page.evaluate(_LABELS_OUT_JS)
