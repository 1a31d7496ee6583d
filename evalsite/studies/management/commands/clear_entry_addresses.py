"""manage.py clear_entry_addresses: clear the hashed client addresses (Participant.entry_address,
and entry_network, an IPv6 address's /48) older than CSN_ENTRY_WINDOW_MINUTES in every study;
see studies/entry_limit.py. Run it from cron (docs/site.md, "New participants per address");
running it again clears nothing more."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from evalsite.studies.entry_limit import clear_expired_everywhere


class Command(BaseCommand):
    help = (
        "Clear the hashed client addresses of participants who entered every study more than "
        "CSN_ENTRY_WINDOW_MINUTES ago (counted for nothing any more); prints how many."
    )

    def handle(self, *args, **options):
        cleared = clear_expired_everywhere()
        minutes = settings.CSN_ENTRY_WINDOW_MINUTES
        self.stdout.write(
            f"Cleared the address hashes of {cleared} participants who entered over "
            f"{minutes} minutes ago."
        )
