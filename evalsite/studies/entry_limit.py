"""The limit on new participants one client address may start in a study (settings
CSN_ENTRY_LIMIT per CSN_ENTRY_WINDOW_MINUTES; docs/site.md, "New participants per address").

Continuing from the study link's welcome page with an id the study has not seen creates a
participant (opening the link alone creates none), and one that reaches the trials holds trial
reservations until they lapse; reserved trials count as filled when the design gives the
least-filled ones to the next participant, so a script posting the welcome page with thousands of
random ids would starve real participants of the trials that need answers. The
study link's POST (`participant.entry`) asks `refuses_new` before it creates a participant, and
`record_entry` keeps the hashed address on the one it created. Only new participants count and
are refused: a participant coming back (its id, its browser) and a researcher's preview of a
draft never are.

What it bounds: a script from one address, or from one IPv6 /64 (one subscriber's network, the
unit a provider hands out; a coarser one would lump a whole university's labs together). It
does not stop someone holding a routed /48 (free from tunnel brokers: 65,536 /64s, each with
its own count) or many addresses; what stops a determined one is recruiting through a panel
(Prolific checks its participants' ids), not this limit.

The count is read from the database, shared by every gunicorn worker and process (the Django
cache is per process here): each participant keeps a keyed hash of the study and the address it
entered from (`Participant.entry_address`: HMAC-SHA256 with a key derived from SECRET_KEY),
never the address itself, which is personal data; the study is in the hash so that one person's
participations in several studies cannot be linked through it. It is in no export, and it is
cleared once it is counted for nothing: past the window (at the study's next new entry, or by
`manage.py clear_entry_addresses` from cron), and all of a study's as it is paused or closed
(`clear_study`, from experimenter.study_status), since neither lets a new participant in. The
check, the creation and the record are separate statements with no lock between them (an entry
takes no lock on the study): entries from one address at the same moment may each find the count
under the limit, so it can be overshot by as many entries as the server runs at once (its
workers times threads). That bounds a script to about the limit plus the server's concurrency
per window, which is what matters.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from evalsite.login_throttle import client_ip
from evalsite.studies.models import Participant, Study

HASH_SALT = "evalsite.studies.entry_limit.address"


def address_key(request: HttpRequest, study: Study) -> str:
    """The keyed hash this request's client address is counted under in `study` (another study
    gets another hash of the same address); "" when the limit is off (nothing is stored then) or
    the address is unknown (a server with no REMOTE_ADDR, such as a Unix socket with no proxy in
    front: clients that cannot be told apart are not lumped into one count that would refuse
    them all). An IPv6 client is counted by its /64 network, which one subscriber (or one
    attacker) holds whole; an IPv4-mapped address as the IPv4 one."""
    if not settings.CSN_ENTRY_LIMIT:
        return ""
    address = client_ip(request)
    if not address:
        return ""
    message = f"{study.pk}:{_counted_as(address)}"
    return salted_hmac(HASH_SALT, message, algorithm="sha256").hexdigest()


def _counted_as(address: str) -> str:
    """What `address` is counted as: itself, an IPv6 address's /64 network, an IPv4-mapped
    IPv6 address's IPv4 address; a REMOTE_ADDR that is no address (a server's oddity) as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def refuses_new(study: Study, key: str) -> bool:
    """Whether a new participant entering `study` from the address hashed as `key` would be
    one over the limit: CSN_ENTRY_LIMIT entered from it within the last
    CSN_ENTRY_WINDOW_MINUTES (counted up to the limit only, on the index
    participant_entry_limit: a script's thousands of entries cost no more to count)."""
    limit = settings.CSN_ENTRY_LIMIT
    if not limit or not key:
        return False
    since = timezone.now() - timedelta(minutes=settings.CSN_ENTRY_WINDOW_MINUTES)
    recent = Participant.objects.filter(study=study, entry_address=key, started_at__gte=since)
    return recent.order_by()[:limit].count() >= limit  # unordered: the index alone serves it


def record_entry(participant: Participant, key: str) -> None:
    """Keep the hashed address on a participant just created (one UPDATE; none when `key` is
    empty), and clear it from the study's participants who entered before the window
    (`clear_expired`). flow.create does not take it: the entry's state machine knows nothing
    of HTTP."""
    if not key:
        return
    Participant.objects.filter(pk=participant.pk).update(entry_address=key)
    clear_expired(participant.study_id)  # a new entry is rare next to answers


def clear_expired(study_id: int) -> int:
    """Clear the hashed address of `study_id`'s participants who entered before the window: they
    are counted for nothing any more, and even a keyed hash of an address is personal data, kept
    no longer than it serves. The number cleared; 0 once done (a second run clears nothing)."""
    since = timezone.now() - timedelta(minutes=settings.CSN_ENTRY_WINDOW_MINUTES)
    # `> ""`, not `exclude("")`: a range on the second column of participant_entry_limit
    # (study, entry_address, started_at) finds the few rows still holding a hash in the index,
    # while NOT (entry_address = '') is a filter over every one of the study's rows.
    held = Participant.objects.filter(study_id=study_id, entry_address__gt="")
    return held.filter(started_at__lt=since).update(entry_address="")


def clear_expired_everywhere() -> int:
    """`clear_expired` for every study (manage.py clear_entry_addresses): the hashes of a study
    that gets no new entry are otherwise never cleared. One indexed UPDATE per study."""
    return sum(
        clear_expired(pk) for pk in Study.objects.order_by("pk").values_list("pk", flat=True)
    )


def clear_study(study: Study) -> int:
    """Clear every hashed address of `study`'s participants, as it is paused or closed: neither
    lets a new participant in, so none is counted for anything (a study reopened after a pause
    counts afresh). The number cleared."""
    return study.participants.filter(entry_address__gt="").update(entry_address="")
