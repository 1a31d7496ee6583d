"""The trials CSV import: rows to unsaved trials, every problem named by file, line and column."""

from __future__ import annotations

import csv

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evalsite.stimuli.models import Catalogue, Clip
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
        + f"{c[0].token},{c[1].token},{c[3].token},drums\n"
        + f"nope,{c[1].token},{c[2].token},drums\n"  # line 5
    )
    trials, errors = parse_trials_csv(text, "t.csv", study, study.owner)
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
    trials, errors = parse_trials_csv(text, "t.csv", study, study.owner)
    assert [e.split(":")[0] for e in errors] == ["t.csv, line 3", "t.csv, line 5"]
    assert "field 'instrument' = 'dr\\nums'" in errors[0]


def test_it_reads_the_empty_trailing_columns_a_spreadsheet_writes(study):
    c = clips(study)
    text = (
        "reference,candidate_a,candidate_b,instrument,,\n"
        + f"{c[0].token},{c[1].token},{c[2].token},drums,,\n"
        + f"{c[0].token},{c[1].token},{c[2].token},bass,, \n"
    )
    trials, errors = parse_trials_csv(text, "sheet.csv", study, study.owner)
    assert errors == [] and [t.instrument for t in trials] == ["drums", "bass"]
    trials, errors = parse_trials_csv(text + f"{c[0].token},{c[1].token},{c[3].token},bass,,x\n",
                                      "sheet.csv", study, study.owner)  # fmt: skip
    assert errors == [
        "sheet.csv, line 4: column 6 = 'x': 6 fields, the header has 4; "
        "expected at most 4 (or empty ones after them)"
    ]


def test_it_refuses_a_row_with_more_fields_than_the_header(study):
    c = clips(study)
    text = (
        "reference,candidate_a,candidate_b,instrument,model_choice\n"
        + f"{c[0].token},{c[1].token},{c[2].token},drums,a,b,0.7\n"
    )
    trials, errors = parse_trials_csv(text, "extra.csv", study, study.owner)
    assert len(errors) == 1
    assert errors[0].startswith("extra.csv, line 2: column 6 = 'b': 7 fields, the header has 5")


def test_it_refuses_a_header_column_it_does_not_know(study):
    c = clips(study)
    text = (
        "reference,candidate_a,candidate_b,instrument,model_choise,model_margin\n"
        + f"{c[0].token},{c[1].token},{c[2].token},drums,b,0.7\n"
    )
    trials, errors = parse_trials_csv(text, "typo.csv", study, study.owner)
    assert trials == [] and len(errors) == 1
    assert errors[0].startswith("typo.csv, line 1: column 5 = 'model_choise': not a known column")
    assert "reference, candidate_a, candidate_b, instrument, is_practice" in errors[0]


def test_it_refuses_a_header_naming_a_column_twice(study):
    c = clips(study)
    text = HEADER.strip() + ",instrument\n" + f"{c[0].token},{c[1].token},{c[2].token},drums,bass\n"
    trials, errors = parse_trials_csv(text, "twice.csv", study, study.owner)
    assert errors == [
        "twice.csv, line 1: column 5 = 'instrument': repeats column 4; expected each column once"
    ]


def test_it_refuses_a_model_margin_that_is_not_a_finite_number(study):
    c = clips(study)
    rows = [f"{c[0].token},{c[1].token},{c[2].token},drums,a,{m}\n" for m in ("nan", "-inf")]
    text = "reference,candidate_a,candidate_b,instrument,model_choice,model_margin\n" + "".join(
        rows
    )
    trials, errors = parse_trials_csv(text, "m.csv", study, study.owner)
    assert errors == [
        f"m.csv, line {line}: field 'model_margin' = {m!r}: expected a finite number or empty"
        for line, m in ((2, "nan"), (3, "-inf"))
    ]


