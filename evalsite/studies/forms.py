"""Experimenter forms: a study and its settings, clip uploads, trials (one by one, random; the
CSV import is in trials_csv.py).

A study's settings live in one JSON field (`Study.settings`, defaults in
`evalsite.studies.models.DEFAULT_SETTINGS`); `StudyForm` shows them as ordinary typed fields and
writes them back as that JSON, so the participant flow reads one place.
(Participant-side forms are in participant_forms.py.)
"""

from __future__ import annotations

from typing import TypeVar

from django import forms
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db.models import Count

from csn_model import CONDITIONS
from evalsite.datasets.catalog import datasets
from evalsite.stimuli.audio import LOUDNESS_TARGET_LUFS
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.stimuli.slakh_import import EXCERPT_SECONDS
from evalsite.studies import edit_conflicts, flow_prolific, flow_screening
from evalsite.studies.consent import SCREENED_OUT_START, stopping_paragraph_in_english
from evalsite.studies.models import (
    DEFAULT_SETTINGS,
    MAX_PRACTICE_TRIALS,
    PARTICIPANT_TEXTS,
    Study,
    Trial,
)

FieldT = TypeVar("FieldT", bound=forms.Field)


def form_field(form: forms.BaseForm, name: str, kind: type[FieldT]) -> FieldT:
    """The form's field `name`, checked to be of the kind whose attributes the caller sets."""
    field = form.fields[name]
    if not isinstance(field, kind):
        raise TypeError(
            f"{type(form).__name__}.{name}: a {type(field).__name__}; expected a {kind.__name__}"
        )
    return field


INSTRUMENT_CHOICES = [(c, c) for c in CONDITIONS]
CATCH_KINDS = ("identical", "attention", "repeat")
EXCLUSION_KEYS = ("min_catch_accuracy", "max_same_position_share", "min_median_rt_ms")
WITHDRAWN_ANSWERS_CHOICES = [
    ("delete", "delete them"),
    ("keep", "keep them (flagged as withdrawn)"),
]

# Settings keys shown as one form field each (the nested ones, catch and exclusion, are split).
_FLAT_SETTINGS = (
    "screening",
    "huggins",
    "target_answers_per_trial",
    "trials_per_participant",
    "languages",
    "refuse_phones",
    "completion_code",
    "screen_out_code",
    "prolific_completion_url",
    "reservation_timeout_s",
    "loudness_target_lufs",
    "practice_trials",
    "min_listen_share",
    "withdrawn_answers",
)


def _consent_help_text() -> str:
    """The consent text's help: the paragraph the consent page adds after it, for each choice of
    "Answers of participants who leave" (the participant's language; English here)."""
    added = " ".join(
        f"With “{label}”: “{stopping_paragraph_in_english(value)}”"
        for value, label in WITHDRAWN_ANSWERS_CHOICES
    )
    return (
        "Shown before anything else. The consent page then adds its own paragraph on what "
        "happens to the answers of a participant who stops, following “Answers of participants "
        f"who leave” below. {added} Without headphone screening, the sentence "
        f"“{SCREENED_OUT_START}, …” is left out."
    )


def _stored_dict(settings: dict, key: str) -> dict:
    """A copy of the nested settings dict stored under `key`; empty where none is stored (or
    something else is, which the form's values then replace as before)."""
    value = settings.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _language_text_field(field: str, language_name: str) -> forms.CharField:
    """The form field for one language's own `field` (a PARTICIPANT_TEXTS name)."""
    label = {"name": "Name", "description": "Description", "consent_text": "Consent text"}[field]
    widget = {"name": forms.TextInput(), "description": forms.Textarea(attrs={"rows": 3}),
              "consent_text": forms.Textarea(attrs={"rows": 6})}[field]  # fmt: skip
    return forms.CharField(
        required=False,
        strip=True,
        widget=widget,
        max_length=200 if field == "name" else None,
        label=f"{label} ({language_name})",
        help_text=f"Shown to participants who take part in {language_name}. "
        f"Empty: the {label.lower()} above.",
    )


