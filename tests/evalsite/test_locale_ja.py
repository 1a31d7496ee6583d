"""The Japanese catalogue (evalsite/locale/ja): every string a participant can see has a Japanese
translation that is neither missing nor fuzzy, compiled into the committed .mo, and the wording
a review of the Japanese participant walk asked for stays fixed."""

from __future__ import annotations

import ast
import gettext
import re
import subprocess
from pathlib import Path

from django.template import engines
from django.templatetags.i18n import BlockTranslateNode, TranslateNode
from django.utils import translation

from tests.conftest import ROOT

LOCALE = ROOT / "evalsite" / "locale" / "ja" / "LC_MESSAGES"
# The participant's pages, and the error pages (mostly met by participants: a bad link, a
# refused request, a server error).
PARTICIPANT_TEMPLATES = [
    *sorted((ROOT / "templates" / "studies" / "participant").glob("*.html")),
    *(ROOT / "templates" / name for name in ("400.html", "404.html", "500.html")),
]
# Python modules whose translatable strings participants see (pages, forms, refusals, consent).
PARTICIPANT_MODULES = [
    ROOT / "evalsite" / "studies" / name
    for name in (
        "participant.py",
        "participant_forms.py",
        "participant_steps.py",
        "participant_render.py",
        "participant_previews.py",
        "consent.py",
    )  # fmt: skip
]
GETTEXT_NAMES = {"_", "gettext", "gettext_lazy", "pgettext", "pgettext_lazy"}


