"""The paragraph the consent page adds after the researcher's consent text: what happens to the
answers of a participant who stops before the end. Closing the page keeps them (partial data,
the participant can still ask for their deletion); pressing "Leave the study" deletes them unless
the study keeps them (`withdrawn_answers`, recorded on the participant who agrees:
`Participant.answers_on_leave`, which `flow_withdraw.withdraw` follows). A participant who does
not pass the headphone check ends there (`screened_out`, no "Leave" button): their questionnaire
answers and screening results stay (participants.csv). Whatever is kept can be deleted on request
by the participant ID every participant page shows (`Participant.quoted_id`)."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import override

from evalsite.studies.models import Study

# Keyed by `withdrawn_answers`; the study form's choices name the same keys.
STOPPING: dict[str, Promise] = {
    "delete": _(
        "Taking part is voluntary and you may stop at any time. If you press “Leave the study” "
        "on the pages that follow, the answers you have already given are deleted. If you "
        "simply close this page before the end, the answers you have already given are kept "
        "and may be analysed. If you do not pass the headphone check, the study ends there; "
        "your questionnaire answers and the results of the check are kept and may be analysed. "
        "You can ask the researchers to delete whatever is kept by quoting your participant ID, "
        "shown at the bottom of each page."
    ),
    "keep": _(
        "Taking part is voluntary and you may stop at any time, by pressing “Leave the study” "
        "on the pages that follow or by closing this page. Either way, the answers you have "
        "already given are kept and may be analysed. If you do not pass the headphone check, "
        "the study ends there; your questionnaire answers and the results of the check are kept "
        "and may be analysed. You can ask the researchers to delete whatever is kept by quoting "
        "your participant ID, shown at the bottom of each page."
    ),
}


def on_leave_now(study: Study) -> str:
    """The `withdrawn_answers` the consent page shows now, and records for one who agrees."""
    return "keep" if study.setting("withdrawn_answers") == "keep" else "delete"


def stopping_paragraph(on_leave: str) -> Promise:
    """The paragraph for a `withdrawn_answers` value, translated when rendered (in the
    participant's language)."""
    return STOPPING[on_leave]


def stopping_paragraph_in_english(on_leave: str) -> str:
    """The paragraph for a `withdrawn_answers` value as the (English) study form shows it."""
    with override("en"):
        return str(STOPPING[on_leave])
