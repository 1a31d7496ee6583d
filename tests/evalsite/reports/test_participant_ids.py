"""Participant ids in the report's tables keep the export's type: integers where the export's ids
are integers (the site's answers.csv), in numeric order, so that filtering answers.csv by the
report's exclusions works; other ids (such as "p0001" or "007") stay text. An integer with a sign
or 19 digits is an integer as well, as pandas reads it, where it fits int64."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from evalsite.reports.analysis import ReportConfig, build_report
from evalsite.reports.analysis.__main__ import main, read_answers
from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers

# Simulated participants p0000 and p0001 are careless (excluded by the catch rule); they get the
# ids 3 and 10, which sort as text before 2 and 4 ("10" < "2", "3" > "12"). With this seed the
# one given id 12 is excluded too (same-position responding).
IDS = [3, 10, 1, 2, 4, 5, 6, 7, 8, 9, 11, 12]
EXCLUDED = {3, 10, 12}
CONFIG = {"n_boot": 20, "seed": 1, "mixed_model": False}


@pytest.fixture(scope="module")
def answers_csv(tmp_path_factory) -> Path:
    spec = SimulationSpec(n_participants=12, trials_per_instrument=5, careless_share=0.17, seed=4)
    answers = simulate_answers(spec)[0]
    answers["participant"] = answers["participant"].map({f"p{k:04d}": i for k, i in enumerate(IDS)})
    path = tmp_path_factory.mktemp("ids") / "answers.csv"
    answers.to_csv(path, index=False)
    return path


def _scored_count(answers: pd.DataFrame, excluded) -> int:
    """Scored answers (non-catch, with a model choice) of the participants not excluded."""
    kept = answers[~answers["participant"].isin(excluded)]
    return int((~kept["is_catch"] & kept["agree"].notna()).sum())


def test_it_gives_integer_ids_in_numeric_order_from_the_csv_command(answers_csv, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    assert main([str(answers_csv), "--out", str(tmp_path / "out"), "--config", str(config)]) == 0
    stored = json.loads((tmp_path / "out" / "report.json").read_text())["tables"]
    assert [r["participant"] for r in stored["participants"]] == sorted(IDS)
    assert {r["participant"] for r in stored["exclusions"]} == EXCLUDED
    assert all(type(r["participant"]) is int for r in stored["exclusions"])
    assert all(type(r["participant"]) is int for r in stored["participant_rates"])
    # A user filtering the export (read by pandas, integer ids) by the report's exclusions gets
    # the report's scored count.
    answers = pd.read_csv(answers_csv)
    excluded = pd.DataFrame(stored["exclusions"])["participant"]
    overall = next(r for r in stored["consent"] if r["term"] == "overall")
    assert _scored_count(answers, excluded) == overall["n"]
    from_csv = pd.read_csv(tmp_path / "out" / "tables" / "exclusions.csv")["participant"]
    assert _scored_count(answers, from_csv) == overall["n"]
    assert list(pd.read_csv(tmp_path / "out" / "tables" / "participants.csv")["participant"]) == (
        sorted(IDS)
    )


def test_it_gives_integer_ids_from_the_sites_dataframe(answers_csv):
    # The site's answers_dataframe holds participant ids as integers (Participant.pk).
    answers = pd.read_csv(answers_csv, keep_default_na=False)
    assert answers["participant"].dtype.kind == "i"
    report = build_report(answers, ReportConfig.from_dict(CONFIG))
    tables = report.to_dict()["tables"]
    assert [r["participant"] for r in tables["participants"]] == sorted(IDS)
    assert {r["participant"] for r in tables["exclusions"]} == EXCLUDED
    assert all(type(r["participant"]) is int for r in tables["participants"])


@pytest.mark.parametrize(
    "ids",
    [
        [f"p{i:02d}" for i in IDS],  # not numbers
        [f"{i:03d}" for i in IDS],  # numbers written with leading zeros: "007" is an id, not 7
    ],
)
def test_it_keeps_ids_that_are_not_plain_integers_as_text(answers_csv, ids):
    answers = read_answers(answers_csv)
    answers["participant"] = answers["participant"].map(dict(zip(map(str, IDS), ids)))
    tables = build_report(answers, ReportConfig.from_dict(CONFIG)).to_dict()["tables"]
    assert [r["participant"] for r in tables["participants"]] == sorted(ids)
    assert {r["participant"] for r in tables["exclusions"]} == {ids[IDS.index(i)] for i in EXCLUDED}


INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    "ids",
    [
        [-i for i in IDS],  # negative: "-3" reads back as -3, as pandas.read_csv reads it
        [INT64_MAX - i for i in IDS],  # 19 digits, within int64
        [-i if i % 2 else INT64_MAX - i for i in IDS],  # both, mixed
    ],
)
def test_it_gives_signed_and_19_digit_integer_ids_as_integers_in_numeric_order(answers_csv, ids,
                                                                            tmp_path):  # fmt: skip
    answers = pd.read_csv(answers_csv)
    answers["participant"] = answers["participant"].map(dict(zip(IDS, ids)))
    path = tmp_path / "answers.csv"
    answers.to_csv(path, index=False)
    exported = pd.read_csv(path)  # what a user filtering the export holds: int64, exactly
    assert exported["participant"].dtype == "int64"
    assert set(exported["participant"]) == set(ids)
    tables = build_report(read_answers(path), ReportConfig.from_dict(CONFIG)).to_dict()["tables"]
    assert [r["participant"] for r in tables["participants"]] == sorted(ids)
    excluded = [r["participant"] for r in tables["exclusions"]]
    assert set(excluded) == {ids[IDS.index(i)] for i in EXCLUDED}
    assert all(type(p) is int for p in excluded)
    overall = next(r for r in tables["consent"] if r["term"] == "overall")
    assert _scored_count(exported, excluded) == overall["n"]


@pytest.mark.parametrize(
    "odd",
    [
        str(INT64_MAX + 1),  # beyond int64: as an integer it would wrap or lose digits
        "-0",  # reads back as "0": no longer the id written
        "+3",  # reads back as "3"
        "3.0",
    ],
)
def test_it_keeps_every_id_text_when_one_is_not_an_int64_written_plainly(answers_csv, odd):
    answers = read_answers(answers_csv)
    ids = [odd if i == 1 else str(-i) for i in IDS]  # the others would be integers on their own
    answers["participant"] = answers["participant"].map(dict(zip(map(str, IDS), ids)))
    tables = build_report(answers, ReportConfig.from_dict(CONFIG)).to_dict()["tables"]
    assert [r["participant"] for r in tables["participants"]] == sorted(ids)
    assert all(type(r["participant"]) is str for r in tables["participants"])
