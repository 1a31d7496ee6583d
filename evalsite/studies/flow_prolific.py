"""The links that send a participant back to Prolific at the end: with its completion code
(`done`) or with the study's screen-out code (`screened_out`); and the pairing of a Prolific
completion URL with a study-wide completion code, which the settings page and Open check.

Prolific accepts only the completion code(s) set on its own study, so a study with a Prolific
URL needs one code for everyone: the Completion code setting, or the `cc` the URL carries as
Prolific hands it out. A random per-participant code would mean nothing to Prolific (every
submission would arrive with an unknown code), as on the screen-out side."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from evalsite.studies.models import Participant, Study


def url_code(url: str) -> str:
    """The completion code the URL carries as `cc` ("" if none, or only the {code} slot)."""
    code = dict(parse_qsl(urlsplit(url).query)).get("cc", "")
    return "" if "{code}" in code else code


def completion_code(study: Study) -> str:
    """The study-wide completion code: the Completion code setting, else the `cc` of its
    Prolific URL ("" if neither: each participant is given a random code)."""
    return study.setting("completion_code") or url_code(
        study.setting("prolific_completion_url") or ""
    )


def completion_problem(url: str, code: str) -> str:
    """Why a Prolific completion URL and a completion code do not go together ("" if they do,
    or there is no URL). `code` is the Completion code setting as it will be stored."""
    if not url:
        return ""
    carried = url_code(url)
    if not code and not carried:
        return (
            "Completion code: required with a Prolific completion URL. Prolific accepts only "
            "the completion code(s) set on its study, and a random code per participant would "
            "mean nothing to it. Copy the study's completion code from Prolific here, or paste "
            "the completion URL as Prolific gives it (…/complete?cc=CODE)."
        )
    longest = Participant._meta.get_field("completion_code").max_length
    if longest is not None and len(code or carried) > longest:
        return (
            f"Completion code: the Prolific completion URL's cc={carried} is longer than the "
            f"{longest} characters a completion code may have; expected Prolific's code."
        )
    if code and carried and code != carried:
        return (
            f"Completion code: {code}, but the Prolific completion URL carries cc={carried}. "
            "Participants would be shown one code and Prolific sent the other: give the same "
            "code in both, or leave Completion code empty to take the URL's."
        )
    return ""


def study_completion_problem(study: Study) -> str:
    """`completion_problem` of the study's settings as stored: a study saved before the settings
    page checked them, or through the admin, is refused at Open rather than changed."""
    return completion_problem(
        study.setting("prolific_completion_url") or "", study.setting("completion_code") or ""
    )


def _with_cc(url: str, code: str) -> str:
    """`url` with `code` in its {code} slot, else as its `cc` (replacing any)."""
    if "{code}" in url:
        return url.replace("{code}", code)
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "cc"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("cc", code)])))


def prolific_redirect(p: Participant) -> str:
    """The study's Prolific completion URL with the participant's completion code, the one its
    done page shows and participants.csv records ("" if the study has no URL)."""
    url = p.study.setting("prolific_completion_url") or ""
    return _with_cc(url, p.completion_code) if url else ""


def prolific_screen_out_redirect(p: Participant) -> str:
    """Prolific's completion URL with the study's screen-out code as `cc` ("" unless the study
    has both): Prolific tells a screened-out submission from a complete one by that code. A
    random per-participant code (no study code set) would mean nothing to Prolific."""
    url, code = p.study.setting("prolific_completion_url"), p.study.setting("screen_out_code")
    if not (url and code and p.screen_out_code == code):
        return ""
    return _with_cc(url, code)
