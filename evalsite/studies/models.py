"""Studies, trials, participants, their stored assignments and answers.

Canonical order: a trial's candidates are `candidate_a` and `candidate_b`; what a participant saw
in display positions "A"/"B" is stored per assignment (`displayed_first`: which canonical candidate
was shown in position A). Answers are stored in canonical terms ("a"/"b") and positions ("A"/"B").
"""

from __future__ import annotations

import copy

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from csn_model import CONDITIONS
from csn_model.loudness import DEFAULT_TARGET_LUFS
from evalsite.stimuli.models import Catalogue, Clip, new_token

AB = [("a", "a"), ("b", "b")]

# The most practice trials a study shows (its practice_trials setting) or a design makes.
MAX_PRACTICE_TRIALS = 20
# Every key a study's `settings` may hold, with its default. `Study.setting(key)` reads through.
DEFAULT_SETTINGS: dict = {
    "screening": True,  # antiphase headphone screening (Woods et al. 2017)
    "huggins": False,  # additional Huggins-pitch screening (Milne et al. 2021)
    "catch": {"identical": 1, "attention": 1, "repeat": 1},  # per participant, counts by kind
    "exclusion": {
        "min_catch_accuracy": 0.75,
        "max_same_position_share": 0.9,
        # Off: response_ms counts from the unlock, after every clip played to the end, so a
        # listener who decided while listening answers fast; the report's share-of-fast-answers
        # check (fast_ms) catches clicks quicker than a reaction. See docs/statistics.md.
        "min_median_rt_ms": 0,
    },
    "target_answers_per_trial": 5,
    "trials_per_participant": None,  # None: every main trial
    "languages": ["en", "ja"],
    "refuse_phones": True,
    "completion_code": "",  # "" : a random code per participant
    "screen_out_code": "",  # "" : a random code per screened-out participant
    "prolific_completion_url": "",
    "reservation_timeout_s": 1800,
    "loudness_target_lufs": DEFAULT_TARGET_LUFS,  # the level csn embed brings files to too
    "practice_trials": 2,  # at most MAX_PRACTICE_TRIALS
    # The server stores an answer only once the trial page has been open this share of the time
    # its three served sounds take, padding included (the page unlocks the buttons after all
    # three played to the end; this holds the rule for any client). 0: no check. Below 1 leaves
    # room for clip lengths rounded in the catalogue; this project's choice, not the paper's.
    "min_listen_share": 0.9,
    # What happens to the answers of a participant who leaves the study on its page ("Leave the
    # study"): "delete" (as JATOS' abortStudy does) or "keep" (flagged by status `withdrawn`).
    # The consent page says which (`consent.STOPPING`).
    "withdrawn_answers": "delete",
}


