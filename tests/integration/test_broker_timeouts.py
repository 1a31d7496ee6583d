"""The broker's socket timeouts (settings: CELERY_BROKER_SOCKET_TIMEOUT, _CONNECT_TIMEOUT) bound
a publish to a Redis that never answers (tests/evalsite/retrieval/test_queue_broker_stalled.py);
with a Redis that answers, nothing changes: a worker idling for several times the timeout
(its BRPOP returns every second, within it) still takes and runs what is queued."""

from __future__ import annotations

import time

import pytest

from evalsite.celery import app
from evalsite.retrieval.models import Embedding
from evalsite.stimuli.tasks import embed_clips
from tests.conftest import STALL_TIMEOUTS
from tests.evalsite.retrieval.helpers import make_catalogue
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.mark.slow  # a worker idling past its broker timeouts
def test_a_worker_with_short_broker_timeouts_idles_past_them_and_still_embeds(
    broker, worker_factory, redis_publish_settings, django_user_model
):
    owner = django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")
    ids = sorted(make_catalogue(owner, n_pieces=2).clips.values_list("id", flat=True))
    # This process publishes with the settings' options (1 s timeouts) to the real Redis.
    app.conf.broker_transport_options = redis_publish_settings["options"]
    assert app.conf.broker_transport_options["socket_timeout"] == 1.0
    worker = worker_factory(**STALL_TIMEOUTS).start()
    wait_for(lambda: "ready." in worker.tail(), 60, worker, "the worker to start")
    time.sleep(4)  # idle: four times the socket timeout
    embed_clips.delay(ids)
    wait_for(
        lambda: Embedding.objects.filter(clip_id__in=ids).count() == len(ids), 120, worker,
        "the clips' embeddings",
    )  # fmt: skip
    assert "Timeout reading" not in worker.tail()
