"""What a browser posts back from a form page, for tests that submit a page as shown."""

from __future__ import annotations

from django import forms
from django.test import Client
from django.urls import reverse

from evalsite.studies.models import Study


def page_values_of(form: forms.BaseForm) -> dict:
    """What a browser posts back from a page showing `form`: every enabled field's shown value."""
    data: dict = {}
    for name, bound in form._bound_items():
        value = bound.value()
        if bound.field.disabled:
            continue
        if isinstance(bound.field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        else:
            data[name] = "" if value is None else str(getattr(value, "pk", value))
    return data


def settings_page_values(client: Client, study: Study) -> dict:
    """What a browser posts back from the study's settings page as loaded now."""
    return page_values_of(
        client.get(reverse("studies:study_edit", args=[study.pk])).context["form"]
    )


def page_version(client: Client, study: Study) -> str:
    """The version the study's settings page carries as `client` loads it now: what a Save from
    that page posts (a Save without one is refused, `edit_conflicts`)."""
    return settings_page_values(client, study)["version"]


def admin_trial_post(trial, **changes) -> dict:
    """What the Django admin's trial page posts for `trial` as it now is, with `changes` typed
    in."""
    data = {
        "study": trial.study_id, "reference": trial.reference_id,
        "candidate_a": trial.candidate_a_id, "candidate_b": trial.candidate_b_id,
        "instrument": trial.instrument, "catch_kind": trial.catch_kind,
        "expected": trial.expected, "repeat_of": trial.repeat_of_id or "",
        "model_choice": trial.model_choice or "", "model_margin": trial.model_margin or "",
        **({"is_practice": "on"} if trial.is_practice else {}),
        **({"is_catch": "on"} if trial.is_catch else {}),
    }  # fmt: skip
    return data | changes
