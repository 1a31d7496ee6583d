"""The load benchmark's references beyond /healthz: a bare durable write, and (the cost mode
only) the same POST without the write. Served only by the gunicorn that `manage.py loadtest`
starts (evalsite.studies.loadtest_settings mounts them; the site's own URLconf never does),
with the list of a participant's slot ids its clients read as they enter (`slot_ids`).

An answer POST must at least: go through the middleware (CSRF included), parse a form body and
the client log, store one row in one committed statement, and redirect. This view does exactly
that, into a table with the answers' columns, indexes and checks (no foreign keys), and nothing
else: no participant, no step, no current slot. Its throughput next to /healthz shows what any
durable answer can reach on the machine; the answer's next to it, what the answer's own checks
and bookkeeping cost. `bare_post` does all of it but the write (middleware, form, log, redirect):
the step from /healthz to it is what receiving an answer costs, the step from it to the bare
write what storing one durably costs.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.db import connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.utils import timezone
from django.views.decorators.http import require_POST

from evalsite.studies.models import Answer, Assignment
from evalsite.studies.participant_forms import parse_answer
from evalsite.studies.participant_render import no_store
from evalsite.studies.participant_sql import column, hot_cursor
from evalsite.studies.participant_writes import ANSWER_COLUMNS


@functools.cache
def _insert_sql(table: str) -> str:
    qn = connection.ops.quote_name
    columns = [qn(column(Answer, name)) for name in ANSWER_COLUMNS]
    values = ", ".join(["%s"] * len(columns))
    return (
        f"INSERT INTO {qn(table)} ({', '.join(columns)}) VALUES ({values}) ON CONFLICT DO NOTHING"
    )


@no_store  # the headers an answer's redirect carries
@require_POST
def bare_post(request: HttpRequest) -> HttpResponse:
    """Everything the bare write does but the write: the answer parsed, then a redirect."""
    if parse_answer(request.POST) is None:
        return HttpResponseBadRequest("expected index, choice and log")
    return HttpResponseRedirect(request.path)


@no_store  # the headers an answer's redirect carries
@require_POST
def bare_write(request: HttpRequest) -> HttpResponse:
    """Store one answer-shaped row for writer `writer` and number `index` (a pair used once;
    a retried request stores nothing more, as a retried answer does not)."""
    writer = request.POST.get("writer", "")
    answer = parse_answer(request.POST)
    if answer is None or not (writer.isascii() and writer.isdigit()):
        return HttpResponseBadRequest("expected writer, index, choice and log")
    log, now = answer.log, timezone.now()
    plays, heard = log.plays, log.heard
    client = Answer._meta.get_field("client").get_db_prep_save(log.raw, connection)
    params = [int(writer), answer.index, answer.index, "a", answer.choice, "a", log.response_ms,
              plays["r"], plays["A"], plays["B"], heard["r"], heard["A"], heard["B"],
              log.blur_events, log.audio_sample_rate, client, now, now]  # fmt: skip
    # loadtest_settings, the only settings this view is served under, defines the table; the
    # django-stubs plugin reads evalsite.settings, which does not.
    table = settings.CSN_LOADTEST_WRITE_TABLE  # type: ignore[misc]
    with hot_cursor() as cursor:
        cursor.execute(_insert_sql(table), params)
    return HttpResponseRedirect(request.path)


@no_store
def slot_ids(request: HttpRequest, token: str) -> HttpResponse:
    """The ids of a participant's slots in index order, one per line: what the benchmark's
    answers-alone phases send with each answer (the trial form's `slot`) without loading the
    trial page that would show it. Reveals no trial; served by the benchmark's server only."""
    ids = Assignment.objects.filter(participant__token=token).order_by("index")
    lines = [str(pk) for pk in ids.values_list("pk", flat=True)]
    if not lines:
        raise Http404
    return HttpResponse("\n".join(lines), content_type="text/plain")
