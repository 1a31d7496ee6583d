"""A tiny run of the load benchmark: real gunicorn on the test PostgreSQL, a few participants."""

from __future__ import annotations

import pytest

from evalsite.studies.loadtest import LoadConfig, format_report, passed, run
from evalsite.studies.models import Study

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("kill_worker", [False, True])
def test_it_stores_every_acknowledged_answer_once(kill_worker):
    cfg = LoadConfig(participants=4, duration=4, reference_duration=1, trials=8, workers=2,
                     threads=2, kill_worker=kill_worker)  # fmt: skip
    result = run(cfg, out=lambda line: None)
    print(format_report(cfg, result))
    assert result["acknowledged"] > 0
    assert result["figures"]["healthz"]["requests"] > 0
    assert passed(result), format_report(cfg, result)
    if kill_worker:
        assert len(result["killed_workers"]) == 1
    assert not Study.objects.filter(name__startswith="loadtest").exists()  # cleaned up
