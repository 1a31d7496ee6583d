"""The codebook of the export: the meaning, type and values of every column of every exported
table (`codebook.json`, also inside the report bundle). A long table of documentation with no
logic, kept out of the modules that build the tables; a test checks every column is documented.
"""

from __future__ import annotations


def _col(meaning: str, type_: str, values: str = "") -> dict:
    return {"meaning": meaning, "type": type_, "values": values}


# column -> meaning/type/values, per exported table. A test checks every column is documented.
CODEBOOK: dict[str, dict[str, dict]] = {
    "answers": {
        "study": _col("Study id", "integer"),
        "participant": _col("Participant id within this site (not the Prolific id)", "integer"),
        "session": _col("Session id: Prolific SESSION_ID when given, else a random token", "text"),
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
        "plays_reference": _col(
            "Times the reference was played on this trial's page, reloads of it in the same "
            "browser tab included (not plays in another tab or browser)",
            "integer",
        ),
        "plays_a": _col(
            "Times canonical candidate a was played (counted as plays_reference)", "integer"
        ),  # fmt: skip
        "plays_b": _col(
            "Times canonical candidate b was played (counted as plays_reference)", "integer"
        ),  # fmt: skip
        "screening_passed": _col(
            "Participant passed headphone screening (or none was run)", "boolean"
        ),  # fmt: skip
        "created_at": _col("Server time the answer was stored", "ISO 8601 UTC"),
        "is_practice": _col(
            "Practice trial (with feedback); not in answers_dataframe()", "boolean"
        ),  # fmt: skip
        "heard_reference": _col(
            "Fraction of the reference heard (its served sound, with 0-30 ms of silence before "
            "and after the clip), reloads of the trial's page in the same browser tab included",
            "float 0..1 or NaN",
        ),
        "heard_a": _col(
            "Fraction of canonical candidate a heard (its served sound, as heard_reference)",
            "float 0..1 or NaN",
        ),
        "heard_b": _col(
            "Fraction of canonical candidate b heard (its served sound, as heard_reference)",
            "float 0..1 or NaN",
        ),
        "blur_events": _col("Times the window lost focus during the trial", "integer"),
        "audio_sample_rate": _col("Browser audio output sample rate", "float (Hz) or NaN"),
        "shown_at": _col("Server time the trial page was first served", "ISO 8601 UTC or ''"),
    },
    "participants": {
        "study": _col("Study id", "integer"),
        "participant": _col(
            "Participant id within this site (answers.csv `participant`)", "integer"
        ),
        "session": _col("Session id: Prolific SESSION_ID when given, else a random token", "text"),
        "prolific_pid": _col("Prolific PROLIFIC_PID from the study link", "text or ''"),
        "prolific_study_id": _col("Prolific STUDY_ID from the study link", "text or ''"),
        "prolific_session_id": _col("Prolific SESSION_ID from the study link", "text or ''"),
        "external_pid": _col("Generic `pid` from the study link", "text or ''"),
        "participant_id": _col(
            "Participant ID shown at the foot of every participant page, which a deletion request"
            " quotes: prolific_pid, else external_pid, else the first 8 characters of the"
            " participant's random token (not `participant`); match it exactly, case included."
            " An ID starting with = + - @ (a recruitment id from the link, or a token drawn"
            " before tokens stopped starting with -) has a leading ' in the CSV files"
            " (csv.text_cells), to drop before matching",
            "text",
        ),
        "status": _col(
            "Step reached (final steps: done, screened_out, declined, refused, full, withdrawn)",
            "string",
            "browser_check, consent, questionnaire, calibration, screening, instructions, "
            "practice, trials, done, screened_out, declined, refused, full, withdrawn (left"
            " the study on its page; its answers are deleted unless its `withdrawn_answers` is"
            " keep, or, where that is empty, the study's current setting keeps them)",
        ),
        "language": _col("Language the pages were shown in", "string", "en, ja"),
        "started_at": _col("Server time of entry", "ISO 8601 UTC"),
        "consented_at": _col("Server time consent was given", "ISO 8601 UTC or ''"),
        "withdrawn_answers": _col(
            "What “Leave the study” does to the participant's answers, as the consent page said"
            " when they agreed (recorded at consent; a later edit of the study's setting does"
            " not change it)",
            "string",
            "delete, keep, '' (not consented, or consented before this was recorded: the"
            " study's current `withdrawn_answers` applies)",
        ),
        "consent_version": _col(
            "The consent page the participant agreed to, word for word: its `version` in"
            " consent_versions.csv (the study's consent text in the participant's language and"
            " the site's paragraphs, recorded at consent; a later edit of the study does not"
            " change it)",
            "hex string (64) or ''",
            "'' (not consented, or consented before versions were recorded)",
        ),
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
        "screen_out_code": _col(
            "Code shown when screened out: the study's Screen-out code, else SO- and a random code",
            "text or ''",
        ),
        "completion_code": _col(
            "Completion code stored when the participant finished: the study's code at that"
            " time, else a random code of their own; what their done page showed and their link"
            " sent then, so match Prolific's submissions against this one (docs/experimenter.md;"
            " except where a Prolific URL's cc too long to store was sent instead of the random"
            " code stored: completion_code_now)",
            "text or ''",
            "'' (not finished: no code shown)",
        ),
        "completion_code_now": _col(
            "Completion code the participant's done page shows and its link sends if opened"
            " now, where it is not completion_code: the study's code edited since they finished,"
            " or a Prolific URL's code set after they were given a random one (with a Prolific"
            " URL the study's code is always shown and sent)",
            "text or ''",
            "'' (the same as completion_code, or not finished)",
        ),
        "slots": _col("Trials assigned (practice included)", "integer"),
        "answers": _col("Main and catch answers stored", "integer"),
        "practice_answers": _col("Practice answers stored", "integer"),
        "catch_answers": _col("Catch answers stored", "integer"),
        "catch_correct": _col(
            "Catch answers correct (answers.csv `catch_correct` summed)", "integer"
        ),
        "early_answers": _col(
            "Answers refused because they came sooner after the trial page than the study's"
            " min_listen_share of its served sounds' total duration, or to a trial never shown (the"
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
            "SHA-256 of the clip at the study's loudness target (the stored file when within 0.1 "
            "LU of it, else a normalised copy), of which each participant is served its own "
            "rendition: this plus dither of at most 1 LSB and 0-30 ms of silence before and "
            "after, different for each participant, slot and position, so no served file has "
            "this hash",
            "hex string or '' (no readable file)",
        ),
        "served_loudness_lufs": _col(
            "Playback loudness of that served file: its integrated loudness (ITU-R BS.1770), "
            "+3.01 LU for a mono file, which plays on both speakers (measured as dual-mono, as "
            "ffmpeg's ebur128 dualmono); below the target when the peak ceiling limited the gain",
            "float (LUFS) or empty (no readable file)",
        ),
    },
    "consent_versions": {
        "version": _col(
            "Name of one exact consent page (participants.csv `consent_version`): SHA-256 of the"
            " language code, a newline and `text`, UTF-8",
            "hex string (64)",
        ),
        "language": _col("Language the page was shown in", "string", "en, ja"),
        "first_shown_at": _col("Server time a participant was first shown it", "ISO 8601 UTC"),
        "participants": _col("Participants who agreed to it", "integer"),
        "text": _col(
            "The page's text as shown: the study's consent text in that language (else its"
            " Consent text), then the site's paragraphs on stopping and leaving and on what is"
            " recorded, a blank line between paragraphs. In consent_versions.csv a text starting"
            " with = + - @ (a tab or a carriage return) has a leading ' (csv.text_cells), to drop"
            " before hashing; consent_versions.json has the exact text",
            "string",
        ),
    },
    "design": {
        "study": _col("Study id", "integer"),
        "participant": _col("Participant id", "integer"),
        "session": _col("Session id", "text"),
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
        "model_designed": _col(
            "A model chose the trial's candidates (a design from the model, or marked so in the"
            " trials CSV or form): no participant gets two main trials on one reference piece"
            " sharing a candidate piece with it",
            "boolean",
        ),
        "seed": _col("Participant's design seed", "integer"),
        "answered": _col("An answer is stored for this slot", "boolean"),
    },
}


CODEBOOK["csv"] = {
    "text_columns": _col(
        "Columns of type `text` hold ids and codes, which may look like numbers (a study's own"
        " code 01234567, a code stored before 2026-12-07 such as 12E45678, a panel's id of"
        " digits): read them as text, or a reader's number inference changes them (pandas"
        " reads 12E45678 as inf, 123456E7 as 1.23456e12 and 01234567 as 1234567):"
        " pandas.read_csv(..., dtype={column: str for each text column},"
        " keep_default_na=False, na_values=['']) (docs/experimenter.md, Export)",
        "rule",
    ),
    "text_cells": _col(
        "In every CSV file, a text cell starting with = + - @ (or a tab or carriage return) is "
        "written with a leading ' so that a spreadsheet shows it instead of running it as a "
        "formula; the JSON files hold the values as stored",
        "rule",
    ),
}
