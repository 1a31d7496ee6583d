"""The paragraph the consent page adds after the researcher's consent text: what happens to the
answers of a participant who stops before the end. Closing the page keeps them (partial data,
the participant can still ask for their deletion); pressing "Leave the study" deletes them unless
the study keeps them (`withdrawn_answers`, recorded on the participant who agrees:
`Participant.answers_on_leave`, which `flow_withdraw.withdraw` follows). Where the study screens
(`screening`), a participant who does not pass the headphone check ends there (`screened_out`, no
"Leave" button): their questionnaire answers and screening results stay (participants.csv).
Whatever is kept can be deleted on request by the participant ID every participant page shows
(`Participant.quoted_id`).

What the page shows is one `ConsentPage` (`consent_page`): the study's consent text in the
participant's language, this paragraph and the one on what is recorded. Its exact content is a
`ConsentVersion` of the study, named by a hash (`version_sha256`); the form posts the one it
showed and a participant who agrees records it (`participant_steps.post_consent`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import override

from evalsite.studies.models import ConsentVersion, Study

# What "Leave the study" can do to the answers (`withdrawn_answers`); the study form's choices
# name the same keys.
ON_LEAVE = ("delete", "keep")

# Keyed by `withdrawn_answers` and whether the study screens (`screening`): without headphone
# screening no one is screened out, so the paragraph does not describe that check.
STOPPING: dict[tuple[str, bool], Promise] = {
    ("delete", True): _(
        "Taking part is voluntary and you may stop at any time. If you press “Leave the study” "
        "on the pages that follow, the answers you have already given are deleted. If you "
        "simply close this page before the end, the answers you have already given are kept "
        "and may be analysed. If you do not pass the headphone check, the study ends there; "
        "your questionnaire answers and the results of the check are kept and may be analysed. "
        "You can ask the researchers to delete whatever is kept by quoting your participant ID, "
        "shown at the bottom of each page."
    ),
    ("delete", False): _(
        "Taking part is voluntary and you may stop at any time. If you press “Leave the study” "
        "on the pages that follow, the answers you have already given are deleted. If you "
        "simply close this page before the end, the answers you have already given are kept "
        "and may be analysed. You can ask the researchers to delete whatever is kept by quoting "
        "your participant ID, shown at the bottom of each page."
    ),
    ("keep", True): _(
        "Taking part is voluntary and you may stop at any time, by pressing “Leave the study” "
        "on the pages that follow or by closing this page. Either way, the answers you have "
        "already given are kept and may be analysed. If you do not pass the headphone check, "
        "the study ends there; your questionnaire answers and the results of the check are kept "
        "and may be analysed. You can ask the researchers to delete whatever is kept by quoting "
        "your participant ID, shown at the bottom of each page."
    ),
    ("keep", False): _(
        "Taking part is voluntary and you may stop at any time, by pressing “Leave the study” "
        "on the pages that follow or by closing this page. Either way, the answers you have "
        "already given are kept and may be analysed. You can ask the researchers to delete "
        "whatever is kept by quoting your participant ID, shown at the bottom of each page."
    ),
}
# The last paragraph of every consent page: everything the site records about a participant.
# test_consent_recording.py checks it against every stored field and exported column (a new one
# fails there until this says it); a change here is a new consent version (`version_sha256`).
RECORDING = _(
    "We record your answers and how long each took, how often you played each sound and how "
    "much of it you heard, your questionnaire answers, the results of the headphone check, the "
    "IDs in your study link (such as your Prolific ID), which pages you reached and when, and "
    "in which language. From your browser we record its name and version, whether it supports "
    "the audio the study needs, its audio output sample rate, your screen and window size, "
    "whether your device has a touch screen, and how often and for how long you switched to "
    "another window or tab while answering. To limit repeated entries from one network, we "
    "keep a one-way coded form of your network address only as long as that limit needs it, "
    "never the address itself. We do not record audio from your device."
)
# The sentence a study without screening leaves out, named in the study form's help.
SCREENED_OUT_START = "If you do not pass the headphone check"


def on_leave_now(study: Study) -> str:
    """The `withdrawn_answers` the consent page shows now, and records for one who agrees."""
    return "keep" if study.setting("withdrawn_answers") == "keep" else "delete"


def stopping_paragraph(on_leave: str, study: Study) -> Promise:
    """The paragraph for a `withdrawn_answers` value in `study` (whether it screens), translated
    when rendered (in the participant's language)."""
    return STOPPING[on_leave, bool(study.setting("screening"))]


def stopping_paragraph_in_english(on_leave: str) -> str:
    """The paragraph for a `withdrawn_answers` value, with screening, as the (English) study form
    shows it."""
    with override("en"):
        return str(STOPPING[on_leave, True])


@dataclass(frozen=True)
class ConsentPage:
    """What the consent page shows a participant, in their language (`language`): the study's
    consent text, then the site's paragraphs on stopping (for `on_leave`) and on recording."""

    language: str
    consent_text: str
    stopping: str
    recording: str
    on_leave: str

    @property
    def text(self) -> str:
        """The page's paragraphs as the participant reads them, a blank line between."""
        return "\n\n".join(
            part for part in (self.consent_text, self.stopping, self.recording) if part
        )

    @property
    def sha256(self) -> str:
        return version_sha256(self.language, self.text)


def version_sha256(language: str, text: str) -> str:
    """A consent version's name: SHA-256 (hex) of the language code, a newline and the text,
    UTF-8. The language is in it so that one text shown in two languages is two versions."""
    return hashlib.sha256(f"{language}\n{text}".encode()).hexdigest()


def consent_page(study: Study, language: str) -> ConsentPage:
    """The consent page of `study` in `language` as it would be shown now."""
    on_leave = on_leave_now(study)
    with override(language):
        stopping, recording = str(stopping_paragraph(on_leave, study)), str(RECORDING)
    return ConsentPage(
        language, study.text("consent_text", language), stopping, recording, on_leave
    )


def shown_version(study: Study, page: ConsentPage) -> ConsentVersion:
    """The study's stored version of `page`, stored the first time it is shown."""
    version, _created = ConsentVersion.objects.get_or_create(
        study=study, sha256=page.sha256, defaults={"language": page.language, "text": page.text}
    )
    return version
