"""The suite's own cleanup after a transactional test (tests/conftest.py, _flush_by_delete): the
flush Django runs then deletes every row instead of truncating, and must still leave every table
of every app empty, rows that reference each other included."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from tests.evalsite.studies.conftest import enter, make_catalogue, make_study
from tests.evalsite.studies.participant_steps import answer_current, post, to_step


@pytest.mark.django_db(transaction=True)
def test_the_flush_after_a_transactional_test_empties_every_table(
    django_user_model, settings, tmp_path, client
):
    if connection.vendor != "postgresql":
        pytest.skip("the DELETE flush is PostgreSQL's (DATABASE_URL=postgresql://...)")
    settings.MEDIA_ROOT = str(tmp_path / "media")
    owner = django_user_model.objects.create_user("erin", "erin@example.org", "listen-42")
    study = make_study(owner, make_catalogue(owner), practice_trials=0, screening=False,
                       min_listen_share=0)  # fmt: skip
    p = enter(client, study, pid="flushed")  # a session, a participant, slots and an answer:
    to_step(client, p, "instructions")  # rows that point at rows of other tables (and at
    post(client, p, "instructions")  # the user, the catalogue, the clips, the trials)
    p.refresh_from_db()
    answer_current(client, p)
    models = [m for m in apps.get_models(include_auto_created=True) if m._meta.managed]
    assert sum(m._default_manager.exists() for m in models) >= 8

    record = _Recorder()
    with connection.execute_wrapper(record):
        # As TransactionTestCase._fixture_teardown calls it (pytest-django's transactional tests)
        call_command("flush", verbosity=0, interactive=False, reset_sequences=False,
                     allow_cascade=False, inhibit_post_migrate=False)  # fmt: skip
    assert any(sql.startswith("DELETE FROM") for sql in record.sql)
    assert not any(sql.startswith("TRUNCATE") for sql in record.sql)
    # Emptied, then made again by the flush's post_migrate (as with TRUNCATE): content types
    # and permissions. Every other table is empty.
    remade = {"contenttypes.contenttype", "auth.permission"}
    left = [m._meta.label_lower for m in models if m._default_manager.exists()]
    assert sorted(set(left) - remade) == []


class _Recorder:
    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(sql)
        return execute(sql, params, many, context)