# The study's fields participants read, which `Study.texts` may give per language.
PARTICIPANT_TEXTS = ("name", "description", "consent_text")


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        OPEN = "open", "open"
        PAUSED = "paused", "paused"
        CLOSED = "closed", "closed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="studies"
    )
    shared_with = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="shared_studies"
    )
    name = models.CharField(max_length=200)
    slug = models.CharField(
        max_length=32, unique=True, default=new_token, help_text="Public token of the entry link."
    )
    catalogue = models.ForeignKey(
        Catalogue, on_delete=models.SET_NULL, null=True, blank=True, related_name="studies"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    instruments = models.JSONField(default=list, help_text='e.g. ["drums", "guitar"]')
    consent_text = models.TextField(blank=True)
    description = models.TextField(blank=True, help_text="Shown on the instructions page.")
    settings = models.JSONField(default=dict, blank=True, help_text="Overrides DEFAULT_SETTINGS.")
    # The participant-facing texts in other languages: {"ja": {"name": ..., "description": ...,
    # "consent_text": ...}}; where a language has none (or ""), its participants see the field.
    texts = models.JSONField(
        default=dict,
        blank=True,
        help_text="The name, description and consent_text of a language whose participants "
        "should not read the fields' own.",
    )
    # How the trials were made: {"strategy": "random"|"model", "seed": int, "by": "...", ...}
    design = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The admin edits instruments and texts as raw JSON; the study form offers only known
        names and fields."""
        names = self.instruments
        known = isinstance(names, list) and all(n in CONDITIONS for n in names)
        if not known or len(set(names)) != len(names):
            expected = f"expected a list of distinct names from {', '.join(CONDITIONS)}"
            raise ValidationError({"instruments": f"{expected}, got {names!r}"})
        texts = self.texts
        if not isinstance(texts, dict) or not all(
            isinstance(by_field, dict)
            and all(k in PARTICIPANT_TEXTS and isinstance(v, str) for k, v in by_field.items())
            for by_field in texts.values()
        ):
            expected = f"expected {{language: {{field: text}}}} with fields {PARTICIPANT_TEXTS}"
            raise ValidationError({"texts": f"{expected}, got {texts!r}"})

    def text(self, field: str, language: str) -> str:
        """The study's `field` (one of PARTICIPANT_TEXTS) as `language`'s participants read it:
        the language's own text, else the field's."""
        own = (self.texts or {}).get(language) or {}
        return own.get(field) or getattr(self, field)

    def setting(self, key: str):
        """The study's value for `key`, falling back to DEFAULT_SETTINGS (dicts merged)."""
        default = copy.deepcopy(DEFAULT_SETTINGS.get(key))
        value = (self.settings or {}).get(key, default)
        if isinstance(default, dict) and isinstance(value, dict):
            return {**default, **value}
        return value

    def full_settings(self) -> dict:
        return {key: self.setting(key) for key in DEFAULT_SETTINGS} | {
            k: v for k, v in (self.settings or {}).items() if k not in DEFAULT_SETTINGS
        }

    def visible_to(self, user) -> bool:
        if not user.is_authenticated:
            return False
        return (
            user.is_superuser
            or self.owner_id == user.id
            or self.shared_with.filter(pk=user.pk).exists()
        )

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class Trial(models.Model):
    """A reference and two candidates (canonical order) judged for one instrument."""

    class CatchKind(models.TextChoices):
        NONE = "", "none"
        IDENTICAL = "identical", "identical candidate"
        ATTENTION = "attention", "instrument attention"
        REPEAT = "repeat", "repeat with A/B swapped"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="trials")
    reference = models.ForeignKey(Clip, on_delete=models.PROTECT, related_name="+")
    candidate_a = models.ForeignKey(Clip, on_delete=models.PROTECT, related_name="+")
    candidate_b = models.ForeignKey(Clip, on_delete=models.PROTECT, related_name="+")
    instrument = models.CharField(max_length=16)
    is_practice = models.BooleanField(default=False)
    is_catch = models.BooleanField(default=False)
    catch_kind = models.CharField(max_length=16, choices=CatchKind.choices, blank=True, default="")
    # The correct answer of catch and practice trials ("a"/"b"); blank for main and repeat trials.
    expected = models.CharField(max_length=1, choices=AB, blank=True, default="")
    repeat_of = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="repeats"
    )
    # NULL (not "") means "no model choice": the export maps it to None and agree to NaN.
    model_choice = models.CharField(max_length=1, choices=AB, null=True, blank=True)  # noqa: DJ001
    model_margin = models.FloatField(null=True, blank=True)
    # A main trial of a design from the model (model_design): one candidate is the reference's
    # nearest neighbour, the model's choice, so trials on one reference piece that share a
    # candidate piece go to different participants (design.select_trials). Not model_choice:
    # the model-choices job sets that on trials of any design. Set where the trial is made only.
    model_designed = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        kind = "practice" if self.is_practice else (self.catch_kind or "main")
        return f"trial {self.pk} ({self.instrument}, {kind})"

    @property
    def is_main(self) -> bool:
        return not self.is_practice and not self.is_catch


# Characters of the token a participant without a recruitment id is shown as their ID (48 random
# bits: unique in practice; the 80 bits left keep the page's address unguessable).
QUOTED_TOKEN_LENGTH = 8


