"""What participants did, as tidy tables: the one place the ORM meets analysis.

`answers_dataframe(study)` is the contract the statistics read (columns fixed in
`ANSWER_COLUMNS`): one row per main or catch answer. `full_answers_dataframe(study)` holds every
stored answer exactly once, practice answers included and flagged, with a few logged extras after
the contract columns (the `answers.csv` and `answers.json` downloads).
`participants_dataframe(study)` has one row per participant (recruitment ids, the participant ID
they were shown, status, codes, questionnaire, screening), for paying, approving, excluding or
deleting participants and analysing by background. Kept apart from the downloads (`export`), the
clip manifest and config snapshot (`export_provenance`) and the column documentation
(`export_codebook`): the report pipeline reads these tables without any of the rest.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from django.db.models import Count

from evalsite.studies.flow_prolific import sent_code_of
from evalsite.studies.models import Answer, ConsentVersion, Participant, Study

ANSWER_COLUMNS = (
    "study", "participant", "session", "trial", "trial_index", "instrument", "reference",
    "candidate_a", "candidate_b", "displayed_first", "chosen", "chosen_position", "model_choice",
    "model_margin", "agree", "is_catch", "catch_kind", "catch_correct", "response_ms",
    "plays_reference", "plays_a", "plays_b", "screening_passed", "created_at",
)  # fmt: skip
EXTRA_COLUMNS = (
    "is_practice", "heard_reference", "heard_a", "heard_b", "blur_events", "audio_sample_rate",
    "shown_at",
)  # fmt: skip

PARTICIPANT_COLUMNS = (
    "study", "participant", "session", "prolific_pid", "prolific_study_id", "prolific_session_id",
    "external_pid", "participant_id", "status", "language", "started_at", "consented_at",
    "withdrawn_answers", "consent_version", "finished_at",
    "last_seen_at", "musical_training", "plays_instrument", "device", "headphones", "web_audio",
    "phone", "audio_sample_rate", "user_agent", "screening_passed", "antiphase_correct",
    "antiphase_trials", "huggins_correct", "huggins_trials", "screening_reloads", "screen_out_code",
    "completion_code", "completion_code_now",
    "slots", "answers", "practice_answers", "catch_answers", "catch_correct", "early_answers",
    "recruitment",
)  # fmt: skip
QUESTIONNAIRE_FIELDS = ("musical_training", "plays_instrument", "device", "headphones")
SCREENING_KINDS = ("antiphase", "huggins")

_ANSWER_FIELDS = {
    "participant_id": "participant",
    "participant__session": "session",
    "participant__screening_passed": "screening_passed_raw",
    "trial_id": "trial",
    "trial_index": "trial_index",
    "trial__instrument": "instrument",
    "trial__reference__token": "reference",
    "trial__candidate_a__token": "candidate_a",
    "trial__candidate_b__token": "candidate_b",
    "trial__candidate_a_id": "clip_a",
    "trial__candidate_b_id": "clip_b",
    "trial__is_practice": "is_practice",
    "trial__is_catch": "is_catch",
    "trial__catch_kind": "catch_kind",
    "trial__expected": "expected",
    "trial__repeat_of_id": "repeat_of",
    "trial__model_choice": "model_choice",
    "trial__model_margin": "model_margin",
    "displayed_first": "displayed_first",
    "chosen": "chosen",
    "chosen_position": "chosen_position",
    "response_ms": "response_ms",
    "plays_reference": "plays_reference",
    "plays_a": "plays_a",
    "plays_b": "plays_b",
    "heard_reference": "heard_reference",
    "heard_a": "heard_a",
    "heard_b": "heard_b",
    "blur_events": "blur_events",
    "audio_sample_rate": "audio_sample_rate",
    "shown_at": "shown_at",
    "created_at": "created_at",
}

# The Trial columns (attnames) the answers read live: an edit of one on an answered trial changes
# the report's input (trial_saving records it; reports.signals queues the recomputation).
TRIAL_COLUMNS_READ = tuple(
    dict.fromkeys(
        parts[1] + ("_id" if len(parts) > 2 else "")  # trial__reference__token: reference_id
        for parts in (field.split("__") for field in _ANSWER_FIELDS)
        if parts[0] == "trial" and len(parts) > 1
    )
)


def answers_dataframe(study: Study) -> pd.DataFrame:
    """One row per main or catch answer of `study`, exactly `ANSWER_COLUMNS` (practice left out)."""
    frame = full_answers_dataframe(study)
    return frame.loc[~frame["is_practice"], list(ANSWER_COLUMNS)].reset_index(drop=True)


def full_answers_dataframe(study: Study) -> pd.DataFrame:
    """Every stored answer of `study` once: `ANSWER_COLUMNS` then `EXTRA_COLUMNS`."""
    rows = list(
        Answer.objects.filter(participant__study=study)
        .order_by("participant_id", "trial_index", "id")
        .values_list(*_ANSWER_FIELDS)
    )
    raw = pd.DataFrame(rows, columns=list(_ANSWER_FIELDS.values()))
    out = pd.DataFrame(index=raw.index)
    out["study"] = study.pk
    for col in ANSWER_COLUMNS[1:12]:  # participant ... chosen_position, copied as stored
        out[col] = raw[col]
    # object dtype: None (not NaN) marks "no model choice", as the contract says.
    choices = [v if v in {"a", "b"} else None for v in raw["model_choice"]]
    out["model_choice"] = pd.Series(choices, index=raw.index, dtype=object)
    out["model_margin"] = raw["model_margin"].astype(float)
    has_model = out["model_choice"].notna()
    out["agree"] = np.where(has_model, (raw["chosen"] == out["model_choice"]).astype(float), np.nan)
    out["is_catch"] = raw["is_catch"].astype(bool)
    out["catch_kind"] = raw["catch_kind"].fillna("")
    out["catch_correct"] = _catch_correct(raw)
    out["response_ms"] = raw["response_ms"].astype(float)
    for col in ("plays_reference", "plays_a", "plays_b"):
        out[col] = raw[col].astype(int)
    # NULL means no screening was run (the study has it off): not screened out.
    out["screening_passed"] = raw["screening_passed_raw"].map(lambda v: v is not False)
    out["created_at"] = raw["created_at"].map(iso_utc)
    out["is_practice"] = raw["is_practice"].astype(bool)
    for col in ("heard_reference", "heard_a", "heard_b"):
        out[col] = raw[col].astype(float)
    out["blur_events"] = raw["blur_events"].astype(int)
    out["audio_sample_rate"] = raw["audio_sample_rate"].astype(float)
    out["shown_at"] = raw["shown_at"].map(iso_utc)
    return out[list(ANSWER_COLUMNS + EXTRA_COLUMNS)]


def _catch_correct(raw: pd.DataFrame) -> pd.Series:
    """1/0 for catch trials with a known answer; for repeats, whether the same clip was chosen as
    on the original trial (NaN while the original is unanswered); NaN for everything else."""
    chosen_clip = np.where(raw["chosen"] == "a", raw["clip_a"], raw["clip_b"])
    by_trial = {(p, t): c for p, t, c in zip(raw["participant"], raw["trial"], chosen_clip)}
    values = []
    for i, row in enumerate(raw.itertuples(index=False)):
        if row.is_catch and row.catch_kind == "repeat" and row.repeat_of:
            first = by_trial.get((row.participant, row.repeat_of))
            values.append(np.nan if first is None else float(first == chosen_clip[i]))
        elif row.is_catch and row.expected in {"a", "b"}:
            values.append(float(row.chosen == row.expected))
        else:
            values.append(np.nan)
    return pd.Series(values, index=raw.index, dtype=float)


def iso_utc(value: datetime | None) -> str:
    """ISO 8601 in UTC with a Z, millisecond precision; "" for missing."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return ""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _completion_codes(study: Study, p: Participant) -> dict[str, str]:
    """The code stored when the participant finished (`completion_code`), which their done page
    showed and their link sent then, so the one to match a panel's submissions against, and the
    code their done page shows and its link sends if opened now (`completion_code_now`,
    `sent_code_of`) only where that is another: the study's code edited since they finished
    (findings_rdiff2, 1), a Prolific URL set after they were given a random code, or a URL's cc
    too long to store (shown from the start in place of the random code stored). Nobody who
    has not finished was shown a code."""
    if p.step != Participant.Step.DONE:
        return {"completion_code": p.completion_code, "completion_code_now": ""}
    now = sent_code_of(study, p.completion_code)
    return {
        "completion_code": p.completion_code,
        "completion_code_now": now if now != p.completion_code else "",
    }