def test_it_refuses_a_practice_row_with_a_catch_kind(study):
    c = clips(study)
    text = (
        "reference,candidate_a,candidate_b,instrument,is_practice,catch_kind,expected\n"
        + f"{c[0].token},{c[1].token},{c[2].token},drums,yes,,a\n"
        + f"{c[0].token},{c[1].token},{c[2].token},drums,true,attention,a\n"
    )
    trials, errors = parse_trials_csv(text, "p.csv", study, study.owner)
    assert errors == [
        "p.csv, line 3: field 'is_practice' = 'true' with field 'catch_kind' = 'attention': "
        "a practice trial is not a catch trial; expected is_practice false or catch_kind empty"
    ]


def test_it_refuses_a_clip_name_that_several_clips_share(alice, study):
    c = clips(study)
    other = Catalogue.objects.create(owner=alice, name="second")
    Clip.objects.create(catalogue=other, name=c[0].name, status="ready", duration_s=5.0)
    text = HEADER + f"{c[0].name},{c[1].token},{c[2].token},drums\n"
    trials, errors = parse_trials_csv(text, "amb.csv", study, study.owner)
    assert errors == [
        f"amb.csv, line 2: field 'reference' = {c[0].name!r}: 2 ready clips have this name; "
        "expected the token or id of one of them"
    ]


def test_it_reads_a_clip_id_as_that_clip_before_another_clips_name(alice, study):
    c = clips(study)
    other = Catalogue.objects.create(owner=alice, name="second")
    named_like_id = Clip.objects.create(catalogue=other, name=str(c[1].pk), status="ready")
    named_like_token = Clip.objects.create(catalogue=other, name=c[2].token, status="ready")
    text = HEADER + f"{c[0].token},{c[1].pk},{c[2].token},drums\n"
    trials, errors = parse_trials_csv(text, "ids.csv", study, study.owner)
    assert errors == []
    assert trials[0].candidate_a == c[1] != named_like_id
    assert trials[0].candidate_b == c[2] != named_like_token


def test_it_answers_a_cell_over_the_csv_size_limit_with_a_form_error(client, alice, study):
    c = clips(study)
    text = (
        HEADER
        + f"{c[0].token},{c[1].token},{c[2].token},drums\n"
        + f"{'x' * (csv.field_size_limit() + 1)},{c[1].token},{c[2].token},drums\n"
    )
    client.force_login(alice)
    before = study.trials.count()
    url = reverse("studies:trials_csv", args=[study.pk])
    response = client.post(url, {"csv_file": SimpleUploadedFile("big.csv", text.encode())})
    assert response.status_code == 400
    errors = response.context["csv_form"].errors["csv_file"]
    assert errors == [
        f"big.csv, line 3: not readable as CSV (field larger than field limit "
        f"({csv.field_size_limit()})); nothing from here on was read"
    ]
    assert study.trials.count() == before


def test_it_refuses_trials_whose_clips_give_the_answer_away_or_repeat_a_candidate(study):
    """A main or attention trial never holds its reference as a candidate, no trial has the same
    clip twice as candidates, and an identical catch trial holds the reference at the position
    of its expected answer (where participants are scored against it)."""
    r, x, y = (c.pk for c in clips(study)[:3])
    text = (
        "reference,candidate_a,candidate_b,instrument,catch_kind,expected,is_practice\n"
        f"{r},{r},{y},drums,,,\n"  # line 2: a main trial holding its reference
        f"{r},{x},{x},drums,,,\n"  # line 3: the same candidate twice
        f"{r},{x},{r},drums,attention,a,\n"  # line 4: an attention trial holding its reference
        f"{r},{r},{y},drums,identical,b,\n"  # line 5: the reference, but not where expected
        f"{r},{r},{r},drums,identical,a,\n"  # line 6: the reference as both candidates
        f"{r},{x},{r},drums,,a,true\n"  # line 7: a practice trial's wrong answer is the reference
        f"{r},{r},{y},drums,identical,a,\n"  # fine: an identical catch trial
        f"{r},{x},{r},drums,,b,true\n"  # fine: an identical practice trial
        f"{r},{x},{y},drums,,,\n"  # fine: a main trial
    )
    trials, errors = parse_trials_csv(text, "t.csv", study, study.owner)
    assert len(trials) == 3
    assert [e.split(": ", 2)[:2] for e in errors] == [
        ["t.csv, line 2", f"field 'candidate_a' = '{r}'"],
        ["t.csv, line 3", f"field 'candidate_b' = '{x}'"],
        ["t.csv, line 4", f"field 'candidate_b' = '{r}'"],
        ["t.csv, line 5", f"field 'candidate_b' = '{y}'"],
        ["t.csv, line 6", f"field 'candidate_b' = '{r}'"],
        ["t.csv, line 7", f"field 'candidate_b' = '{r}'"],
    ]
    assert errors[0].endswith("the reference itself; expected another clip (only an identical "
                              "catch or practice trial holds the reference, as its expected "
                              "answer)")  # fmt: skip
    assert "expected two different candidates" in errors[1]
    assert "expected the reference itself, as an identical catch trial's expected answer ('b')" \
        in errors[3]  # fmt: skip


