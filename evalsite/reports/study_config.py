"""The report's config from a study (`report_config_for`: its settings, instruments and what its
trials give), and whether a stored report was computed with the config the study gives now
(`changes_since`): the report's freshness key apart from its answers. Kept apart from `services`
(the computation, with its plots) so that the report page reads it without loading them."""

from __future__ import annotations

import json
from collections import Counter

from django.db.models import Avg, F
from django.db.models.functions import Coalesce

from evalsite.reports.analysis.config import CONDITIONS, ExclusionRules, ReportConfig
from evalsite.reports.models import REPORT_CONFIG_VERSION, ReportSnapshot
from evalsite.reports.tasks import report_settings, schedule_report
from evalsite.studies.design import most_main_total, most_main_trials
from evalsite.studies.models import Study, StudyEvent
from evalsite.studies.served_audio import PAD_MAX_S, PARTS

# Study.settings["exclusion"] keys that map onto ExclusionRules fields of the same name.
RULE_KEYS = set(ExclusionRules.__dataclass_fields__)
# How the report page names a config field in which the study changed since its report was
# computed (`changes_since`); any other field is one of the study's report settings.
CHANGED = {
    "design_main_trials": "main trials per participant (from its trials and settings)",
    "listen_seconds_per_trial": "listening per trial (its clips' durations)",
    "planned_instruments": "instruments",
    "rules": "exclusion rules",
}
# Per REPORT_CONFIG_VERSION from 2, the config fields that version computes anew (or adds) for an
# unchanged study: a snapshot of an earlier version differs in them without a study edit, and is
# compared in the others (`config_fields_changed`). Raising the version adds its entry.
RECOMPUTED_IN: dict[int, tuple[str, ...]] = {
    2: ("listen_seconds_per_trial",),  # the clips' full durations plus their silence (1e8f136)
    3: ("design_main_trials",),  # each instrument's mean share of a capped session (30a2fab)
}
# How the report page names a history entry since the report's read that changed its input
# without its config: what answered trials hold (reports.signals queues the recomputation).
INPUT_CHANGED: dict[str, str] = {
    StudyEvent.Kind.TRIALS: "answered trials",
    StudyEvent.Kind.MODEL_CHOICES: "model choices",
}


def report_config_for(study: Study) -> tuple[ReportConfig, list[str]]:
    """The study's pre-registered exclusion rules (Study.settings["exclusion"]), report
    settings (Study.settings["report"]: ReportConfig fields), instruments (the config's
    planned_instruments) and the main trials per instrument its design gives one participant
    (design_main_trials), with notes on ignored keys."""
    notes, read = [], report_settings(study)
    raw = dict(read["exclusion"] or {})
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        notes.append(f"study settings 'exclusion': keys {unknown} are not rules the report knows")
    rules = {k: v for k, v in raw.items() if k in RULE_KEYS}
    if read["screening"] is False:
        rules["require_screening"] = False
    extra = dict(read["report"] or {})
    if "planned_instruments" in extra:
        notes.append(
            "study settings 'report': planned_instruments ignored; the report reads the "
            "study's instruments"
        )
    extra["rules"] = rules
    planned = read["instruments"] if isinstance(read["instruments"], list) else []
    known = [name for name in planned if name in CONDITIONS]
    if known != planned or not isinstance(read["instruments"], list):
        notes.append(  # saved before the study checked them (raw JSON in the admin)
            f"study instruments {read['instruments']!r}: expected names from "
            f"{', '.join(CONDITIONS)}; the others are left out of planned_instruments"
        )
    extra["planned_instruments"] = list(dict.fromkeys(known))
    extra["design_main_trials"] = design_main_trials(study)
    extra["listen_seconds_per_trial"] = listen_seconds_per_trial(study)
    return ReportConfig.from_dict(extra), notes


def design_main_trials(study: Study) -> dict[str, float]:
    """What the power plan plans at: per instrument, the main trials of it one participant gets
    on average. A participant gets at most `trials_per_participant` main trials over all
    instruments, and no more than `most_main_total` (the piece rule); `select_trials` fills every
    participant up to that total, least-filled first, so some get the floor of an instrument's
    share and some its ceiling (review rstat, finding 1). Each instrument's count is its expected
    share of the total, in proportion to its main trials and no more than one per reference piece
    (`most_main_trials`), what an instrument at that bound leaves going to the others: a mean,
    fractional where the total does not split evenly, whose sum is the total every session has.
    What the settings view compares before and after an edit, as a change of the trials
    changes it."""
    most = most_main_trials(study)
    cap = study.setting("trials_per_participant")
    total = most_main_total(study)
    if cap:
        total = min(total, int(cap))
    if total >= sum(most.values()):  # every participant can get every one
        return dict(most)
    main = Counter(study.trials.filter(is_practice=False, is_catch=False)
                   .values_list("instrument", flat=True))  # fmt: skip
    return _whole_if_whole(expected_shares(total, {i: main[i] for i in most}, most))


def expected_shares(total: int, weights: dict[str, int], most: dict[str, int]) -> dict[str, float]:
    """`total` split in proportion to `weights`, none above its `most`: an instrument whose
    share would pass its bound gets the bound, and the rest is split again over the others
    (total < sum(most), so the rest always fits)."""
    shares: dict[str, float] = {}
    left, open_ = float(total), dict(weights)
    while open_:
        weight = sum(open_.values())
        over = {i for i, w in open_.items() if left * w / weight >= most[i]}
        if not over:
            shares |= {i: left * w / weight for i, w in open_.items()}
            break
        for i in over:
            shares[i] = float(most[i])
            left -= most[i]
            del open_[i]
    return {i: shares[i] for i in most}