def po_entries(path: Path) -> list[dict]:
    """The .po file's entries but the header: {"ctx", "id", "str" (every msgstr[n]), "fuzzy"}.
    Obsolete (#~) entries are left out, as msgfmt leaves them out of the .mo."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        fuzzy = False
        for line in block.strip().splitlines():
            if line.startswith("#,"):
                fuzzy |= "fuzzy" in line
            elif line.startswith('"'):
                fields[key] += ast.literal_eval(line)
            elif not line.startswith("#"):
                key, value = line.split(" ", 1)
                fields[key] = ast.literal_eval(value)
        if fields.get("msgid"):
            strs = [v for k, v in fields.items() if k.startswith("msgstr")]
            entries.append({"ctx": fields.get("msgctxt"), "id": fields["msgid"], "str": strs,
                            "fuzzy": fuzzy})  # fmt: skip
    return entries


def template_msgids(path: Path) -> set[tuple[str | None, str]]:
    """(context, msgid) of every {% translate %} and {% blocktranslate %} in the template."""
    nodelist = engines["django"].from_string(path.read_text(encoding="utf-8")).template.nodelist
    found: set[tuple[str | None, str]] = set()
    for node in nodelist.get_nodes_by_type(TranslateNode):
        var = node.filter_expression.var
        context = node.message_context.var if node.message_context else None
        found.add((getattr(context, "literal", context), var.literal))
    for node in nodelist.get_nodes_by_type(BlockTranslateNode):
        msgid, _vars = node.render_token_list(node.singular)
        context = node.message_context.var if node.message_context else None
        found.add((getattr(context, "literal", context), msgid))
    return found


def python_msgids(path: Path) -> set[tuple[str | None, str]]:
    """(context, msgid) of every gettext call with literal arguments in the module."""
    found: set[tuple[str | None, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        name = getattr(node, "func", None) and getattr(node.func, "id", None)
        if isinstance(node, ast.Call) and name in GETTEXT_NAMES:
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if name.startswith("pgettext"):
                found.add((args[0], args[1]))
            elif args:
                found.add((None, args[0]))
    return found


def participant_msgids() -> set[tuple[str | None, str]]:
    found = set().union(*(template_msgids(p) for p in PARTICIPANT_TEMPLATES))
    return found.union(*(python_msgids(p) for p in PARTICIPANT_MODULES))


def test_it_finds_the_participant_strings_it_checks():
    # The checks below pass trivially if the extraction finds nothing.
    found = {msgid for _ctx, msgid in participant_msgids()}
    assert "Leave the study" in found  # {% translate %} in _base.html
    assert "Trial %(number)s of %(total)s" in found  # {% blocktranslate %} in trial.html
    assert "2 to 5 years" in found  # gettext_lazy in participant_forms.py
    assert len(found) > 80


def test_every_participant_string_has_a_japanese_translation_in_the_po_file():
    entries = {(e["ctx"], e["id"]): e for e in po_entries(LOCALE / "django.po")}
    missing = sorted(m for c, m in participant_msgids() if (c, m) not in entries)
    untranslated = sorted(
        m for c, m in participant_msgids() if (c, m) in entries and not all(entries[c, m]["str"])
    )
    fuzzy = sorted(m for c, m in participant_msgids() if entries.get((c, m), {}).get("fuzzy"))
    assert (missing, untranslated, fuzzy) == ([], [], [])


def test_the_po_file_has_no_fuzzy_entries():
    # msgfmt leaves a fuzzy entry out of the .mo, so the page would show the English silently.
    assert [e["id"] for e in po_entries(LOCALE / "django.po") if e["fuzzy"]] == []


def test_the_committed_mo_file_is_the_compiled_po_file(tmp_path):
    subprocess.run(
        ["msgfmt", "--check-format", "-o", tmp_path / "django.mo", LOCALE / "django.po"],
        check=True,
    )
    with open(tmp_path / "django.mo", "rb") as fresh, open(LOCALE / "django.mo", "rb") as kept:
        kept_catalog = gettext.GNUTranslations(kept)._catalog
        assert kept_catalog == gettext.GNUTranslations(fresh)._catalog


def _ja(msgid: str) -> str:
    with translation.override("ja"):
        return translation.gettext(msgid)


def test_the_japanese_training_answers_do_not_overlap_at_5_years():
    # "2 to 5 years" includes 5, "More than 5 years" does not; 以上 ("or more") would include it.
    assert _ja("2 to 5 years") == "2〜5年"
    assert "以上" not in _ja("More than 5 years") and "5年を超える" in _ja("More than 5 years")


def test_the_japanese_pages_call_the_study_jikken_throughout():
    # 研究 ("research") for the study on some pages and 実験 on others read as two things;
    # 研究者 (the researcher) is a different word.
    said = {
        m: _ja(m) for c, m in participant_msgids() if c is None and "%" not in m and _ja(m) != m
    }
    assert [m for m, ja in said.items() if re.search("研究(?!者)", ja)] == []
    assert "実験" in _ja("You have left the study")


def test_the_japanese_keys_sentence_offers_the_arrows_as_another_way_to_answer():
    english = (
        "Play all three excerpts to the end before answering; you may replay them as often as "
        "you like. Keys: 1 plays the reference, 2 plays A, 3 plays B; press the A or B key (or "
        "the left/right arrow) to answer."
    )
    assert "（または左右の矢印キー）" in _ja(english)


def test_no_japanese_string_calls_the_study_chousa():
    # 調査 ("survey") beside 実験 for the same study reads as two things: "同じ調査のリンク" is
    # not obviously the link of the 実験 the participant was sent to (findings_ra11y F2).
    said = [e["id"] for e in po_entries(LOCALE / "django.po") if any("調査" in s for s in e["str"])]
    assert said == []


def test_the_japanese_free_again_page_says_why_the_participant_was_turned_away_before():
    # Its heading is 試行に空きが出ました: the first sentence must not repeat it after an その後
    # that points back to nothing; the English says "since you were turned away".
    heading = _ja("Trials are free again")
    text = _ja(
        "Trials have become free again since you were turned away. Open the study's link "
        "again to take part."
    )
    first = text.split("。")[0]
    assert "ご参加いただけませんでした" in first and first != f"その後、{heading}"
    assert "実験のリンク" in text
