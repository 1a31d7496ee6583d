"""retrieval_bench --cold: the first search of a process, over a catalogue made for the run. Only
what it prints (never a time) and that it leaves nothing behind are checked."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command

from evalsite.retrieval.models import Embedding, IndexSnapshot
from evalsite.stimuli.models import Catalogue, Clip

pytestmark = pytest.mark.django_db
FIGURE = r"\s+[\d.]+ ms \(all instruments\)"


def _bench(*args: str) -> str:
    out = StringIO()
    call_command("retrieval_bench", "--cold", "--n", "30", *args, stdout=out)
    return out.getvalue()


def _assert_nothing_left() -> None:
    assert not Catalogue.objects.exists() and not Clip.objects.exists()
    assert not Embedding.objects.exists() and not IndexSnapshot.objects.exists()


def test_it_times_the_hnsw_case_with_exact_max_lowered_and_says_so():
    text = _bench("--exact-max", "10")
    assert "indexes: HNSW (EXACT_MAX lowered to 10 for this run (it is 20,000))" in text
    for name in ("cold, rows", "cold, snapshot without graphs", "snapshot write (worker)",
                 "cold, snapshot"):  # fmt: skip
        assert re.search(re.escape(name) + FIGURE, text), name
    # each instrument's graph built from the rows and from the old file, loaded from the new one
    assert (
        "HNSW graphs the last first search built: from the rows 5, "
        "from the snapshot without graphs 5, from the snapshot 0" in text
    ), text
    assert re.search(r"snapshot without graphs / with graphs: [\d.]+x \(same run\)", text)
    _assert_nothing_left()


def test_it_times_exact_search_under_exact_max():
    text = _bench()
    assert "indexes: exact search (EXACT_MAX 20,000)" in text
    assert "without graphs" not in text
    assert "HNSW graphs the last first search built: from the rows 0, from the snapshot 0" in text
    assert re.search(r"rows / snapshot: [\d.]+x \(same run\)", text)
    _assert_nothing_left()
