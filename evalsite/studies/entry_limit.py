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
unit a provider hands out). An IPv6 client's /48 is counted too, at CSN_ENTRY_LIMIT_48_MULTIPLE
times the limit over all its /64s: a routed /48 (free from tunnel brokers) holds 65,536 /64s,
each with its own count, and would otherwise make 65,536 times the limit. The /48's count is
looser than the /64's because a /48 is also what a university or a company gets for all its
networks, whose labs would share it. IPv4 keeps the one count per address (a /24 is no one
holder's). It does not stop someone with many addresses or many /48s; what stops a determined
one is recruiting through a panel (Prolific checks its participants' ids), not this limit.

The count is read from the database, shared by every gunicorn worker and process (the Django
cache is per process here): each participant keeps a keyed hash of the study and the address it
entered from (`Participant.entry_address`: HMAC-SHA256 with a key derived from SECRET_KEY;
`entry_network` the same of an IPv6 address's /48), never the address itself, which is personal
data; the study is in the hash so that one person's participations in several studies cannot be
linked through it. It is in no export, and it is
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
from typing import NamedTuple

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from evalsite.login_throttle import client_ip
from evalsite.studies.models import Participant, Study

HASH_SALT = "evalsite.studies.entry_limit.address"


class EntryKey(NamedTuple):
    """The keyed hashes a new participant is counted under: its address's (an IPv6 address's
    /64), and an IPv6 address's /48 ("" for IPv4). NO_KEY: not counted."""

    address: str
    network: str


NO_KEY = EntryKey("", "")


def address_key(request: HttpRequest, study: Study) -> EntryKey:
    """The keyed hashes this request's client address is counted under in `study` (another study
    gets other hashes of the same address); NO_KEY when the limit is off (nothing is stored then)
    or the address is unknown (a server with no REMOTE_ADDR, such as a Unix socket with no proxy
    in front: clients that cannot be told apart are not lumped into one count that would refuse
    them all). An IPv6 client is counted by its /64 network, which one subscriber (or one
    attacker) holds whole, and by its /48; an IPv4-mapped address as the IPv4 one."""
    if not settings.CSN_ENTRY_LIMIT:
        return NO_KEY
    address = client_ip(request)
    if not address:
        return NO_KEY
    counted, network = _counted_as(address)
    return EntryKey(_hash(study, counted), _hash(study, network) if network else "")


def _hash(study: Study, counted: str) -> str:
    return salted_hmac(HASH_SALT, f"{study.pk}:{counted}", algorithm="sha256").hexdigest()


def _counted_as(address: str) -> tuple[str, str]:
    """What `address` is counted as, and the network counted too ("" for none): itself, an IPv6
    address's /64 and /48 networks, an IPv4-mapped IPv6 address's IPv4 address; a REMOTE_ADDR
    that is no address (a server's oddity) as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address, ""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped), ""
        net = lambda bits: str(ipaddress.IPv6Network(f"{ip}/{bits}", strict=False))  # noqa: E731
        return net(64), net(48)
    return str(ip), ""


def refuses_new(study: Study, key: EntryKey) -> bool:
    """Whether a new participant entering `study` from the address hashed as `key` would be
    one over the limit: CSN_ENTRY_LIMIT entered from its address (an IPv6 /64) within the last
    CSN_ENTRY_WINDOW_MINUTES, or CSN_ENTRY_LIMIT_48_MULTIPLE times that from its IPv6 /48
    (each counted up to its limit only, on the indexes participant_entry_limit and
    participant_entry_limit_48: a script's thousands of entries cost no more to count)."""
    limit = settings.CSN_ENTRY_LIMIT
    if not limit or not key.address:
        return False
    since = timezone.now() - timedelta(minutes=settings.CSN_ENTRY_WINDOW_MINUTES)
    recent = Participant.objects.filter(study=study, started_at__gte=since).order_by()
    if recent.filter(entry_address=key.address)[:limit].count() >= limit:  # unordered: the
        return True  # index alone serves it
    if not key.network:
        return False
    wider = limit * settings.CSN_ENTRY_LIMIT_48_MULTIPLE
    return recent.filter(entry_network=key.network)[:wider].count() >= wider


def record_entry(participant: Participant, key: EntryKey) -> None:
    """Keep the hashed address (and /48) on a participant just created (one UPDATE; none for
    NO_KEY), and clear it from the study's participants who entered before the window
    (`clear_expired`). flow.create does not take it: the entry's state machine knows nothing
    of HTTP."""
    if not key.address:
        return
    Participant.objects.filter(pk=participant.pk).update(
        entry_address=key.address, entry_network=key.network
    )
    clear_expired(participant.study_id)  # a new entry is rare next to answers


# Both hashes go together: `entry_network` is set only with `entry_address` (record_entry), so
# the rows holding either are found by `entry_address > ''`.
CLEARED = {"entry_address": "", "entry_network": ""}


def clear_expired(study_id: int) -> int:
    """Clear the hashed address of `study_id`'s participants who entered before the window: they
    are counted for nothing any more, and even a keyed hash of an address is personal data, kept
    no longer than it serves. The number cleared; 0 once done (a second run clears nothing)."""
    since = timezone.now() - timedelta(minutes=settings.CSN_ENTRY_WINDOW_MINUTES)
    # `> ""`, not `exclude("")`: a range on the second column of participant_entry_limit
    # (study, entry_address, started_at) finds the few rows still holding a hash in the index,
    # while NOT (entry_address = '') is a filter over every one of the study's rows.
    held = Participant.objects.filter(study_id=study_id, entry_address__gt="")
    return held.filter(started_at__lt=since).update(**CLEARED)


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
    return study.participants.filter(entry_address__gt="").update(**CLEARED)