class Participant(models.Model):
    class Step(models.TextChoices):
        BROWSER_CHECK = "browser_check", "browser check"
        CONSENT = "consent", "consent"
        QUESTIONNAIRE = "questionnaire", "questionnaire"
        CALIBRATION = "calibration", "volume calibration"
        SCREENING = "screening", "headphone screening"
        INSTRUCTIONS = "instructions", "instructions"
        PRACTICE = "practice", "practice"
        TRIALS = "trials", "trials"
        DONE = "done", "done"
        SCREENED_OUT = "screened_out", "screened out"
        DECLINED = "declined", "declined consent"
        REFUSED = "refused", "refused (browser)"
        FULL = "full", "study full"
        WITHDRAWN = "withdrawn", "left the study"

    FINAL_STEPS = {
        Step.DONE, Step.SCREENED_OUT, Step.DECLINED, Step.REFUSED, Step.FULL, Step.WITHDRAWN
    }  # fmt: skip
    # Steps from which a participant may leave the study ("Leave the study" on the page).
    WITHDRAWABLE_STEPS = {
        Step.QUESTIONNAIRE, Step.CALIBRATION, Step.SCREENING, Step.INSTRUCTIONS, Step.PRACTICE,
        Step.TRIALS,
    }  # fmt: skip

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participants")
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    session = models.CharField(
        max_length=64, default=new_token, help_text="Session id (Prolific SESSION_ID if given)."
    )
    prolific_pid = models.CharField(max_length=64, blank=True, db_index=True)
    prolific_study_id = models.CharField(max_length=64, blank=True)
    prolific_session_id = models.CharField(max_length=64, blank=True)
    external_pid = models.CharField(max_length=128, blank=True, db_index=True)  # generic ?pid=
    recruitment = models.JSONField(default=dict, blank=True)  # every query parameter at entry
    questionnaire = models.JSONField(default=dict, blank=True)
    browser = models.JSONField(default=dict, blank=True)  # browser-check report
    language = models.CharField(max_length=8, default="en")
    user_agent = models.TextField(blank=True)
    audio_sample_rate = models.PositiveIntegerField(null=True, blank=True)
    # {"kinds": the tests fixed on reaching the screening, "answers": [...], "views": per trial}
    screening = models.JSONField(default=dict, blank=True)
    screening_passed = models.BooleanField(null=True, blank=True)
    screen_out_code = models.CharField(max_length=32, blank=True)
    completion_code = models.CharField(max_length=32, blank=True)
    step = models.CharField(max_length=16, choices=Step.choices, default=Step.BROWSER_CHECK)
    state = models.JSONField(default=dict, blank=True)  # transient step state (e.g. feedback)
    seed = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    consented_at = models.DateTimeField(null=True, blank=True)
    # What "Leave the study" does to the answers ("delete" or "keep", `withdrawn_answers`) as the
    # consent page said when the participant agreed: a later edit of the study's setting does not
    # change it. "" before consent (and for those who agreed before it was recorded).
    withdrawn_answers = models.CharField(max_length=8, blank=True, default="", editable=False)
    # The consent page the participant agreed to, word for word (`ConsentVersion`); null before
    # consent (and for those who agreed before it was recorded).
    consent_version = models.ForeignKey(
        "ConsentVersion",
        on_delete=models.RESTRICT,  # what someone agreed to goes only with the study
        null=True,
        blank=True,
        editable=False,
        related_name="participants",
    )
    last_seen_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Answers refused because they came sooner after the trial page than its clips can be played
    # (or to a trial never shown): the page does not send these, a script or a bot does.
    early_answers = models.PositiveIntegerField(default=0)
    # Entered a draft study as a researcher's preview: deleted when the study leaves draft.
    is_preview = models.BooleanField(default=False)
    # A keyed hash (HMAC-SHA256, key from SECRET_KEY) of the study and the address the
    # participant entered from, which the limit on new participants per address counts
    # (entry_limit.py); never the address itself (personal data), in no export, not editable.
    # "" with the limit off, and once cleared (past the window, or the study paused or closed).
    entry_address = models.CharField(max_length=64, blank=True, default="", editable=False)
    # The same of the study and an IPv6 address's /48 network, which the limit counts too (at
    # CSN_ENTRY_LIMIT_48_MULTIPLE times the limit); "" for an IPv4 client, set and cleared with
    # `entry_address`.
    entry_network = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        ordering = ["id"]
        # One participant per recruitment id and study, as `flow.find_existing` looks them up
        # (a pid is the key only without a PROLIFIC_PID): two entries with a new id at the same
        # moment (a double click) would otherwise both create one (`flow.create`).
        constraints = [
            models.UniqueConstraint(
                fields=["study", "prolific_pid"],
                condition=~models.Q(prolific_pid=""),
                name="participant_prolific_pid_unique",
            ),
            models.UniqueConstraint(
                fields=["study", "external_pid"],
                condition=models.Q(prolific_pid="") & ~models.Q(external_pid=""),
                name="participant_pid_unique",
            ),
        ]
        # entry_limit.refuses_new: a study's recent entries from one hashed address (or /48);
        # and the clearing (entry_address > ''), which finds a study's remaining hashes in it.
        indexes = [
            models.Index(
                fields=["study", "entry_address", "started_at"], name="participant_entry_limit"
            ),
            models.Index(
                fields=["study", "entry_network", "started_at"], name="participant_entry_limit_48"
            ),
        ]

    def __str__(self) -> str:
        return f"participant {self.pk} of {self.study_id}"

    @property
    def quoted_id(self) -> str:
        """The ID the participant pages show, for a deletion request: the recruitment id, else
        the start of the (random) token, which the admin's search finds (`token__startswith`)."""
        return self.external_id or self.token[:QUOTED_TOKEN_LENGTH]

    def answers_on_leave(self) -> str:
        """`"delete"` or `"keep"`: what leaving does to the answers, as the participant agreed to;
        the study's current setting for one who agreed before that was recorded."""
        on_leave = self.withdrawn_answers or self.study.setting("withdrawn_answers")
        return "keep" if on_leave == "keep" else "delete"

    @property
    def external_id(self) -> str:
        return self.prolific_pid or self.external_pid


