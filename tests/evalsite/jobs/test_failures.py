"""What researchers are shown of an error names files by their storage name or last part,
never by an absolute path on the server (evalsite/jobs/failures.py)."""

from __future__ import annotations

import pytest

from evalsite.jobs.failures import describe, without_server_paths


@pytest.fixture(autouse=True)
def _roots(settings):
    settings.MEDIA_ROOT = "/srv/csn media"
    settings.CSN_HOME = "/srv/csn home"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("cannot read /srv/csn media/clips/my take.wav", "cannot read clips/my take.wav"),
        ("[Errno 20] Not a directory: '/srv/csn home/broker/queue'",
         "[Errno 20] Not a directory: 'broker/queue'"),
        # Unquoted and outside the known roots, a path is taken to end at its first space:
        # where it really ends cannot be told from the text (below: the words after it).
        ("cannot read /mnt/shared disk/tmp/x.wav", "cannot read shared disk/tmp/x.wav"),
        ("[Errno 2] No such file or directory: '/mnt/shared disk/broker queue'",
         "[Errno 2] No such file or directory: 'broker queue'"),
        ('no file "/mnt/shared disk/data" here', 'no file "data" here'),
        ("cannot read /data/a.wav or /data/b.wav", "cannot read a.wav or b.wav"),
        ("/var/lib/x is gone", "x is gone"),
        ("redis://host:6379/0 refused", "redis://host:6379/0 refused"),
        ("see http://example.org/a/b.html", "see http://example.org/a/b.html"),
        ("drums/bass split 2/3", "drums/bass split 2/3"),
    ],
)  # fmt: skip
def test_it_removes_absolute_paths_with_or_without_spaces(text, shown):
    assert without_server_paths(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("cannot copy /tmp/upload/x.wav to /srv/csn media/clips/y.wav",
         "cannot copy x.wav to clips/y.wav"),
        ("cannot read /data/a.wav for clip drums/kick.wav",
         "cannot read a.wav for clip drums/kick.wav"),
        ("bad header in /mnt/a/x.wav: see docs/workers.md",
         "bad header in x.wav: see docs/workers.md"),
        ("the job was queued with checkpoint 3fa2c1d0 (/opt/models/run7/final.pt); no file holds "
         "it now and CSN_CHECKPOINT=/opt/models/run8/final.pt is checkpoint 9b1e",
         "the job was queued with checkpoint 3fa2c1d0 (final.pt); no file holds "
         "it now and CSN_CHECKPOINT=final.pt is checkpoint 9b1e"),
    ],
)  # fmt: skip
def test_it_keeps_the_words_between_two_paths(text, shown):
    assert without_server_paths(text) == shown


def test_it_leaves_a_root_inside_a_url_alone(settings):
    settings.CSN_HOME = "/data"
    text = "fetching https://eval.example.org/data/clips.json failed"
    assert without_server_paths(text) == text


def test_it_describes_an_error_without_its_path():
    exc = FileNotFoundError(2, "No such file or directory", "/mnt/shared disk/tmp/x.wav")
    assert describe(exc) == "FileNotFoundError: [Errno 2] No such file or directory: 'x.wav'"
