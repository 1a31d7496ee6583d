"""Celery application, wired the conventional way: settings under the CELERY_ namespace and
tasks autodiscovered from each installed app's tasks.py.

Queues (docs/workers.md):
  gpu  model work: embedding clips, model choices, designing a study from the model
  cpu  everything else: audio validation/transcoding, report recomputation
A worker on a CUDA machine consumes "gpu" with one process per GPU
(`celery -A evalsite worker -Q gpu --concurrency 1`, one worker per GPU with CUDA_VISIBLE_DEVICES);
a CPU-only deployment runs `celery -A evalsite worker -Q gpu,cpu` so the same tasks run on CPU.

CUDA: the parent process never loads the model or touches torch.cuda. Each prefork child loads
the model lazily on its first model task (evalsite.retrieval.embedder.get_embedder) and keeps it
for the child's life; `worker_process_init` clears any inherited cache.
"""

import os

from celery import Celery
from celery.signals import worker_process_init
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")

app = Celery("evalsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A worker started without -Q consumes both queues (the demo's single worker).
app.conf.task_queues = tuple(Queue(q, Exchange(q), routing_key=q) for q in ("cpu", "gpu"))
app.conf.task_routes = {
    "stimuli.prepare_clips": {"queue": "cpu"},
    "stimuli.embed_clips": {"queue": "gpu"},
    "stimuli.ingest_catalogue": {"queue": "cpu"},
    "studies.model_choices": {"queue": "gpu"},
    "studies.design_from_model": {"queue": "gpu"},
    "reports.*": {"queue": "cpu"},  # debounced statistics recompute (evalsite/reports/tasks.py)
}


@app.on_after_finalize.connect
def make_broker_folders(**_kwargs) -> None:
    """The filesystem transport (embedded default) needs its folders before the first message;
    made when the app is finalized, so the web process that publishes and the worker that
    consumes both have them."""
    options = app.conf.broker_transport_options or {}
    keys = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
    for folder in {options[k] for k in keys if options.get(k) is not None}:
        os.makedirs(folder, exist_ok=True)


@worker_process_init.connect
def _fresh_child(**_kwargs) -> None:
    """A forked child starts with no model: it loads its own, on its own device, when needed."""
    from evalsite.retrieval import embedder, service

    embedder.reset()
    service.forget_indexes()
    # Connections inherited from the parent must not be shared across processes, nor closed the
    # usual way: PostgreSQL's close sends Terminate over the socket the child shares with the
    # parent, and the server ends the PARENT's session (its next query, e.g. a task's on_failure
    # after a hard time limit, which Celery runs in the parent, then fails). This handler runs
    # before Celery's Django fixup, which closes the inherited descriptors first for that very
    # reason (celery/fixups/django.py, on_worker_process_init): it is connected at import, the
    # fixup's handler only at worker_init. tests/integration/test_worker_start.py.
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        _detach_socket(conn.connection)
        conn.close()  # no traffic reaches the server; the child opens its own when it needs one


def _detach_socket(raw) -> None:
    """Point this process's descriptor of a driver connection's socket at /dev/null (dup2: the
    number stays taken, so nothing opened later can receive the close's bytes): a close then
    sends nothing to the server, and the parent's socket is untouched. SQLite (no socket) and a
    connection not open are left alone."""
    try:
        fd = raw.fileno()
    except Exception:  # None, no fileno (sqlite3), or closed
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)
