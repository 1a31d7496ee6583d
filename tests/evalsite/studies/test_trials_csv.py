"""The trials CSV import: rows to unsaved trials, every problem named by file, line and column."""

from __future__ import annotations

import pytest

from evalsite.stimuli.models import Clip
from evalsite.studies.trials_csv import parse_trials_csv
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

HEADER = "reference,candidate_a,candidate_b,instrument\n"


def clips(study) -> list[Clip]:
    return list(Clip.objects.filter(catalogue=study.catalogue).order_by("id"))


def test_it_names_the_line_of_a_bad_row_below_a_blank_line(study):
    c = clips(study)
    text = (
        HEADER
        + f"{c[0].token},{c[1].token},{c[2].token},drums\n"
        + "\n"  # line 3
        + f"{c[0].token},{c[1].token},{c[2].token},drums\n"
        + f"nope,{c[1].token},{c[2].token},drums\n"  # line 5
    )
    trials, errors = parse_trials_csv(text, "t.csv", study)
    assert errors == [
        "t.csv, line 5: field 'reference' = 'nope': expected the token, id or name of a ready clip"
    ]


def test_it_names_the_line_where_a_record_with_a_quoted_line_break_starts(study):
    c = clips(study)
    text = (
        HEADER
        + f'"{c[0].token}","{c[1].token}","{c[2].token}","drums"\n'
        + f'{c[0].token},{c[1].token},{c[2].token},"dr\nums"\n'  # lines 3 and 4
        + f"nope,{c[1].token},{c[2].token},drums\n"  # line 5
    )
    trials, errors = parse_trials_csv(text, "t.csv", study)
    assert [e.split(":")[0] for e in errors] == ["t.csv, line 3", "t.csv, line 5"]
    assert "field 'instrument' = 'dr\\nums'" in errors[0]