class Assignment(models.Model):
    """One slot of a participant's stored trial list: order, displayed positions, reservation."""

    # No single-column indexes on the foreign keys: the unique constraints below lead with
    # participant and the (trial, reserved_until) index with trial, and serve those lookups.
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="slots", db_index=False
    )
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="slots", db_index=False)
    index = models.PositiveIntegerField()  # 0-based over practice and main trials together
    displayed_first = models.CharField(max_length=1, choices=AB)  # canonical one shown as "A"
    reserved_until = models.DateTimeField()
    shown_at = models.DateTimeField(null=True, blank=True)  # first time the page was served
    # Earliest server time an answer is stored, in ms since the Unix epoch (an integer, so that
    # the answer's one statement compares it in standard SQL): the first view plus the study's
    # `min_listen_share` of its three renditions' durations (the clips' plus their padding of
    # silence, `served_audio`). NULL until the page was first served.
    answerable_ms = models.BigIntegerField(null=True, blank=True)

    # Not stored: the sample rates of the trial's reference, candidate a and candidate b, read
    # with the slot by the trial page's position query (`participant_sql`); None when not read.
    clip_rates: tuple[int | None, int | None, int | None] | None = None

    class Meta:
        ordering = ["participant", "index"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "index"], name="slot_index_unique"),
            models.UniqueConstraint(fields=["participant", "trial"], name="slot_trial_unique"),
        ]
        indexes = [models.Index(fields=["trial", "reserved_until"])]

    def __str__(self) -> str:
        return f"slot {self.index} of participant {self.participant_id}"


class TakenOutTrial(models.Model):
    """A trial taken out of a participant's list at a return, as others took it to its target
    while the participant was away (`design_return`). Its page may have been heard, so no later
    return gives it back, nor a trial the entry's rules keep out beside it (`design_refill`):
    the slot itself is deleted, so the list would no longer tell."""

    # participant is served by the unique (participant, trial) index, which leads with it.
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="taken_out", db_index=False
    )
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="taken_out")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "trial"], name="taken_out_once")
        ]

    def __str__(self) -> str:
        return f"trial {self.trial_id} taken out of participant {self.participant_id}'s list"


