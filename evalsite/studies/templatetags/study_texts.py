"""`{% study_text study "name" %}`: a study's participant-facing text in the language the page is
rendered in (`Study.text`; participant pages activate the participant's language)."""

from __future__ import annotations

from django import template
from django.utils import translation

from evalsite.studies.models import Study

register = template.Library()


@register.simple_tag
def study_text(study: Study, field: str) -> str:
    return study.text(field, translation.get_language())
