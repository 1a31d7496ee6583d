from django.db import migrations


def flag_latest_model_design(apps, schema_editor):
    """Flag the main trials of each model-designed study's latest design, for databases that ran
    0014 when it took a study's first design entry: a study designed, emptied ("Delete all
    trials") and designed again kept its current trials unflagged, so select_trials treated
    the model's candidates as random. The rule is 0014's, now with the latest entry: the main
    trials made no later than the latest `trials` entry with how "model" (a design from the
    model runs only on a study without trials, so those are the latest design's).

    It only sets flags. The first-entry rule flagged no trial wrongly (a later design entry
    means every trial made before the first was deleted), and a design since 0014 sets the
    flag itself as it makes its trials, which this rule finds again; studies without such an
    entry kept 0014's count-by-id rule, which this step leaves alone. Running it twice changes
    nothing the second time."""
    Study = apps.get_model("studies", "Study")
    Trial = apps.get_model("studies", "Trial")
    StudyEvent = apps.get_model("studies", "StudyEvent")
    for study in Study.objects.filter(design__by="model_design").order_by("id"):
        event = (
            StudyEvent.objects.filter(study=study, kind="trials", changes__how="model")
            .order_by("-at", "-id")
            .first()
        )
        if event is None:
            continue
        Trial.objects.filter(
            study=study, is_practice=False, is_catch=False, created_at__lte=event.at,
            model_designed=False,
        ).update(model_designed=True)  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0015_participant_entry_network"),
    ]

    operations = [
        migrations.RunPython(flag_latest_model_design, migrations.RunPython.noop),
    ]
