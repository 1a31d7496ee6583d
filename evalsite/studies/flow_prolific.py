"""The links that send a participant back to Prolific (or another panel) at the end: with its
completion code (`done`) or with the study's screen-out code (`screened_out`); and the pairing of
a Prolific completion URL with a study-wide completion code, which the settings page and Open
check.

Prolific accepts only the completion code(s) set on its own study, so a study with a Prolific
URL needs one code for everyone: the Completion code setting, or the `cc` the URL carries as
Prolific hands it out. A random per-participant code would mean nothing to Prolific (every
submission would arrive with an unknown code), as on the screen-out side. Another panel's URL
(a lab's, SONA's) is not paired: its {code} slot, or its `cc`, gets each participant's code."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from evalsite.studies.models import Participant, Study

# Prolific's hosts: its completion URLs are app.prolific.com/submissions/complete?cc=CODE
# (app.prolific.co and app.prolific.ac: its earlier domains, which older links and templates
# still name)
PROLIFIC_DOMAINS = ("prolific.com", "prolific.co", "prolific.ac")


def is_prolific(url: str) -> bool:
    """Whether `url` is Prolific's (its host prolific.com, .co or .ac, or one of their
    subdomains). One trailing dot is dropped: `app.prolific.com.` is the same host to a browser."""
    host = (urlsplit(url.strip()).hostname or "").lower()
    host = host[:-1] if host.endswith(".") else host
    return any(host == d or host.endswith(f".{d}") for d in PROLIFIC_DOMAINS)


def url_code(url: str) -> str:
    """The completion code the URL carries as `cc` ("" if none, or only the {code} slot),
    stripped of surrounding spaces as a typed code is (`?cc=C7XK2P9Q%20`)."""
    code = dict(parse_qsl(urlsplit(url.strip()).query)).get("cc", "").strip()
    return "" if "{code}" in code else code


def completion_code(study: Study) -> str:
    """The study-wide completion code: the Completion code setting, else the `cc` of its
    Prolific URL ("" if neither: each participant is given a random code). Possibly longer
    than a participant's stored code may be, where the settings were saved unchecked."""
    url = study.setting("prolific_completion_url") or ""
    return study.setting("completion_code") or (url_code(url) if is_prolific(url) else "")


def finish_code(study: Study) -> str:
    """The code stored for a participant who finishes: the study's (`completion_code`) where
    the column holds it, else "" (a random one is given): a setting saved unchecked, a URL's
    cc longer than the column, must not stop anyone finishing (the overview names it)."""
    code = completion_code(study)
    return code if len(code) <= _longest() else ""


def _longest() -> int:
    longest = Participant._meta.get_field("completion_code").max_length
    return 32 if longest is None else longest


def _cc_keys(url: str) -> list[str]:
    """The query keys of `url` that are `cc` in another case (`CC=`)."""
    return [k for k, _ in parse_qsl(urlsplit(url.strip()).query) if k != "cc" and k.lower() == "cc"]


def completion_problem(url: str, code: str) -> str:
    """Why a Prolific completion URL and a completion code do not go together ("" if they do,
    or there is no URL, or it is another panel's). `code` is the Completion code setting as it
    will be stored."""
    if not is_prolific(url):
        return ""
    if keys := _cc_keys(url):
        shown = ", ".join(f"{k}={dict(parse_qsl(urlsplit(url.strip()).query))[k]}" for k in keys)
        return (
            f"Completion code: the Prolific completion URL carries {shown}; Prolific's "
            "completion URL names its code with a lower-case cc (…/complete?cc=CODE). Write "
            "it as cc=, or paste the URL as Prolific gives it."
        )
    carried = url_code(url)
    if not code and not carried:
        return (
            "Completion code: required with a Prolific completion URL. Prolific accepts only "
            "the completion code(s) set on its study, and a random code per participant would "
            "mean nothing to it. Copy the study's completion code from Prolific here, or paste "
            "the completion URL as Prolific gives it (…/complete?cc=CODE)."
        )
    if len(code or carried) > _longest():
        return (
            f"Completion code: the Prolific completion URL's cc={carried} is longer than the "
            f"{_longest()} characters a completion code may have; expected Prolific's code. "
            "Participants who finish meanwhile are sent to Prolific with it, and stored with a "
            "random code of their own."
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


def sent_code(p: Participant) -> str:
    """The completion code the participant's done page shows and its link sends: with a
    Prolific URL, the study's code (`completion_code`), the one Prolific accepts, whatever code
    the participant was stored with (a random one, given before the study's code was taken from
    the URL, or where it was too long to store); else the participant's own."""
    return sent_code_of(p.study, p.completion_code)


def sent_code_of(study: Study, stored: str) -> str:
    """`sent_code` of a participant of `study` stored with the code `stored`, without reading
    the participant's study again (participants.csv takes it for every participant)."""
    url = study.setting("prolific_completion_url") or ""
    return (completion_code(study) if is_prolific(url) else "") or stored


def prolific_redirect(p: Participant) -> str:
    """The study's completion URL with `sent_code` ("" if the study has no URL)."""
    url = p.study.setting("prolific_completion_url") or ""
    return _with_cc(url, sent_code(p)) if url else ""


def prolific_screen_out_redirect(p: Participant) -> str:
    """Prolific's completion URL with the study's screen-out code as `cc` ("" unless the study
    has both): Prolific tells a screened-out submission from a complete one by that code. A
    random per-participant code (no study code set) would mean nothing to Prolific."""
    url, code = p.study.setting("prolific_completion_url"), p.study.setting("screen_out_code")
    if not (url and code and p.screen_out_code == code):
        return ""
    return _with_cc(url, code)
