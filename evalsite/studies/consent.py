"""The paragraph the consent page adds after the researcher's consent text: what happens to the
answers of a participant who stops before the end. Closing the page keeps them (partial data,
the participant can still ask for their deletion); pressing "Leave the study" deletes them unless
the study keeps them (`withdrawn_answers`, as `flow_withdraw.withdraw` does)."""

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
        "and may be analysed; you can ask the researchers to delete them by quoting your "
        "participant ID."
    ),
    "keep": _(
        "Taking part is voluntary and you may stop at any time, by pressing “Leave the study” "
        "on the pages that follow or by closing this page. Either way, the answers you have "
        "already given are kept and may be analysed; you can ask the researchers to delete "
        "them by quoting your participant ID."
    ),
}


def stopping_paragraph(study: Study) -> Promise:
    """This study's paragraph, translated when rendered (in the participant's language)."""
    return STOPPING["keep" if study.setting("withdrawn_answers") == "keep" else "delete"]


def stopping_paragraph_in_english(on_leave: str) -> str:
    """The paragraph for a `withdrawn_answers` value as the (English) study form shows it."""
    with override("en"):
        return str(STOPPING[on_leave])