def participants_dataframe(study: Study, answers: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per participant of `study` who entered (`PARTICIPANT_COLUMNS`), whatever the step
    reached: ids to pay or approve with (Prolific's), the ID a deletion request quotes, status,
    what leaving does to the answers and the consent version as agreed at consent, codes, the
    questionnaire, the browser check, the screening score, and answers counted from the stored
    answers (`answers`: `full_answers_dataframe(study)` read in the same snapshot, read here when
    not given; see `db_snapshot`)."""
    if answers is None:
        answers = full_answers_dataframe(study)
    main = answers[~answers["is_practice"]]
    catch = main[main["is_catch"]]
    counts = {
        "answers": main.groupby("participant").size(),
        "practice_answers": answers[answers["is_practice"]].groupby("participant").size(),
        "catch_answers": catch.groupby("participant").size(),
        "catch_correct": catch.groupby("participant")["catch_correct"].sum(),
    }
    slots = dict(
        Participant.objects.filter(study=study).annotate(n=Count("slots")).values_list("id", "n")
    )
    versions: dict[int | None, str] = dict(
        ConsentVersion.objects.filter(study=study).values_list("id", "sha256")
    )
    rows = []
    for p in Participant.objects.filter(study=study).order_by("id"):
        screened = p.screening.get("answers", [])
        row = {
            "study": study.pk, "participant": p.pk, "session": p.session,
            "prolific_pid": p.prolific_pid, "prolific_study_id": p.prolific_study_id,
            "prolific_session_id": p.prolific_session_id, "external_pid": p.external_pid,
            "participant_id": p.quoted_id,
            "status": p.step, "language": p.language, "started_at": iso_utc(p.started_at),
            "consented_at": iso_utc(p.consented_at), "withdrawn_answers": p.withdrawn_answers,
            "consent_version": versions.get(p.consent_version_id, ""),
            "finished_at": iso_utc(p.finished_at),
            "last_seen_at": iso_utc(p.last_seen_at),
            **{f: p.questionnaire.get(f, "") for f in QUESTIONNAIRE_FIELDS},
            "web_audio": p.browser.get("web_audio", ""), "phone": p.browser.get("phone", ""),
            "audio_sample_rate": p.audio_sample_rate, "user_agent": p.user_agent,
            "screening_passed": "" if p.screening_passed is None else p.screening_passed,
            "screen_out_code": p.screen_out_code, **_completion_codes(study, p),
            "slots": slots.get(p.pk, 0),
            **{k: int(v.get(p.pk, 0)) for k, v in counts.items()},
            "early_answers": p.early_answers,
            "recruitment": json.dumps(p.recruitment, ensure_ascii=False, sort_keys=True),
        }  # fmt: skip
        for kind in SCREENING_KINDS:
            of_kind = [a for a in screened if a.get("kind") == kind]
            row[f"{kind}_correct"] = sum(1 for a in of_kind if a.get("correct"))
            row[f"{kind}_trials"] = len(of_kind)
        row["screening_reloads"] = sum(max(v - 1, 0) for v in p.screening.get("views", []))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(PARTICIPANT_COLUMNS))
