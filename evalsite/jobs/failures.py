"""How the workers' tasks meet errors: which are retried, and how a failure is told.

Transient errors (the file system, the network, a database connection lost or refused) are
retried with exponential backoff; every task is idempotent, so running it again is safe. Any
other error fails the task at once, and its on_failure handler records it on the task's objects
(progress.JobTask, stimuli.tasks.ClipTask). What those handlers store is shown to researchers,
so it names files by their storage name, never by their absolute path on a server.
"""

from __future__ import annotations

import re

from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

# OperationalError/InterfaceError: the database restarted, a connection was terminated, a lock
# wait timed out; OSError/ConnectionError: a file system or network hiccup.
TRANSIENT = (OSError, ConnectionError, OperationalError, InterfaceError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 5,  # 5 s, doubling, jittered, at most 300 s: 5 retries span ~10 min
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
    "acks_late": True,
}

# Absolute paths of two or more parts, never part of a URL (redis://host:6379/0): the start is a
# "/" not preceded by a word, dot, colon, slash, tilde or hyphen. A path holding spaces ("/mnt/
# shared disk/x.wav") is recognised whole only under MEDIA_ROOT or CSN_HOME or inside quotes (as
# an OSError quotes it); any other path is taken to end at its first space, since where it ends
# cannot be told from the text: a pattern that let it run on to a later "x/y.ext" swallowed the
# words between ("cannot copy /tmp/x.wav to /srv/media/clips/y.wav" read "cannot copy y.wav").
_START = r"(?<![\w.:/~-])"
_QUOTED_PATH = re.compile(r"""(['"])/(?:[^'"\n/]+/)+([^'"\n/]+)\1""")
_ABSOLUTE_PATH = re.compile(_START + r"/(?:[^\s/'\"]+/)+([^\s/'\"]+)")


class RetryingTask(Task):
    """Before a retry, drop database connections an error left unusable (a terminated backend):
    the next try opens a new one instead of failing on the dead one again."""

    def on_retry(self, exc, task_id, args, kwargs, einfo) -> None:
        # Eager (tests): the caller's connection and transaction are the test's own.
        if not self.request.is_eager:
            close_old_connections()


def without_server_paths(text: str) -> str:
    """text with paths under MEDIA_ROOT or CSN_HOME shortened to their name there (clips/x.wav,
    broker/queue) and any other absolute path to its last part (with spaces only when quoted, see
    above)."""
    for root in (settings.MEDIA_ROOT, settings.CSN_HOME):
        prefix = str(root).rstrip("/") + "/"
        if prefix != "/":  # as a path, not inside a URL (https://host/data/x with CSN_HOME=/data)
            text = re.sub(_START + re.escape(prefix), "", text)
    text = _QUOTED_PATH.sub(r"\1\2\1", text)
    return _ABSOLUTE_PATH.sub(r"\1", text)


def describe(exc: BaseException) -> str:
    """'<ExceptionType>: <message>', without server paths."""
    return without_server_paths(f"{type(exc).__name__}: {exc}")
