"""Mark the participants the code before `flow.turn_away` put at the study-full step at "Start"
on the instructions, while the trials left were only reserved, the way `turn_away` marks them
now (`FULL_FOR_NOW`: the step they were turned away at), so that `flow.resume` takes them back
once a newcomer would get a trial (findings_rupg.md, 3). Without the mark they stayed turned away
for good, while a newcomer was let in.

That code sent a participant to `full` in three ways, told apart here from what is stored:
- at the study link, when the answers alone gave every main trial its target (for good, as
  `turn_away` decides now): not consented yet (`consented_at` empty); left unmarked;
- at "Start", when assignment found no trial (answers plus live reservations): consented, and
  assignment stored no slot, so it holds none and had none taken out; marked, unless the answers
  alone give every main trial its target now (then `turn_away` would not mark it either);
- in its trials, its list emptied on a return (docs/site.md, Design rules, "Returns"): it keeps
  the slots it answered (practice, checks), and the trials taken out of its list are recorded
  (`TakenOutTrial`); it stays at `full` for good, as now; left unmarked.
The code before studies 0017 (0a72b5c, `git log -- evalsite/studies/migrations/0017*`) recorded
no trial taken out: one it emptied in its trials holds no slot and has no `TakenOutTrial`, as one
turned away at "Start", and it may have heard a trial free again. So only participants sent to
`full` (`finished_at`) after 0017 was applied (django_migrations) are marked: a database upgraded
from before 0017 straight to this migration marks none of them, leaving its turned-away ones at
`full` for good as before. Not told apart still: one a process on the code before 0017 emptied
between 0017's `migrate` and its restart (and clock skew between machines, seconds).
`resume` checks again, when the participant comes back, that the study is open and a newcomer
would get a trial. (A database that already ran `turn_away` may hold a participant it turned
away at "Start" for good, unmarked; it is marked here only if the answers no longer fill the
study, e.g. a participant was deleted since, when a newcomer would be let in too.) The work is
evalsite/studies/full_for_now_marks.py, on this migration's historical models, one UPDATE per
study; `manage.py mark_full_for_now` runs it again for those a process still on the earlier code
turned away after `migrate`. Reversed, nothing is undone: the mark is what the code after this
migration writes too, and the code before it ignores it."""

from __future__ import annotations

from django.db import migrations

from evalsite.studies import full_for_now_marks


def mark_turned_away_at_start(apps, schema_editor):
    full_for_now_marks.mark_turned_away_at_start(apps, schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0017_participant_taken_out_trials"),
    ]

    operations = [
        migrations.RunPython(mark_turned_away_at_start, migrations.RunPython.noop),
    ]
