"""The load benchmark's study, shared by its three modes (the saturated run, loadtest.py; the cost
mode, loadtest_cost.py; the in-process mode, loadtest_inprocess.py): made with file-less clips and
main trials only (`make_study`), its tables analyzed and vacuumed (`maintain_tables`), the answers
the clients saw acknowledged compared with those stored (`summarise`), and deleted afterwards
(`clean_up`).
"""

from __future__ import annotations

import secrets
import time

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.loadtest_client import ASSIGN, ENTERED_IN_PHASE, LoadTestError
from evalsite.studies.loadtest_server import reconnect_if_unusable
from evalsite.studies.models import Answer, Assignment, Participant, Study, Trial


def check_database() -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise LoadTestError(
            f"DATABASE_URL: the load benchmark runs on PostgreSQL; got engine {engine!r}. "
            "Set DATABASE_URL=postgresql://user@host:5432/dbname"
        )
    # A database made before the code's latest migration fails every request of the run on a
    # missing column or table, and setup could say only that its entries failed.
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan)
        raise LoadTestError(
            f"DATABASE_URL: database {connection.settings_dict['NAME']!r} has unapplied "
            f"migrations ({names}); run `manage.py migrate` with the same DATABASE_URL first"
        )


def make_study(n_trials: int) -> Study:
    """An open study with `n_trials` main trials on drums and bass, nothing else in the flow."""
    user, _ = get_user_model().objects.get_or_create(username="loadtest")
    tag = secrets.token_hex(4)
    with transaction.atomic():
        catalogue = Catalogue.objects.create(owner=user, name=f"loadtest {tag}")
        clips = Clip.objects.bulk_create(
            Clip(catalogue=catalogue, name=f"load{i:03d}.wav", status=Clip.Status.READY,
                 duration_s=5.0, sample_rate=22050, loudness_lufs=-23.0, sha256="0" * 64)
            for i in range(max(n_trials, 3) + 2)
        )  # fmt: skip
        study = Study.objects.create(
            owner=user, name=f"loadtest {tag}", catalogue=catalogue, status=Study.Status.OPEN,
            instruments=["drums", "bass"], consent_text="Load test.",
            settings={"screening": False, "huggins": False, "practice_trials": 0,
                      "catch": {"identical": 0, "attention": 0, "repeat": 0},
                      "target_answers_per_trial": 1_000_000, "refuse_phones": False,
                      "languages": ["en"], "min_listen_share": 0},
        )  # fmt: skip
        # min_listen_share 0: the clients answer as soon as a page is shown instead of playing
        # its clips; every answer still runs the listening check (`answerable_ms`), at 0 ms.
        Trial.objects.bulk_create(
            Trial(study=study, instrument=("drums", "bass")[i % 2], reference=clips[i],
                  candidate_a=clips[i + 1], candidate_b=clips[i + 2],
                  model_choice="ab"[i % 2], model_margin=0.1)
            for i in range(n_trials)
        )  # fmt: skip
    return study


def _latency_figures(latencies_s: list[float], seconds: float, errors: int) -> dict:
    lat = np.asarray(latencies_s) * 1000  # ms
    return {
        "seconds": seconds,
        "requests": int(lat.size),
        "rps": lat.size / seconds if seconds else float("nan"),
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "errors": errors,
    }


def summarise(rec, study, phases, killed, errors, stuck) -> dict:
    figures = {}
    for kind, windows in phases.items():  # requests that completed inside the phase's windows
        lat = [s for t, s in rec.latencies[kind] if any(a <= t <= b for a, b in windows)]
        seconds = sum(b - a for a, b in windows)
        figures[kind] = _latency_figures(lat, seconds, rec.errors.get(kind, 0))
    # entering (setup, untimed): the POST that assigns a participant's trial list, all of them
    assign = [s for _, s in rec.latencies[ASSIGN]]
    figures[ASSIGN] = _latency_figures(assign, float("nan"), rec.errors.get(ASSIGN, 0))
    stored = list(
        Answer.objects.filter(participant__study=study).values_list(
            "participant__token", "trial_index", "trial_id"
        )
    )
    stored_keys = {(token, index) for token, index, _ in stored}
    acked = set(rec.acked)
    return {
        "figures": figures,
        "flow_errors": rec.errors.get("flow", 0),
        "entered_in_phase": rec.events.get(ENTERED_IN_PHASE, 0),
        "error_reasons": {k: n for k, n in sorted(rec.events.items()) if k != ENTERED_IN_PHASE},
        "acknowledged": len(rec.acked),
        "acknowledged_unique": len(acked),
        "stored": len(stored),
        "stored_unique": len({(token, trial) for token, _, trial in stored}),
        "acked_not_stored": len(acked - stored_keys),
        "stored_not_acked": len(stored_keys - acked),
        "writes_acknowledged": len(set(rec.writes)),
        "killed_workers": killed,
        "client_errors": errors[:5],
        "client_failures": len(errors),
        "stuck_threads": stuck,
    }


# What a run writes and deletes. PostgreSQL's autovacuum would vacuum and analyze them in time; a
# server with autovacuum off (this project's reference machine) keeps every deleted row until a
# VACUUM, and each later run then scans more dead rows and plans with stale statistics (runs
# here grew slower run after run, the slot table to 900,000 dead rows). So the benchmark
# analyzes them after setup and vacuums them after its study is deleted, whatever the server does.
TOUCHED_MODELS = (Answer, Assignment, Participant, Trial, Clip, Catalogue, Study)


def maintain_tables(command: str) -> None:
    """Run VACUUM (ANALYZE) or ANALYZE on the tables a run writes (outside a transaction)."""
    qn = connection.ops.quote_name
    tables = ", ".join(qn(model._meta.db_table) for model in TOUCHED_MODELS)
    with connection.cursor() as cursor:
        cursor.execute(f"{command} {tables}")


def enter_in_sequence(people, out, served_by: str) -> None:
    """Setup of the sequential modes (cost, in-process): every participant enters by the study
    link and answers its first trial, then the tables are analyzed with answers stored, as in
    the saturated run's setup."""
    t0 = time.monotonic()
    for p in people:
        p.enter()
    for p in people:
        p.answer_first()
    maintain_tables("ANALYZE")
    out(f"setup: {len(people)} participants at their first trial, answered, in "
        f"{time.monotonic() - t0:.1f} s; {served_by}")  # fmt: skip


def clean_up(study: Study, out) -> None:
    """Delete the run's study and vacuum what it wrote; a failure is said, not raised (the
    run's figures are kept)."""
    try:
        reconnect_if_unusable()  # after a signal in a query (loadtest_server.py)
        _delete(study)
        maintain_tables("VACUUM (ANALYZE)")
    except DatabaseError as exc:
        out(f"could not delete study {study.pk} ({exc}); delete it in the admin")


def _delete(study: Study) -> None:
    catalogue = study.catalogue
    study.delete()  # trials, participants, slots, answers cascade
    if catalogue is not None:
        catalogue.delete()