class Answer(models.Model):
    """Exactly one per (participant, trial): the database refuses a second one."""

    # participant is served by the unique (participant, trial) index, which leads with it: one
    # index less to update per stored answer.
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="answers", db_index=False
    )
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="answers")
    trial_index = models.PositiveIntegerField()
    chosen = models.CharField(max_length=1, choices=AB)  # canonical
    chosen_position = models.CharField(max_length=1, choices=[("A", "A"), ("B", "B")])
    displayed_first = models.CharField(max_length=1, choices=AB)
    response_ms = models.PositiveIntegerField(
        null=True, blank=True
    )  # client, buttons unlocked->click
    plays_reference = models.PositiveSmallIntegerField(default=0)
    plays_a = models.PositiveSmallIntegerField(default=0)  # canonical candidate a
    plays_b = models.PositiveSmallIntegerField(default=0)
    heard_reference = models.FloatField(null=True, blank=True)  # fraction of the clip heard
    heard_a = models.FloatField(null=True, blank=True)
    heard_b = models.FloatField(null=True, blank=True)
    blur_events = models.PositiveSmallIntegerField(default=0)
    audio_sample_rate = models.PositiveIntegerField(null=True, blank=True)
    client = models.JSONField(default=dict, blank=True)  # raw client log for this trial
    shown_at = models.DateTimeField(null=True, blank=True)  # server time the trial page was served
    created_at = models.DateTimeField(auto_now_add=True)  # server time the answer was stored

    class Meta:
        ordering = ["participant", "trial_index"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "trial"], name="answer_once_per_trial")
        ]

    def __str__(self) -> str:
        return f"answer of participant {self.participant_id} to trial {self.trial_id}"

    @property
    def catch_correct(self) -> bool | None:
        if self.trial.is_catch and self.trial.expected:
            return self.chosen == self.trial.expected
        return None


class StudyFold(models.Model):
    """The answers per trial of the study's participants in a final step, added up once per
    participant (`FoldedParticipant`), so that an entry does not recount them
    (`design_fill.fill_counts`). Such a participant's answers no longer change: done participants
    cannot answer again, the others have no slots. Written only under the study's lock.

    `participants` is how many were folded: when the `FoldedParticipant` rows no longer number
    as many (a folded participant was deleted, and its answers with it), the fold is rebuilt.
    Answers are not deleted on their own (read-only in the admin).

    `fill` is the study's whole fill as an entry last counted it at `fill_at`, plus the slots
    entries assigned since: entries within `design_fill.FILL_REUSE` of that count assign by it
    instead of counting again (`design_fill.entry_fill`)."""

    study = models.OneToOneField(
        Study, on_delete=models.CASCADE, primary_key=True, related_name="fold"
    )
    participants = models.PositiveIntegerField(default=0)
    answers = models.JSONField(default=dict)  # {trial id (str): answers of folded participants}
    fill = models.JSONField(default=dict)  # {trial id (str): answers + live slots}, see above
    fill_at = models.DateTimeField(null=True, blank=True)  # when `fill` was counted (None: never)

    def __str__(self) -> str:
        return f"fold of study {self.study_id}: {self.participants} participants"


class FoldedParticipant(models.Model):
    """A participant whose answers are in its study's `StudyFold`."""

    participant = models.OneToOneField(
        Participant, on_delete=models.CASCADE, primary_key=True, related_name="folded"
    )
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"participant {self.participant_id} folded"


class StudyEvent(models.Model):
    """One change an experimenter made to a study, kept so that the export says what held when
    (`history.py`): settings edited while participants were taking it, opening and pausing,
    trials added, the model's choices computed again. Append-only."""

    class Kind(models.TextChoices):
        CREATED = "created", "created"
        EDITED = "edited", "edited"
        STATUS = "status", "status changed"
        TRIALS = "trials", "trials added"
        MODEL_CHOICES = "model_choices", "model choices computed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    changes = models.JSONField(default=dict)  # {field: [before, after]}, or what was added

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} study {self.study_id} at {self.at:%Y-%m-%d %H:%M}"


class ConsentVersion(models.Model):
    """One exact content of a study's consent page, as participants read it in one language: the
    study's consent text and the site's paragraphs (`consent.consent_page`), stored once per
    study and named by its hash. A participant who agrees records the one they were shown
    (`Participant.consent_version`), so an edit of the consent text or of a setting the page
    describes while the study runs leaves each participant's agreement known. Never edited."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="consent_versions")
    # SHA-256 (hex) of the language code, a newline and `text`, UTF-8 (`consent.version_sha256`).
    sha256 = models.CharField(max_length=64, editable=False)
    language = models.CharField(max_length=8, editable=False)
    text = models.TextField(editable=False)  # paragraphs separated by a blank line
    first_shown_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["first_shown_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "sha256"], name="consent_version_unique")
        ]

    def __str__(self) -> str:
        return f"consent {self.sha256[:12]} ({self.language}) of study {self.study_id}"
