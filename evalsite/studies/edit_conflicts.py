"""A study's settings page saved after someone else changed the study (optimistic concurrency).

The page carries a version: the study's editable state as it was loaded (`history.state`) and
its latest history event, signed. A Save compares it, under the study's row lock, with the state
now: when anything changed meanwhile (another researcher's Save, the catalogue made by the first
upload, an admin edit), nothing is saved and the page is shown again with the user's own changes
kept, the others' values in the fields the user left alone, and a message naming what changed
and who changed it (from the history). Without this, the later Save wrote the stale page's values
back over the earlier one, unseen. A change meanwhile that already has the value the Save
proposes is no conflict (saving changes nothing of it): the same page sent twice saves.

The version is required, as a precondition (HTTP's If-Match; 428 Precondition Required without
it): a Save that carries none (a script, a page saved from before versions) could not be checked,
so it is refused, saving nothing and saying why, instead of being saved unchecked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django import forms
from django.core import signing
from django.http import QueryDict

from evalsite.studies import history
from evalsite.studies.models import Study

SALT = "evalsite.studies.study_edit.version"


def version(study: Study) -> str:
    """The version a settings page loaded now carries (hidden field `version`)."""
    last = study.events.order_by("-id").values_list("id", flat=True).first() or 0
    return signing.dumps({"state": _plain(history.state(study)), "event": last},
                         salt=f"{SALT}:{study.pk}", compress=True)  # fmt: skip


def loaded(value: str, study_pk: int) -> tuple[dict, int]:
    """(state, latest event id) a page's version was made from; raises signing.BadSignature
    for a value the site did not make for that study (another study's page's, or edited)."""
    data = signing.loads(value, salt=f"{SALT}:{study_pk}")
    return data["state"], int(data["event"])


def _plain(state: dict) -> dict:
    """The state as the version stores it (JSON: tuples as lists), to compare like with like."""
    return json.loads(json.dumps(state, default=str))


@dataclass(frozen=True)
class Conflict:
    others: dict  # state key -> value saved meanwhile, for each key changed since the page loaded
    mine: set  # state keys the user changed on the page
    by: list  # who changed them (user names; "someone" where the history does not say)


def conflict(form, current: Study) -> Conflict | None:
    """What changed in `current` (the locked row) since the valid settings `form` was loaded,
    or None when nothing did, or when everything that changed already has the value this POST
    proposes: saving it then undoes nobody's change (the page sent twice by a double click or a
    resend, whose first POST made the change; or two researchers making the same change). A
    valid form carries a version (`StudyForm.clean_version` refuses a Save without one)."""
    was, last_event = loaded(form.cleaned_data["version"], current.pk)
    now = _plain(history.state(current))
    others = {k: now.get(k) for k in was.keys() | now.keys() if was.get(k) != now.get(k)}
    proposed = _plain(_proposed_state(form, current))
    if all(proposed.get(k) == value for k, value in others.items()):
        return None
    shown = {form.state_key(n) for n, f in form.fields.items() if not f.disabled} - {None}
    mine = {k for k in shown if proposed.get(k) != was.get(k)}
    events = current.events.filter(id__gt=last_event).select_related("user").order_by("id")
    by = [e.user.get_username() if e.user else "someone" for e in events
          if others.keys() & (e.changes or {}).keys()]  # fmt: skip
    return Conflict(others, mine, list(dict.fromkeys(by)) or ["someone"])


def _proposed_state(form, current: Study) -> dict:
    """The state the study would have with the form saved onto `current`."""
    study = Study(pk=current.pk, owner_id=current.owner_id, settings=form.settings_json(),
                  texts=form.texts_json())  # fmt: skip
    for field in Study._meta.concrete_fields:
        if field.name in form._meta.fields:
            setattr(study, field.attname, getattr(form.instance, field.attname))
    state = history.state(study)  # shared_with: as stored, unless the form changes it
    if not form.fields["shared_with_names"].disabled:
        users = form.cleaned_data["shared_with_names"]
        state["shared_with"] = sorted(u.get_username() for u in users if u.pk != current.owner_id)
    return state


def message(found: Conflict, labels: dict[str, str]) -> str:
    """What the page says above the form shown again: what changed, by whom, what to do."""

    def name(key: str) -> str:
        return labels.get(key, key)  # a key the form does not show is named as stored

    changed = ", ".join(sorted(name(k) for k in found.others))
    said = (
        f"Not saved: {', '.join(found.by)} changed {changed} since you opened this page. The form "
        "now shows the values saved meanwhile, with your own changes kept; check them and Save "
        "again."
    )
    both = sorted(k for k in found.others if k in found.mine)
    if both:
        saved = f"{found.by[0]} saved" if len(found.by) == 1 else "saved meanwhile:"
        theirs = [f"{saved} {_shown(found.others[k])}" for k in both]
        if len(both) > 1:
            theirs = [f"{name(k)}: {t}" for k, t in zip(both, theirs, strict=True)]
        said += (
            f" You changed {', '.join(name(k) for k in both)} too: your value is shown "
            f"({'; '.join(theirs)})."
        )
    return said


def _shown(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "empty" if value in (None, "") else str(value)


def refreshed_data(form, fresh, found: Conflict) -> QueryDict:
    """The POST of the page shown again: the user's input, except that each field the user left
    alone and someone else changed has the value saved meanwhile (from `fresh`, an unbound form
    on the study as it is now), and the version is the current one."""
    data = form.data.copy()
    for field_name, field in fresh.fields.items():
        key = fresh.state_key(field_name)
        if field.disabled or key is None or key not in found.others or key in found.mine:
            continue
        data.setlist(field_name, _post_values(fresh[field_name]))
    data["version"] = fresh["version"].value()
    return data


def _post_values(bound) -> list[str]:
    """What a browser posts for the unbound field `bound` as shown (a list: one per value)."""
    value = bound.value()
    if isinstance(bound.field, forms.BooleanField):
        return ["on"] if value else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return ["" if value is None else str(getattr(value, "pk", value))]
