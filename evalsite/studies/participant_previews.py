"""A researcher's previews of a draft study (`pid=preview-...` links, and any draft's welcome
page, which only a researcher can see): who may preview (`previewing`), the signed cookie
naming the previews this browser entered (`note_preview`, `browser_previews`), and the pages
refusing a preview once its study left draft (`draft_page_over`, `preview_gone`), which say
what is true for this browser: what a preview it entered was deleted, or that nothing was stored;
a participant an older version stored through a preview link is no preview (`legacy_entry`).
Kept apart from the entry and page views (`participant`) that call them.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext as _

from evalsite.studies import flow
from evalsite.studies.models import Participant, Study
from evalsite.studies.participant_render import (
    not_accepting,
    not_accepting_text,
    page_language,
    refused,
)
from evalsite.studies.permissions import visible_studies

# The researcher's previews of a draft this browser entered ("slug:token", signed as the binding
# is): opening the study deletes them, and a tab left on one of their pages is then told it was a
# preview (`preview_gone`) rather than that the page is another session's.
PREVIEW_COOKIE = "csn_previews"


def shown_as_preview(request: HttpRequest) -> bool:
    """Whether this is the Continue of a welcome page shown as a draft's preview (its form says
    so, render_welcome): once the study left draft it is refused, whichever link it came by."""
    return request.method == "POST" and request.POST.get("preview") == "1"


def draft_page_over(request: HttpRequest, study: Study, status: str) -> HttpResponse | None:
    """The refusal of a preview link (`pid=preview-...`) or of a draft's welcome page continued
    (`shown_as_preview`) once the study, now in `status`, left draft; None for any other
    request. Neither goes on as a real participant: the researcher was shown a preview, and a
    preview link is never a participant's. The page says what is true for this browser: a
    preview it entered was deleted; a welcome page never continued stored nothing, and one
    opened by the study's own link need only be opened again (findings_rfollow F2). A preview
    link naming a stored participant that is no preview is that participant's (`legacy_entry`)."""
    preview_link = flow.is_preview_id(request.GET.get("pid", ""))
    if status == Study.Status.DRAFT or not (preview_link or shown_as_preview(request)):
        return None
    if not shown_as_preview(request) and legacy_entry(study, request):
        return None  # the study link's rules (flow.find_existing, may_resume) apply to it
    translation.activate(page_language(study, request))
    if any(entry.startswith(f"{study.slug}:") for entry in browser_previews(request)):
        return preview_over(request, study, status)  # this browser entered a preview of it
    if preview_link:
        return refused(request, _(
            "This is a preview link, for trying the study while it was a draft. The study is no "
            "longer a draft, so a preview link cannot be used to take part."
        ), detail=_take_part(status))  # fmt: skip
    if status != Study.Status.OPEN:
        return not_accepting(request, study, status)
    return refused(request, _(
        "This page was opened while the study was a draft, as a preview, and nothing was stored "
        "from it. The study is now open: to take part, open the study's link again."
    ))  # fmt: skip


def legacy_entry(study: Study, request: HttpRequest) -> bool:
    """Whether the link's recruitment ids name a stored participant of `study` that is not a
    preview (`is_preview` is set by the insert, under the study's row lock, and previews are
    deleted as the study leaves draft): one a version before cebf674 let in through a preview
    link opened after the study left draft, whose answers count. It comes back as any
    participant does; only a preview, or a new entry by a preview link, is refused
    (findings_rupg 2)."""
    found = flow.find_existing(study, request.GET)
    return found is not None and not found.is_preview


def preview_over(request: HttpRequest, study: Study, status: str) -> HttpResponse:
    """The page refusing a preview this browser entered once its study, now in `status`, left
    draft: a preview that went on would be a real participant whose answers count (what the
    preview stored was deleted as the study left draft)."""
    translation.activate(page_language(study, request))
    return refused(request, _(
        "This was a preview of the study while it was a draft. The study is no longer a draft, "
        "so a preview cannot continue: what it entered has been deleted."
    ), detail=_take_part(status))  # fmt: skip


def _take_part(status: str) -> str:
    """What a refused preview is told to do instead: the study's link while the study is open;
    paused or closed, what that link would say (it refuses too: findings_rdiff2, 2)."""
    if status != Study.Status.OPEN:
        return not_accepting_text(status)
    return _("To take part as a real participant, use the study's link.")


def preview_gone(request: HttpRequest, token: str) -> HttpResponse | None:
    """The preview page for a page of a preview this browser entered whose participant is gone
    (deleted as its study left draft); None otherwise. Only this browser's own previews."""
    slug = next(
        (e.split(":")[0] for e in browser_previews(request) if e.endswith(f":{token}")), None
    )
    if slug is None or Participant.objects.filter(token=token).exists():
        return None
    study = Study.objects.filter(slug=slug).first()
    return preview_over(request, study, study.status) if study is not None else None


def previewing(request: HttpRequest, study: Study) -> bool:
    """A researcher who can see a draft study may take it before it opens (a preview): nobody
    else can enter a draft, and what previews store is deleted when it opens or closes
    (experimenter.study_status)."""
    return (
        study.status == Study.Status.DRAFT
        and visible_studies(request.user).filter(pk=study.pk).exists()
    )


def note_preview(request: HttpRequest, response: HttpResponse, entry: str) -> None:
    """Add `entry` ("slug:token") to this browser's previews (PREVIEW_COOKIE, the last 20)."""
    entries = [e for e in browser_previews(request) if e != entry] + [entry]
    response.set_signed_cookie(
        PREVIEW_COOKIE, ",".join(entries[-20:]), salt=PREVIEW_COOKIE,
        max_age=settings.SESSION_COOKIE_AGE, secure=settings.SESSION_COOKIE_SECURE,
        httponly=True, samesite=settings.SESSION_COOKIE_SAMESITE,
    )  # fmt: skip


def browser_previews(request: HttpRequest) -> list[str]:
    """This browser's previews ("slug:token"), [] when it has none or the cookie is not ours."""
    try:
        raw = request.get_signed_cookie(
            PREVIEW_COOKIE, salt=PREVIEW_COOKIE, max_age=settings.SESSION_COOKIE_AGE
        )
    except (KeyError, signing.BadSignature):  # absent, tampered with, or expired
        return []
    return raw.split(",") if raw else []
