"""The links that send a participant back to Prolific at the end: with its completion code
(`done`) or with the study's screen-out code (`screened_out`)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from evalsite.studies.models import Participant


def prolific_redirect(p: Participant) -> str:
    """The study's Prolific completion URL with the code filled in ("" if none)."""
    url = p.study.setting("prolific_completion_url") or ""
    if not url:
        return ""
    if "{code}" in url:
        return url.replace("{code}", p.completion_code)
    if "cc=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}cc={p.completion_code}"


def prolific_screen_out_redirect(p: Participant) -> str:
    """Prolific's completion URL with the study's screen-out code as `cc` ("" unless the study
    has both): Prolific tells a screened-out submission from a complete one by that code. A
    random per-participant code (no study code set) would mean nothing to Prolific."""
    url, code = p.study.setting("prolific_completion_url"), p.study.setting("screen_out_code")
    if not (url and code and p.screen_out_code == code):
        return ""
    if "{code}" in url:
        return url.replace("{code}", code)
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "cc"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("cc", code)])))