def test_it_reads_the_model_designed_column_as_the_trials_flag(study):
    """A researcher who designed trials with their own model elsewhere marks them, so that the
    shared-candidate rule keeps them apart (docs/site.md, Design rules); blank is false."""
    c = clips(study)
    values = ("true", "1", "Yes", "false", "0", "no", "")
    # six drums trials (candidate_b: clips 2-7), then one on bass
    cells = [(c[2 + i % 6].token, ("drums", "bass")[i // 6]) for i in range(len(values))]
    rows = [f"{c[0].token},{c[1].token},{b},{i},{v}\n" for (b, i), v in zip(cells, values)]
    text = "reference,candidate_a,candidate_b,instrument,model_designed\n" + "".join(rows)
    trials, errors = parse_trials_csv(text, "own.csv", study, study.owner)
    assert errors == []
    assert [t.model_designed for t in trials] == [True, True, True, False, False, False, False]
    trials, errors = parse_trials_csv(HEADER + rows[0][: -len("true\n") - 1] + "\n", "t.csv",
                                      study, study.owner)  # fmt: skip
    assert errors == [] and not trials[0].model_designed  # no column: not model-designed


def test_it_refuses_a_model_designed_value_it_does_not_know_and_adds_nothing(client, alice, study):
    c = clips(study)
    text = (
        "reference,candidate_a,candidate_b,instrument,model_designed\n"
        + f"{c[0].token},{c[1].token},{c[2].token},drums,yes\n"
        + f"{c[0].token},{c[1].token},{c[3].token},drums,maybe\n"
    )
    client.force_login(alice)
    before = study.trials.count()
    url = reverse("studies:trials_csv", args=[study.pk])
    response = client.post(url, {"csv_file": SimpleUploadedFile("md.csv", text.encode())})
    assert response.status_code == 400
    assert response.context["csv_form"].errors["csv_file"] == [
        "md.csv, line 3: field 'model_designed' = 'maybe': expected true/false, 1/0, yes/no "
        "or empty"
    ]
    assert study.trials.count() == before


def test_it_refuses_model_designed_on_a_practice_or_catch_row(study):
    c = clips(study)
    text = (
        "reference,candidate_a,candidate_b,instrument,is_practice,catch_kind,expected,"
        "model_designed\n"
        + f"{c[0].token},{c[1].token},{c[2].token},drums,yes,,a,true\n"
        + f"{c[0].token},{c[0].token},{c[2].token},drums,,identical,a,1\n"
        + f"{c[0].token},{c[1].token},{c[3].token},drums,,,,1\n"
    )
    trials, errors = parse_trials_csv(text, "k.csv", study, study.owner)
    assert errors == [
        f"k.csv, line {line}: field 'model_designed' = {v!r}: the shared-candidate rule concerns "
        "main trials only; expected false or empty on a practice or catch trial"
        for line, v in ((2, "true"), (3, "1"))
    ]
