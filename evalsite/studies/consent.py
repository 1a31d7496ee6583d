"""The paragraph the consent page adds after the researcher's consent text: what happens to the
answers of a participant who stops before the end. Closing the page keeps them (partial data,
the participant can still ask for their deletion); pressing "Leave the study" deletes them unless
the study keeps them (`withdrawn_answers`, recorded on the participant who agrees:
`Participant.answers_on_leave`, which `flow_withdraw.withdraw` follows). Where the study screens
(`screening`), a participant who does not pass the headphone check ends there (`screened_out`, no
"Leave" button): their questionnaire answers and screening results stay (participants.csv).
Whatever is kept can be deleted on request by the participant ID every participant page shows
(`Participant.quoted_id`)."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import override

from evalsite.studies.models import Study

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
