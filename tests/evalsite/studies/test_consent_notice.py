"""The consent page's own paragraph after the researcher's consent text says what this study does
with the answers of a participant who stops: closing the page keeps them (partial data), pressing
"Leave the study" deletes them unless the study keeps them (`withdrawn_answers`), and, where the
study screens, not passing the headphone check keeps the questionnaire and the check's results.
The study form shows the researcher that paragraph."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import to_step, url

pytestmark = pytest.mark.django_db

OLD_SENTENCE = {  # said "kept" whatever the study does on "Leave the study"
    "en": "If you stop before the end, the answers you have already given are kept",
    "ja": "途中で中止した場合、それまでの回答は保存され",
}
SAYS = {
    ("delete", "en"): [
        "If you press “Leave the study” on the pages that follow, the answers you have already "
        "given are deleted.",
        "If you simply close this page before the end, the answers you have already given are "
        "kept and may be analysed",
    ],
    ("delete", "ja"): [
        "次のページ以降にある「参加をやめる」を押すと、それまでの回答は削除されます。",
        "終了前にこのページを閉じただけの場合は、それまでの回答は保存され",
    ],
    ("keep", "en"): [
        "by pressing “Leave the study” on the pages that follow or by closing this page. Either "
        "way, the answers you have already given are kept and may be analysed",
    ],
    ("keep", "ja"): ["どちらの場合も、それまでの回答は保存され"],
}
SCREENED_OUT = {  # no "Leave" button there: what is kept; said only where the study screens
    "en": "If you do not pass the headphone check, the study ends there; your questionnaire "
    "answers and the results of the check are kept and may be analysed.",
    "ja": "ヘッドホンチェックに合格しなかった場合は、そこで終了となり、アンケートへの回答とチェック"
    "の結果は保存され",
}
ON_REQUEST = {  # how to have whatever is kept deleted
    "en": "You can ask the researchers to delete whatever is kept by quoting your participant ID, "
    "shown at the bottom of each page.",
    "ja": "各ページの下部に表示される参加者IDを添えて研究者に依頼すれば削除できます。",
}
NEVER = {  # the other setting's promise
    ("delete", "en"): ["Either way"],
    ("delete", "ja"): ["どちらの場合も"],
    ("keep", "en"): ["are deleted", "simply close"],
    ("keep", "ja"): ["削除されます", "閉じただけ"],
}


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("on_leave", ["delete", "keep"])
@pytest.mark.parametrize("screens", [True, False], ids=["screening", "no_screening"])
def test_it_says_what_this_study_does_with_the_answers_of_one_who_stops(
    client, listening_study, on_leave, lang, screens
):
    listening_study.settings = {**listening_study.settings, "withdrawn_answers": on_leave,
                                "languages": ["en", "ja"], "screening": screens}  # fmt: skip
    listening_study.save()
    p = to_step(client, enter(client, listening_study, lang=lang), "consent")
    assert p.language == lang
    page = client.get(url(p)).content.decode()
    for sentence in (*SAYS[on_leave, lang], ON_REQUEST[lang]):
        assert sentence in page
    for sentence in [OLD_SENTENCE[lang], *NEVER[on_leave, lang]]:
        assert sentence not in page
    assert (SCREENED_OUT[lang] in page) == screens  # no check described that never happens


def test_it_shows_the_researcher_the_paragraph_the_consent_page_adds(
    client, experimenter, listening_study
):
    client.force_login(experimenter)
    html = client.get(reverse("studies:study_edit", args=[listening_study.pk])).content.decode()
    help_text = re.search(r'id="id_consent_text_helptext">(.*?)</small>', html, re.S)
    assert help_text is not None
    said = (*SAYS["delete", "en"], *SAYS["keep", "en"], SCREENED_OUT["en"], ON_REQUEST["en"])
    for sentence in said:
        assert sentence in help_text.group(1)
    assert "Without headphone screening" in help_text.group(1)