def _whole_if_whole(shares: dict[str, float]) -> dict[str, float]:
    # a whole share stays an int, so the config (JSON) and the notes show 3, not 3.0
    return {i: int(s) if float(s).is_integer() else s for i, s in shares.items()}


def listen_seconds_per_trial(study: Study) -> dict[str, float]:
    """Per instrument, the mean over its main trials of the listening the answer waits for: the
    reference's and both candidates' full durations, plus the silence their renditions add
    (`served_audio.pads`: each part's total drawn from 0 to 2 x PAD_MAX_S, so PAD_MAX_S on
    average). The page unlocks the answer once all three clips have played to the end
    (participant.js), whatever min_listen_share is: that is only the server's floor for
    scripted clients, and planned as share x the durations the listening was 0 s at share 0. A
    missing duration counts 0, as participant_writes.SHOWN_SQL counts it. One query."""
    seconds = (
        Coalesce(F("reference__duration_s"), 0.0)
        + Coalesce(F("candidate_a__duration_s"), 0.0)
        + Coalesce(F("candidate_b__duration_s"), 0.0)
    )
    rows = (
        study.trials.filter(is_catch=False, is_practice=False)
        .values("instrument")
        .annotate(mean=Avg(seconds))
    )
    padding = len(PARTS) * PAD_MAX_S
    return {r["instrument"]: float(r["mean"] or 0.0) + padding for r in rows}


def by_earlier_version(snap: ReportSnapshot) -> bool:
    """Whether `snap` was computed by an earlier version of the site, whose config the current
    code adds fields to or computes some differently (REPORT_CONFIG_VERSION): a difference in
    those fields then says nothing about the study (`config_fields_changed` leaves them out),
    and the report page queues its recomputation."""
    return snap.config_version < REPORT_CONFIG_VERSION


def config_fields_changed(now: dict, stored: dict, version: int) -> list[str]:
    """The config fields (sorted) in which `now` differs from `stored`, a config computed by
    REPORT_CONFIG_VERSION `version`. For an earlier version, only what both versions compute
    alike: not the fields a later version computes anew (RECOMPUTED_IN), nor those only one of
    them holds (a field, or a rule, added or dropped since; an older snapshot's config can hold
    neither `design_main_trials` nor `listen_seconds_per_trial`)."""
    fields = now.keys() | stored.keys()
    if version < REPORT_CONFIG_VERSION:
        anew = {f for v, names in RECOMPUTED_IN.items() if v > version for f in names}
        fields = (now.keys() & stored.keys()) - anew
        if isinstance(now.get("rules"), dict) and isinstance(stored.get("rules"), dict):
            both = now["rules"].keys() & stored["rules"].keys()
            now = now | {"rules": {k: now["rules"][k] for k in both}}
            stored = stored | {"rules": {k: stored["rules"][k] for k in both}}
    return sorted(k for k in fields if now.get(k) != stored.get(k))


def changes_since(study: Study, snap: ReportSnapshot) -> list[str]:
    """What the study gives its report now that `snap` was not computed with, as CHANGED names
    it ([] when none): the config `report_config_for` makes now against the one the snapshot
    stored, field by field as JSON. This is the report's freshness key apart from the answers:
    a change of the study's trials or of its trials_per_participant changes design_main_trials.
    Then what changed the report's input since its read (`computed_at`, taken before it) and not
    its config: an answered trial edited, the model's choices computed again on an answered
    study (`INPUT_CHANGED`; history entries with answers). Two queries (the trials, the
    entries). A snapshot computed by an earlier version of the site (`by_earlier_version`) is
    compared in the fields both versions compute alike (`config_fields_changed`): a study edit
    since is named, the upgrade's own differences are not."""
    try:
        config, _ = report_config_for(study)
    except (TypeError, ValueError) as exc:  # report settings saved as raw JSON in the admin
        return [f"report settings (they cannot be read: {exc})"]
    now = json.loads(json.dumps(config.to_dict()))  # as stored: tuples are lists
    stored = snap.config or {}
    fields = config_fields_changed(now, stored, snap.config_version)
    names = [CHANGED.get(k, "report settings") for k in fields]
    since = study.events.filter(at__gte=snap.computed_at, kind__in=list(INPUT_CHANGED))
    names += [INPUT_CHANGED[kind] for kind, what in since.values_list("kind", "changes")
              if (what or {}).get("answers")]  # fmt: skip
    return list(dict.fromkeys(names))


def recompute_if_out_of_date(study_id: int) -> bool:
    """Queue a recomputation (`schedule_report`, as a settings edit does) when the study's
    latest report was computed with another config than the study gives now; False when it was
    not queued (none computed yet: answers queue the first). One computed by an earlier version
    of the site is queued too."""
    snap = ReportSnapshot.objects.filter(study_id=study_id).order_by("-computed_at").first()
    study = Study.objects.filter(pk=study_id).first()
    if snap is None or study is None:
        return False
    if not by_earlier_version(snap) and not changes_since(study, snap):
        return False
    return schedule_report(study_id, countdown=0)
