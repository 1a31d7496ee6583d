"""What experimenters changed in a study and when (`StudyEvent`): the settings participants got
depend on the time they took part, so the export keeps every change next to the final config."""

from __future__ import annotations

from evalsite.studies.models import Study, StudyEvent

Kind = StudyEvent.Kind


def state(study: Study) -> dict:
    """The study's fields an experimenter edits, flat: settings under `settings.<key>` (nested
    settings under `settings.<key>.<sub>`), a language's texts under `texts.<language>.<field>`,
    so that a change names exactly what changed."""
    flat = {
        "name": study.name,
        "instruments": list(study.instruments or []),
        "consent_text": study.consent_text,
        "description": study.description,
        "catalogue": study.catalogue_id,
        "shared_with": sorted(u.get_username() for u in study.shared_with.all()),
    }
    for language, by_field in sorted((study.texts or {}).items()):
        flat |= {f"texts.{language}.{field}": text for field, text in by_field.items()}
    for key, value in study.full_settings().items():
        if isinstance(value, dict):
            flat |= {f"settings.{key}.{sub}": v for sub, v in value.items()}
        else:
            flat[f"settings.{key}"] = value
    return flat


def changes(before: dict, after: dict) -> dict:
    """{field: [before, after]} for every field whose value differs (None where absent)."""
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    }


def record(study: Study, user, kind: str, what: dict) -> StudyEvent | None:
    """Append an event (none for an edit that changed nothing)."""
    if kind == Kind.EDITED and not what:
        return None
    user = user if getattr(user, "is_authenticated", False) else None
    return StudyEvent.objects.create(study=study, user=user, kind=kind, changes=what)


def model_choice_checkpoint(study: Study) -> str | None:
    """The checkpoint the study's model choices were last computed with: the latest model-choices
    event's, else that of a design from the model; None when no job computed them (none, or
    typed in by hand or CSV)."""
    last = study.events.filter(kind=Kind.MODEL_CHOICES).order_by("-at", "-id").first()
    if last is not None:
        return last.changes["checkpoint"][1]
    return (study.design or {}).get("checkpoint_id")


def events(study: Study) -> list[dict]:
    """The study's events in order, as the export writes them."""
    return [
        {"at": e.at, "by": e.user.get_username() if e.user else "", "kind": e.kind,
         "changes": e.changes}
        for e in study.events.select_related("user")
    ]  # fmt: skip