class StudyForm(forms.ModelForm):
    """A study's description, instruments and every setting the participant flow reads."""

    instruments = forms.MultipleChoiceField(
        choices=INSTRUMENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        help_text="The instrument to judge is named on every trial.",
    )
    screening = forms.BooleanField(required=False, label="Antiphase headphone screening")
    huggins = forms.BooleanField(required=False, label="Also Huggins-pitch screening")
    catch_identical = forms.IntegerField(min_value=0, max_value=20, label="Identical catch trials")
    catch_attention = forms.IntegerField(
        min_value=0, max_value=20, label="Instrument-attention catch trials"
    )
    catch_repeat = forms.IntegerField(min_value=0, max_value=20, label="Repeats with A/B swapped")
    min_catch_accuracy = forms.FloatField(
        min_value=0, max_value=1, label="Exclude below catch accuracy"
    )
    max_same_position_share = forms.FloatField(
        min_value=0.5, max_value=1, label="Exclude above same-position share"
    )
    min_median_rt_ms = forms.IntegerField(
        min_value=0,
        label="Exclude below median response (ms)",
        help_text="0: off (the default). Response time runs from the unlock, after all three "
        "clips played, to the click: a quick, decided listener answers within a second "
        "(docs/statistics.md).",
    )
    target_answers_per_trial = forms.IntegerField(
        min_value=1,
        max_value=1000,
        help_text="Trials are assigned least-filled first until each has this many answers.",
    )
    trials_per_participant = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Empty: every main trial. A participant gets at most one main trial per "
        "instrument and reference piece, and, where the model chose the candidates, no two on "
        "one reference piece that share a candidate piece; the study page says when that is "
        "fewer.",
    )
    languages = forms.MultipleChoiceField(
        choices=lambda: list(django_settings.LANGUAGES), widget=forms.CheckboxSelectMultiple
    )
    refuse_phones = forms.BooleanField(required=False)
    completion_code = forms.CharField(
        max_length=32, required=False,
        help_text="Shown to participants at the end and sent to Prolific with them. With a "
        "Prolific completion URL: the code set on the Prolific study (Prolific accepts only "
        "its own codes); left empty, the URL's cc=… is taken. Without one, empty: a random "
        "code per participant.",
    )  # fmt: skip
    screen_out_code = forms.CharField(
        max_length=32, required=False, label="Screen-out code",
        help_text="Prolific's code for screened-out participants (sent to Prolific with it). "
        "Empty: a random code per screened-out participant, shown to them only.",
    )  # fmt: skip
    prolific_completion_url = forms.URLField(
        required=False, assume_scheme="https", label="Prolific completion URL",
        help_text="Participants are sent here once every answer is stored; {code} is replaced "
        "by the completion code (else it is sent as cc=). Another panel's URL (not "
        "app.prolific.com's) may take each participant's own code: leave Completion code empty.",
    )  # fmt: skip
    reservation_timeout_s = forms.IntegerField(
        min_value=60, max_value=86400, label="Reservation timeout (s)",
        help_text="An inactive participant's unanswered trials go back to the pool after this.",
    )  # fmt: skip
    loudness_target_lufs = forms.FloatField(
        min_value=LOUDNESS_TARGET_LUFS[0], max_value=LOUDNESS_TARGET_LUFS[1],
        label="Loudness target (LUFS)",
        help_text="Clips are normalised to this integrated loudness (ITU-R BS.1770).",
    )  # fmt: skip
    practice_trials = forms.IntegerField(min_value=0, max_value=MAX_PRACTICE_TRIALS)
    min_listen_share = forms.FloatField(
        min_value=0, max_value=1, label="Minimum listening before an answer (share)",
        help_text="The server stores an answer only once its trial page has been open this "
        "share of the time its three sounds take to play, with the silence each is served with "
        "(the page itself unlocks the buttons after "
        "all three played to the end). 0: no check.",
    )  # fmt: skip
    withdrawn_answers = forms.ChoiceField(
        choices=WITHDRAWN_ANSWERS_CHOICES,
        label="Answers of participants who leave",
        help_text='Participant pages after the consent have a "Leave the study" button; the '
        "consent page says what pressing it does to the answers given before (see the consent "
        "text's help).",
    )
    shared_with_names = forms.CharField(
        required=False,
        label="Shared with",
        help_text="User names of other researchers, separated by commas.",
    )
    # The study as the page was loaded (edit_conflicts): a Save after another's is shown again.
    version = forms.CharField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Study
        fields = ["name", "description", "instruments", "consent_text", "catalogue"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "consent_text": forms.Textarea(attrs={"rows": 6}),
        }

    def __init__(self, *args, owner=None, is_owner: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        study = self.instance
        owner_id = study.owner_id if study.pk else getattr(owner, "pk", None)
        catalogue = form_field(self, "catalogue", forms.ModelChoiceField)
        catalogue.help_text = "Clips for this study (created on first upload)."
        self.fields["consent_text"].help_text = _consent_help_text()
        if is_owner:
            catalogue.queryset = Catalogue.objects.filter(owner_id=owner_id)
        else:
            # The study's catalogue makes its clips playable and searchable for everyone the
            # study is shared with: only the owner may point it at another of their catalogues
            # (disabled, a posted value is ignored; the current one is the only choice shown).
            catalogue.queryset = Catalogue.objects.filter(pk=study.catalogue_id)
            catalogue.disabled = True
        values = study.full_settings() if study.pk else dict(DEFAULT_SETTINGS)
        for name in _FLAT_SETTINGS:
            self.initial.setdefault(name, values[name])
        for kind in CATCH_KINDS:
            self.initial.setdefault(f"catch_{kind}", values["catch"].get(kind, 0))
        for key in EXCLUSION_KEYS:
            self.initial.setdefault(key, values["exclusion"].get(key))
        if study.pk:
            names = study.shared_with.order_by("username").values_list("username", flat=True)
            self.initial.setdefault("shared_with_names", ", ".join(names))
            self.initial.setdefault("version", edit_conflicts.version(study))
        if not is_owner:
            self.fields["shared_with_names"].disabled = True
        for code, language_name in django_settings.LANGUAGES:
            own = (study.texts or {}).get(code) or {}
            for field in PARTICIPANT_TEXTS:
                self.fields[f"{field}_{code}"] = _language_text_field(field, str(language_name))
                self.initial.setdefault(f"{field}_{code}", own.get(field, ""))

    def language_texts(self) -> list[tuple[str, list[forms.BoundField]]]:
        """(language name, its text fields) for each language the site offers, in order."""
        return [
            (str(name), [self[f"{field}_{code}"] for field in PARTICIPANT_TEXTS])
            for code, name in django_settings.LANGUAGES
        ]

    def clean_shared_with_names(self):
        value = self.cleaned_data["shared_with_names"]
        if isinstance(value, list):  # disabled field: the initial list of users came back
            return value
        names = [n.strip() for n in value.split(",") if n.strip()]
        users = list(get_user_model().objects.filter(username__in=names))
        missing = sorted(set(names) - {u.username for u in users})
        if missing:
            raise forms.ValidationError(f"No researcher named {', '.join(missing)}.")
        return users

    @staticmethod
    def state_key(field: str) -> str | None:
        """The `history.state` key the field named `field` edits (None: it edits none)."""
        if field in ("name", "description", "instruments", "consent_text", "catalogue"):
            return field
        if field == "shared_with_names":
            return "shared_with"
        if field in _FLAT_SETTINGS:
            return f"settings.{field}"
        if field in EXCLUSION_KEYS:
            return f"settings.exclusion.{field}"
        if field.startswith("catch_") and field.removeprefix("catch_") in CATCH_KINDS:
            return f"settings.catch.{field.removeprefix('catch_')}"
        for text in PARTICIPANT_TEXTS:
            language = field.removeprefix(f"{text}_")
            if language != field and language in dict(django_settings.LANGUAGES):
                return f"texts.{language}.{text}"
        return None

    def labels(self) -> dict[str, str]:
        """Each `history.state` key the form edits -> its field's label."""
        return {key: str(self[n].label) for n in self.fields if (key := self.state_key(n))}

    def clean_version(self) -> str:
        """The page's version, which a Save of an existing study must carry: without it the Save
        cannot be checked against changes made since its page was loaded (`edit_conflicts`), so
        it is refused (code "missing": the view answers 428) rather than saved unchecked. A new
        study's page has none (there is nothing to have changed)."""
        value = self.cleaned_data["version"]
        if not value and self.instance.pk:
            raise forms.ValidationError(
                "Not saved: this Save carried no page version, so it could not be checked "
                "against changes made since the page was loaded. Reload the page and edit again.",
                code="missing",
            )
        if value:
            try:
                edit_conflicts.loaded(value, self.instance.pk)
            except signing.BadSignature:
                raise forms.ValidationError(
                    "This page's version is not one the site made for this study; reload the "
                    "page and edit again."
                ) from None
        return value

    def clean_instruments(self):
        """The instruments, refusing to drop one the study's trials judge: the trials are
        assigned whatever the list says, the instructions name only the listed instruments."""
        value = self.cleaned_data["instruments"]
        if not self.instance.pk:
            return value
        judged = (
            self.instance.trials.exclude(instrument__in=value)
            .values_list("instrument")
            .annotate(n=Count("id"))
            .order_by("instrument")
        )
        if self.instance.status == Study.Status.DRAFT:  # trial_removal deletes only a draft's
            then = ", or delete the study's trials first (Trials page, Delete all trials)."
        else:
            then = ": trials cannot be deleted once the study has been opened."
        errors = [
            f"{name} is judged in {n} of the study's trials: participants would get them while "
            f"the instructions no longer name it; keep {name}{then}"
            for name, n in judged
        ]
        if errors:
            raise forms.ValidationError(errors)
        return value

    def clean_loudness_target_lufs(self):
        """The target, refusing a new one once participants have set their volume at the current
        one (`flow_screening.loudness_target_refusal`, which the admin applies too)."""
        value = self.cleaned_data["loudness_target_lufs"]
        if why := flow_screening.loudness_target_refusal(self.instance, value):
            raise forms.ValidationError(why)
        return value

    def clean(self):
        data = super().clean()
        if data.get("huggins") and not data.get("screening"):
            self.add_error("huggins", "Huggins-pitch screening runs after the antiphase test.")
        self._pair_completion_code(data)
        return data

    def _pair_completion_code(self, data: dict) -> None:
        """A Prolific completion URL needs a study-wide completion code (`flow_prolific`; another
        panel's URL is not paired): the code given, else the URL's own `cc`, taken into the
        setting so that the done page, the link and the export carry the code Prolific was
        given; refused without either, or where the two differ."""
        if "completion_code" not in data or "prolific_completion_url" not in data:
            return  # one is invalid already, with its own error
        url = data["prolific_completion_url"]
        if not data["completion_code"] and flow_prolific.is_prolific(url):
            data["completion_code"] = flow_prolific.url_code(url)
        if why := flow_prolific.completion_problem(url, data["completion_code"]):
            self.add_error("completion_code", why)

    def settings_json(self) -> dict:
        """The cleaned settings as the JSON `Study.settings` stores: the form's keys changed,
        every other key kept, inside `catch` and `exclusion` too (such as `exclusion.fast_ms`,
        set in the admin or by an import, which the form does not show)."""
        data = self.cleaned_data
        out = dict(self.instance.settings or {})
        for name in _FLAT_SETTINGS:
            out[name] = data[name]
        out["catch"] = _stored_dict(out, "catch") | {
            kind: data[f"catch_{kind}"] for kind in CATCH_KINDS
        }
        out["exclusion"] = _stored_dict(out, "exclusion") | {
            key: data[key] for key in EXCLUSION_KEYS
        }
        return out

    def texts_json(self) -> dict:
        """The cleaned per-language texts as `Study.texts` stores them: only the texts given,
        a language with none left out (languages the site no longer offers kept)."""
        offered = [code for code, _name in django_settings.LANGUAGES]
        out = {k: v for k, v in (self.instance.texts or {}).items() if k not in offered}
        for code in offered:
            own = {f: self.cleaned_data[f"{f}_{code}"] for f in PARTICIPANT_TEXTS}
            if any(own.values()):
                out[code] = {f: text for f, text in own.items() if text}
        return out

    def save(self, commit: bool = True) -> Study:
        """The study with the form's values; an existing study's row gets only the columns the
        form edits (a status changed since the page was read is not written back)."""
        study = super().save(commit=False)
        study.settings = self.settings_json()
        study.texts = self.texts_json()
        if commit:
            study.save(update_fields=self.edited_columns() if study.pk else None)
            self.save_sharing(study)
        return study

    def edited_columns(self) -> list[str]:
        """The study's columns this form writes: its own fields but those disabled for the
        user (their value is the one read, perhaps changed since), settings, texts."""
        own = [name for name in self._meta.fields or [] if not self.fields[name].disabled]
        return [*own, "settings", "texts", "updated_at"]

    def save_sharing(self, study: Study) -> None:
        if not self.fields["shared_with_names"].disabled:
            users = self.cleaned_data["shared_with_names"]
            study.shared_with.set([u for u in users if u.pk != study.owner_id])


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field taking several files at once (Django's documented recipe)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "audio/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        """The files as uploaded, at least one. Each is checked when it is processed, so a bad
        one (even an empty one) is named in its own result and never keeps the others out."""
        files = [d for d in (data if isinstance(data, list | tuple) else [data]) if d]
        if not files:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return files


class ClipUploadForm(forms.Form):
    # The form's metaclass moves declared fields into base_fields, so this never shadows the
    # uploaded files' `self.files`; the stubs see a class attribute of another type.
    files = MultipleFileField(label="Audio files (WAV, FLAC, OGG, MP3)")  # type: ignore[assignment]
    piece = forms.CharField(
        max_length=255, required=False, help_text="Source track name for all files (optional)."
    )


def _dataset_choices() -> list[tuple[str, str]]:
    return [(ref.slug, f"{ref.slug} ({ref.root})") for ref in datasets()]


class ImportForm(forms.Form):
    """Import clips from one of the Slakh-layout datasets this server offers (CSN_DATA_DIR and
    CSN_DATASETS, as on the Datasets page): researchers pick one, they cannot name any folder
    the server can read."""

    root = forms.ChoiceField(
        choices=_dataset_choices, label="Dataset",
        help_text="The server's datasets (CSN_DATA_DIR, CSN_DATASETS); each holds train/, "
        "validation/, test/.",
    )  # fmt: skip
    split = forms.ChoiceField(choices=[(s, s) for s in ("test", "validation", "train")])
    seconds = forms.FloatField(
        min_value=EXCERPT_SECONDS[0], max_value=EXCERPT_SECONDS[1], initial=5.0, label="Excerpt (s)"
    )
    attention = forms.BooleanField(
        required=False, initial=True, label="Also build stem clips for attention checks"
    )
    duplicates = forms.ChoiceField(
        choices=[("refuse", "refuse the dataset"), ("omit", "leave out all but one")],
        initial="refuse", label="Tracks sharing a source MIDI",
        help_text="Original Slakh2100 renders some MIDI files as several tracks in different "
        "splits, so test pieces would also be training pieces. Refuse: nothing is imported and "
        "the error names the tracks (use Slakh2100-redux). Leave out all but one: each source "
        "MIDI keeps its first track in train, validation, test order; the result lists the "
        "tracks left out.", required=False,  # not sent: the default, as the command has it
    )  # fmt: skip

    def clean_duplicates(self) -> str:
        return self.cleaned_data["duplicates"] or "refuse"


class RandomTrialsForm(forms.Form):
    """Draw main, catch and practice trials at random from the study's catalogue."""

    per_instrument = forms.IntegerField(
        min_value=1, max_value=500, initial=10,
        help_text="Each piece is an instrument's reference once before any is twice, so "
        "references recur only with more trials than the catalogue has pieces. A participant "
        "gets one main trial per instrument and reference piece (two such trials would share "
        "the reference's song), so each then gets fewer main trials than the study has: the "
        "study page says how many. Candidates are random, so trials of different instruments "
        "that share one still go together.",
    )  # fmt: skip
    catch_per_kind = forms.IntegerField(min_value=0, max_value=20, initial=2)
    seed = forms.IntegerField(min_value=0, initial=0)


class RepeatsForm(forms.Form):
    """Add A/B-swapped repeats of main trials (any trials: uploaded, CSV, by hand)."""

    per_instrument = forms.IntegerField(
        min_value=1, max_value=100, initial=2, label="Repeats per instrument",
        help_text="Main trials without a repeat yet are chosen at random by the seed.",
    )  # fmt: skip
    seed = forms.IntegerField(min_value=0, initial=0)

    def __init__(self, *args, **kwargs):
        # Shown on the trials page beside RandomTrialsForm, whose fields have the same names:
        # its own ids keep each label pointing at its own field (the posted names are the same).
        kwargs.setdefault("auto_id", "id_repeats_%s")
        super().__init__(*args, **kwargs)


def study_clips(study: Study, user):
    """Clips `user` may put in `study`'s trials: for its owner (or a superuser) the ready clips of
    any of the owner's catalogues, for a researcher it is shared with those of the study's own
    catalogue only. A clip in a study's trials becomes playable to everyone who sees the study,
    so only the owner chooses to bring in another catalogue, as only the owner chooses the study's
    catalogue (docs/experimenter.md)."""
    ready = Clip.objects.filter(status=Clip.Status.READY).order_by("id")
    if user.is_superuser or user.pk == study.owner_id:
        return ready.filter(catalogue__owner_id=study.owner_id)
    if study.catalogue_id is None:  # filtering on None would match catalogue-less clips
        return ready.none()
    return ready.filter(catalogue_id=study.catalogue_id)


def trial_clip_errors(
    reference: Clip, a: Clip, b: Clip, *, catch_kind: str, expected: str, is_practice: bool
) -> dict[str, str]:
    """What is wrong with a trial's three clips, by field (the form's and the CSV's).

    The two candidates always differ. Only a trial whose expected answer is the reference itself
    holds it: an identical catch trial (at the expected position, where participants are scored
    against it) or a practice trial without catch kind (drawn as identical ones too). A main or
    attention trial never does: its answer would be given away."""
    errors = {}
    if a == b:
        errors["candidate_b"] = "the same clip as candidate_a; expected two different candidates"
    held = {"a": a, "b": b}
    if catch_kind == Trial.CatchKind.IDENTICAL:
        if expected in held and held[expected] != reference:
            errors.setdefault(
                f"candidate_{expected}",
                f"not the reference; expected the reference itself, as an identical catch "
                f"trial's expected answer ({expected!r})",
            )
        return errors
    allowed = expected if is_practice and not catch_kind else ""
    for side, clip in held.items():
        if clip == reference and side != allowed:
            errors.setdefault(
                f"candidate_{side}",
                "the reference itself; expected another clip (only an identical catch or "
                "practice trial holds the reference, as its expected answer)",
            )
    return errors


class TrialForm(forms.ModelForm):
    """One trial: reference and two candidates (canonical order) from the clips `user` may use
    (study_clips)."""

    class Meta:
        model = Trial
        fields = [
            "reference",
            "candidate_a",
            "candidate_b",
            "instrument",
            "is_practice",
            "catch_kind",
            "expected",
            "model_choice",
            "model_margin",
        ]

    # Not a model field of the form (Trial.model_designed is set where a trial is made only,
    # never edited): the trial is one a model designed, e.g. the researcher's own elsewhere.
    model_designed = forms.BooleanField(
        required=False,
        label="Designed by a model",
        help_text="Tick for a main trial whose candidates a model chose (e.g. the reference's "
        "nearest neighbour): a participant then never gets two trials on one reference piece "
        "that share a candidate piece, as with the site's model design.",
    )

    def __init__(self, *args, study: Study, user, **kwargs):
        super().__init__(*args, **kwargs)
        clips = study_clips(study, user)
        for name in ("reference", "candidate_a", "candidate_b"):
            form_field(self, name, forms.ModelChoiceField).queryset = clips
        self.fields["instrument"] = forms.ChoiceField(
            choices=[(i, i) for i in (study.instruments or CONDITIONS)]
        )
        form_field(self, "catch_kind", forms.ChoiceField).choices = [
            c for c in Trial.CatchKind.choices if c[0] != Trial.CatchKind.REPEAT
        ]
        self.study = study

    def clean(self):
        data = super().clean()
        if data.get("catch_kind") and not data.get("expected"):
            self.add_error("expected", "An identical or attention catch trial needs its answer.")
        if data.get("is_practice") and not data.get("expected"):
            self.add_error("expected", "A practice trial needs its answer (feedback is shown).")
        if data.get("is_practice") and data.get("catch_kind"):  # practice counts in no rate
            self.add_error(
                "is_practice", "A practice trial cannot be a catch trial: choose no catch kind."
            )
        if data.get("model_designed") and (data.get("is_practice") or data.get("catch_kind")):
            self.add_error(
                "model_designed",
                "The shared-candidate rule concerns main trials only: untick it for a practice "
                "or catch trial.",
            )
        clips = [data.get(name) for name in ("reference", "candidate_a", "candidate_b")]
        if all(clips):
            conflicts = trial_clip_errors(
                *clips,
                catch_kind=data.get("catch_kind") or "",
                expected=data.get("expected") or "",
                is_practice=bool(data.get("is_practice")),
            )
            for name, error in conflicts.items():
                self.add_error(name, f"{error[0].upper()}{error[1:]}.")
        return data

    def save(self, commit: bool = True) -> Trial:
        trial = super().save(commit=False)
        trial.study = self.study
        trial.is_catch = bool(trial.catch_kind)
        trial.model_choice = trial.model_choice or None
        trial.model_designed = bool(self.cleaned_data.get("model_designed"))
        if commit:
            trial.save()
        return trial
