"""manage.py mark_full_for_now: mark, as migration studies 0018 does, the participants a process
still on the code before `flow.turn_away` turned away at "Start" while the trials left were only
reserved, so that they are taken back once trials are free. 0018 runs once, at `migrate`; this
catches those turned away between `migrate` and the restart of every process. Running it again
marks no one new, so an upgrade runs it every time (README.md, "Upgrading and rolling back")."""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from evalsite.studies.full_for_now_marks import mark_turned_away_at_start


class Command(BaseCommand):
    help = (
        "Mark the participants the code before turn_away sent to full at Start while trials "
        "were only reserved (as migration studies 0018 does), so that they are taken back."
    )

    def handle(self, *args, **options):
        with transaction.atomic():
            n = mark_turned_away_at_start(apps, connection)
        who = "1 participant" if n == 1 else f"{n} participants"
        self.stdout.write(f"Marked {who} as full for now.")
