"""Turn a study's database rows into tidy tables and files: the one place the ORM meets analysis.

`answers_dataframe(study)` is the contract the statistics read (columns fixed in
`ANSWER_COLUMNS`): one row per main or catch answer. The downloads (`answers.csv`, `answers.json`)
hold every stored answer exactly once, practice answers included and flagged, with a few logged
extras after the contract columns. `participants_dataframe(study)` has one row per participant
(recruitment ids, status, codes, questionnaire, screening), for paying, approving or excluding
participants and analysing by background. `CODEBOOK` documents every column of every table.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from django.db.models import Count

from evalsite.stimuli.audio import AudioError, loudness_lufs, normalised_path, playback_lufs
from evalsite.stimuli.models import Clip
from evalsite.studies import history
from evalsite.studies.design import realised_design
from evalsite.studies.models import Answer, Participant, Study, Trial

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
MANIFEST_COLUMNS = (
    "token", "clip_id", "name", "piece", "dataset", "split", "start_s", "parts", "sha256",
    "loudness_lufs", "duration_s", "sample_rate", "channels", "served_sha256",
    "served_loudness_lufs",
)  # fmt: skip

PARTICIPANT_COLUMNS = (
    "study", "participant", "session", "prolific_pid", "prolific_study_id", "prolific_session_id",
    "external_pid", "status", "language", "started_at", "consented_at", "finished_at",
    "last_seen_at", "musical_training", "plays_instrument", "device", "headphones", "web_audio",
    "phone", "audio_sample_rate", "user_agent", "screening_passed", "antiphase_correct",
    "antiphase_trials", "huggins_correct", "huggins_trials", "screening_reloads", "screen_out_code",
    "completion_code",
    "slots", "answers", "practice_answers", "catch_answers", "catch_correct", "early_answers",
    "recruitment",
)  # fmt: skip
QUESTIONNAIRE_FIELDS = ("musical_training", "plays_instrument", "device", "headphones")
SCREENING_KINDS = ("antiphase", "huggins")
# A text cell starting with one of these would run as a formula when a CSV file is opened in a
# spreadsheet (OWASP "CSV injection"): participants control ids (the study link), free text and
# browser reports. Every CSV export writes such a cell with a leading apostrophe (`to_csv`);
# JSON files keep the values as stored. Recruitment ids (Prolific's are hex) never start so.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

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


def participants_dataframe(study: Study) -> pd.DataFrame:
    """One row per participant of `study` who entered (`PARTICIPANT_COLUMNS`), whatever the step
    reached: ids to pay or approve with (Prolific's), status and codes, the questionnaire, the
    browser check, the screening score, and answers counted from the stored answers."""
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
    rows = []
    for p in Participant.objects.filter(study=study).order_by("id"):
        screened = p.screening.get("answers", [])
        row = {
            "study": study.pk, "participant": p.pk, "session": p.session,
            "prolific_pid": p.prolific_pid, "prolific_study_id": p.prolific_study_id,
            "prolific_session_id": p.prolific_session_id, "external_pid": p.external_pid,
            "status": p.step, "language": p.language, "started_at": iso_utc(p.started_at),
            "consented_at": iso_utc(p.consented_at), "finished_at": iso_utc(p.finished_at),
            "last_seen_at": iso_utc(p.last_seen_at),
            **{f: p.questionnaire.get(f, "") for f in QUESTIONNAIRE_FIELDS},
            "web_audio": p.browser.get("web_audio", ""), "phone": p.browser.get("phone", ""),
            "audio_sample_rate": p.audio_sample_rate, "user_agent": p.user_agent,
            "screening_passed": "" if p.screening_passed is None else p.screening_passed,
            "screen_out_code": p.screen_out_code, "completion_code": p.completion_code,
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


def _inert(value):
    """A text `value` with a leading apostrophe when a spreadsheet would read it as a formula;
    anything else unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def to_csv(frame: pd.DataFrame) -> bytes:
    """CSV bytes of `frame` for people and spreadsheets: text cells that would run as a formula
    get a leading apostrophe (FORMULA_START); numbers are written as they are. Text columns are
    object, string and categorical ones: pandas 3 gives text a `str` dtype, which "object" alone
    matches only by a fallback pandas 4 drops."""
    text = frame.select_dtypes(include=["object", "string", "category"]).columns
    return frame.assign(**{c: frame[c].map(_inert) for c in text}).to_csv(index=False).encode()


def served(clip: Clip, target_lufs: float) -> tuple[str, float | None]:
    """SHA-256 and playback loudness (`playback_lufs`: a mono file as dual-mono) of the file
    participants of a study with this loudness target are served for `clip` (`normalised_path`:
    the stored file when within 0.1 LU of the target, else a copy normalised to it); ("", None)
    when the clip has no readable file.
    """
    try:
        path = normalised_path(clip, target_lufs)
        payload = path.read_bytes()
        data, sr = sf.read(io.BytesIO(payload), dtype="float32", always_2d=True)  # (T, C)
    # no file (ValueError), gone, or undecodable (AudioError; soundfile's RuntimeError)
    except (OSError, ValueError, RuntimeError, AudioError):
        return "", None
    sha = hashlib.sha256(payload).hexdigest()
    if path != Path(clip.file.path):
        return sha, playback_lufs(round(loudness_lufs(data, sr), 3), data.shape[1])
    if clip.loudness_lufs is None:
        return sha, None
    return sha, playback_lufs(clip.loudness_lufs, data.shape[1])


def manifest_dataframe(study: Study) -> pd.DataFrame:
    """Every clip a trial of `study` uses, once: blind token, provenance, the stored file's hash
    and loudness, and those of the file participants were served (at the study's target)."""
    target = float(study.setting("loudness_target_lufs"))
    ids = set()
    for fields in Trial.objects.filter(study=study).values_list(
        "reference_id", "candidate_a_id", "candidate_b_id"
    ):
        ids.update(fields)
    rows = []
    for clip in Clip.objects.filter(pk__in=ids).order_by("id"):
        rows.append(
            {
                "token": clip.token,
                "clip_id": clip.pk,
                "name": clip.name,
                "piece": clip.piece,
                "dataset": clip.dataset,
                "split": clip.split,
                "start_s": clip.start_s,
                "parts": json.dumps(clip.parts or {}, sort_keys=True),
                "sha256": clip.sha256,
                "loudness_lufs": clip.loudness_lufs,
                "duration_s": clip.duration_s,
                "sample_rate": clip.sample_rate,
                "channels": clip.channels,
            }
        )
        rows[-1]["served_sha256"], rows[-1]["served_loudness_lufs"] = served(clip, target)
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


def config_snapshot(study: Study) -> dict:
    """The study as configured at export time (settings with defaults filled in, the design), and
    the history of changes made on the experimenter pages before it."""
    from csn_model import __version__

    trials = Trial.objects.filter(study=study)
    return {
        "study": study.pk,
        "name": study.name,
        "status": study.status,
        "owner": study.owner.get_username(),
        "shared_with": sorted(u.get_username() for u in study.shared_with.all()),
        "instruments": list(study.instruments or []),
        "description": study.description,
        "consent_text": study.consent_text,
        "settings": study.full_settings(),
        "design": study.design,
        "trials": {
            "total": trials.count(),
            "main": trials.filter(is_practice=False, is_catch=False).count(),
            "practice": trials.filter(is_practice=True).count(),
            "catch": trials.filter(is_catch=True).count(),
        },
        "created_at": iso_utc(study.created_at),
        "updated_at": iso_utc(study.updated_at),
        "exported_at": iso_utc(datetime.now(UTC)),
        # Every change since the study was created (settings edited while it ran, status, trials
        # added): what a participant got depends on when they took part.
        "history": [e | {"at": iso_utc(e["at"])} for e in history.events(study)],
        "software": {"csn-eval": __version__},
    }


def _col(meaning: str, type_: str, values: str = "") -> dict:
    return {"meaning": meaning, "type": type_, "values": values}


# column -> meaning/type/values, per exported table. A test checks every column is documented.
CODEBOOK: dict[str, dict[str, dict]] = {
    "answers": {
        "study": _col("Study id", "integer"),
        "participant": _col("Participant id within this site (not the Prolific id)", "integer"),
        "session": _col(
            "Session id: Prolific SESSION_ID when given, else a random token", "string"
        ),
        "trial": _col("Trial id", "integer"),
        "trial_index": _col(
            "0-based position in the participant's list (practice first)", "integer"
        ),
        "instrument": _col(
            "Instrument the participant judged", "string", "drums, bass, piano, guitar, others"
        ),  # fmt: skip
        "reference": _col("Reference clip token (see manifest)", "string"),
        "candidate_a": _col("Canonical candidate a: clip token", "string"),
        "candidate_b": _col("Canonical candidate b: clip token", "string"),
        "displayed_first": _col("Canonical candidate shown in position A", "string", "a, b"),
        "chosen": _col("Candidate judged more similar, canonical", "string", "a, b"),
        "chosen_position": _col("Position of the chosen candidate on screen", "string", "A, B"),
        "model_choice": _col(
            "Candidate the model judged more similar",
            "string or null",
            "a, b, null (no model choice)",
        ),  # fmt: skip
        "model_margin": _col("Model's similarity margin for its choice", "float or NaN"),
        "agree": _col("chosen == model_choice", "float", "1, 0, NaN (no model choice)"),
        "is_catch": _col("Catch trial", "boolean"),
        "catch_kind": _col("Kind of catch trial", "string", "'', identical, attention, repeat"),
        "catch_correct": _col(
            "Catch answered correctly (repeat: same clip chosen as on the original trial)",
            "float",
            "1, 0, NaN (not a catch trial / original unanswered)",
        ),  # fmt: skip
        "response_ms": _col("Client time from buttons unlocked to the click", "float (ms) or NaN"),
        "plays_reference": _col("Times the reference was played", "integer"),
        "plays_a": _col("Times canonical candidate a was played", "integer"),
        "plays_b": _col("Times canonical candidate b was played", "integer"),
        "screening_passed": _col(
            "Participant passed headphone screening (or none was run)", "boolean"
        ),  # fmt: skip
        "created_at": _col("Server time the answer was stored", "ISO 8601 UTC"),
        "is_practice": _col(
            "Practice trial (with feedback); not in answers_dataframe()", "boolean"
        ),  # fmt: skip
        "heard_reference": _col("Fraction of the reference heard", "float 0..1 or NaN"),
        "heard_a": _col("Fraction of canonical candidate a heard", "float 0..1 or NaN"),
        "heard_b": _col("Fraction of canonical candidate b heard", "float 0..1 or NaN"),
        "blur_events": _col("Times the window lost focus during the trial", "integer"),
        "audio_sample_rate": _col("Browser audio output sample rate", "float (Hz) or NaN"),
        "shown_at": _col("Server time the trial page was first served", "ISO 8601 UTC or ''"),
    },
    "participants": {
        "study": _col("Study id", "integer"),
        "participant": _col(
            "Participant id within this site (answers.csv `participant`)", "integer"
        ),
        "session": _col(
            "Session id: Prolific SESSION_ID when given, else a random token", "string"
        ),
        "prolific_pid": _col("Prolific PROLIFIC_PID from the study link", "string or ''"),
        "prolific_study_id": _col("Prolific STUDY_ID from the study link", "string or ''"),
        "prolific_session_id": _col("Prolific SESSION_ID from the study link", "string or ''"),
        "external_pid": _col("Generic `pid` from the study link", "string or ''"),
        "status": _col(
            "Step reached (final steps: done, screened_out, declined, refused, full, withdrawn)",
            "string",
            "browser_check, consent, questionnaire, calibration, screening, instructions, "
            "practice, trials, done, screened_out, declined, refused, full, withdrawn (left"
            " the study on its page; its answers are deleted unless the study keeps them)",
        ),
        "language": _col("Language the pages were shown in", "string", "en, ja"),
        "started_at": _col("Server time of entry", "ISO 8601 UTC"),
        "consented_at": _col("Server time consent was given", "ISO 8601 UTC or ''"),
        "finished_at": _col("Server time a final step was reached", "ISO 8601 UTC or ''"),
        "last_seen_at": _col("Server time of the last page or answer", "ISO 8601 UTC"),
        "musical_training": _col(
            "Years of musical training", "string or ''", "none, lt2, 2to5, gt5, professional"
        ),
        "plays_instrument": _col("Instruments played (free text)", "string or ''"),
        "device": _col("Device", "string or ''", "laptop, desktop, tablet, other"),
        "headphones": _col("Listening with", "string or ''", "over_ear, on_ear, in_ear, speakers"),
        "web_audio": _col("Browser reported Web Audio support", "string", "1, 0, ''"),
        "phone": _col("Browser check judged the device a phone", "boolean or ''"),
        "audio_sample_rate": _col("Browser audio output sample rate", "float (Hz) or NaN"),
        "user_agent": _col(
            "User-Agent at entry (at the last device check if refused before)", "string"
        ),
        "screening_passed": _col(
            "Passed headphone screening", "boolean or ''", "'' (none run or not finished)"
        ),
        "antiphase_correct": _col("Antiphase screening trials answered correctly", "integer"),
        "antiphase_trials": _col("Antiphase screening trials answered", "integer"),
        "huggins_correct": _col("Huggins-pitch screening trials answered correctly", "integer"),
        "huggins_trials": _col("Huggins-pitch screening trials answered", "integer"),
        "screening_reloads": _col(
            "Screening pages viewed again before being answered (reloads, a language switch):"
            " each view of the page draws a new trial, so a reload never plays the same one"
            " again",
            "integer",
        ),
        "screen_out_code": _col("Code shown when screened out", "string or ''"),
        "completion_code": _col("Completion code shown at the end", "string or ''"),
        "slots": _col("Trials assigned (practice included)", "integer"),
        "answers": _col("Main and catch answers stored", "integer"),
        "practice_answers": _col("Practice answers stored", "integer"),
        "catch_answers": _col("Catch answers stored", "integer"),
        "catch_correct": _col(
            "Catch answers correct (answers.csv `catch_correct` summed)", "integer"
        ),
        "early_answers": _col(
            "Answers refused because they came sooner after the trial page than the study's"
            " min_listen_share of its clips' total duration, or to a trial never shown (the"
            " page does not send these: a script or a bot does)",
            "integer",
        ),
        "recruitment": _col("Every query parameter of the study link at entry", "JSON object"),
    },
    "manifest": {
        "token": _col("Blind clip token used in answers and audio URLs", "string"),
        "clip_id": _col("Clip id in the catalogue", "integer"),
        "name": _col("Original file name or label", "string"),
        "piece": _col("Source track name", "string"),
        "dataset": _col("Source dataset", "string"),
        "split": _col("Source split", "string"),
        "start_s": _col("Excerpt start in the source", "float (s) or empty"),
        "parts": _col("Condition -> source piece of each stem (JSON)", "JSON object"),
        "sha256": _col(
            "SHA-256 of the stored file (as validated at upload or import)", "hex string"
        ),
        "loudness_lufs": _col(
            "Integrated loudness of the stored file (ITU-R BS.1770) as measured, a mono file as "
            "one channel",
            "float (LUFS)",
        ),
        "duration_s": _col("Duration", "float (s)"),
        "sample_rate": _col("Sample rate", "integer (Hz)"),
        "channels": _col("Channels", "integer"),
        "served_sha256": _col(
            "SHA-256 of the file participants are served at the study's loudness target (the "
            "stored file when within 0.1 LU of it, else a normalised copy)",
            "hex string or '' (no readable file)",
        ),
        "served_loudness_lufs": _col(
            "Playback loudness of that served file: its integrated loudness (ITU-R BS.1770), "
            "+3.01 LU for a mono file, which plays on both speakers (measured as dual-mono, as "
            "ffmpeg's ebur128 dualmono); below the target when the peak ceiling limited the gain",
            "float (LUFS) or empty (no readable file)",
        ),
    },
    "design": {
        "study": _col("Study id", "integer"),
        "participant": _col("Participant id", "integer"),
        "session": _col("Session id", "string"),
        "trial": _col("Trial id", "integer"),
        "trial_index": _col("0-based position in the participant's stored order", "integer"),
        "instrument": _col("Instrument judged", "string"),
        "reference": _col("Reference clip id (manifest clip_id)", "integer"),
        "candidate_a": _col("Canonical candidate a: clip id", "integer"),
        "candidate_b": _col("Canonical candidate b: clip id", "integer"),
        "displayed_first": _col("Canonical candidate shown in position A", "string", "a, b"),
        "is_practice": _col("Practice trial", "boolean"),
        "is_catch": _col("Catch trial", "boolean"),
        "catch_kind": _col("Kind of catch trial", "string", "'', identical, attention, repeat"),
        "repeat_of": _col("Original trial of a repeat", "integer or empty"),
        "seed": _col("Participant's design seed", "integer"),
        "answered": _col("An answer is stored for this slot", "boolean"),
    },
}


def _json_records(frame: pd.DataFrame) -> bytes:
    records = json.loads(frame.to_json(orient="records", force_ascii=False))
    return json.dumps(records, indent=1, ensure_ascii=False).encode()


CODEBOOK["csv"] = {
    "text_cells": _col(
        "In every CSV file, a text cell starting with = + - @ (or a tab or carriage return) is "
        "written with a leading ' so that a spreadsheet shows it instead of running it as a "
        "formula; the JSON files hold the values as stored",
        "rule",
    )
}


EXPORT_FILES: dict[str, tuple[str, object]] = {
    "answers.csv": ("text/csv", lambda s: to_csv(full_answers_dataframe(s))),
    "answers.json": ("application/json", lambda s: _json_records(full_answers_dataframe(s))),
    "codebook.json": ("application/json", lambda s: json.dumps(CODEBOOK, indent=1).encode()),
    "config.json": (
        "application/json",
        lambda s: json.dumps(config_snapshot(s), indent=1, ensure_ascii=False).encode(),
    ),
    "participants.csv": (
        "text/csv",
        lambda s: to_csv(participants_dataframe(s)),
    ),
    "manifest.csv": ("text/csv", lambda s: to_csv(manifest_dataframe(s))),
    "design.csv": ("text/csv", lambda s: to_csv(realised_design(s))),
}


def export_file(study: Study, name: str) -> bytes:
    """One export file of `study` by name (a key of `EXPORT_FILES`)."""
    return EXPORT_FILES[name][1](study)


def export_zip(study: Study) -> bytes:
    """All export files in one zip, under a folder named for the study."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in EXPORT_FILES:
            archive.writestr(f"study-{study.pk}/{name}", export_file(study, name))
    return buffer.getvalue()
