"""retrieval_bench --import-batches: the worker's snapshot writes over an import in batches,
rebuilt against grown, over a catalogue made for the run. Only what it prints (never a time),
that both imports wrote the same snapshots, and that it leaves nothing behind are checked."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from evalsite.retrieval.models import Embedding, IndexSnapshot
from evalsite.stimuli.models import Catalogue, Clip

pytestmark = pytest.mark.django_db


def _bench(*args: str) -> str:
    out = StringIO()
    call_command("retrieval_bench", "--import-batches", *args, stdout=out)
    return out.getvalue()


def test_it_prints_both_imports_and_their_ratio_and_leaves_nothing():
    text = _bench("--n", "60", "--batch", "4", "--exact-max", "20")
    assert "batches of 4, REFRESH_SHARE 0.05" in text
    assert "(EXACT_MAX lowered to 20 for this run (it is 20,000))" in text
    runs = re.findall(r"  (rebuild every graph \(before\)|grow the graphs)\s+[\d.]+ CPU-s\s+"
                      r"[\d.]+ s wall, (\d+) writes \((\d+) with graphs\); graphs built "
                      r"(\d+), grown (\d+)", text)  # fmt: skip
    assert [run[0] for run in runs] == ["rebuild every graph (before)", "grow the graphs"], text
    (_, writes, with_graphs, built, grown), after = runs[0], runs[1]
    assert after[1:3] == (writes, with_graphs)  # the same writes: only how graphs are made differs
    assert int(with_graphs) >= 2  # so that the second import has graphs to grow
    instruments = int(re.search(r"(\d+) instruments", text)[1])
    assert (int(built), int(grown)) == (instruments * int(with_graphs), 0)
    # every instrument's graphs built at the first write with graphs, and grown at each later one
    assert (int(after[3]), int(after[4])) == (instruments, instruments * (int(with_graphs) - 1))
    assert re.search(r"rebuild / grow: [\d.]+x \(wall [\d.]+x; same run\)", text)
    assert not Catalogue.objects.exists() and not Clip.objects.exists()
    assert not Embedding.objects.exists() and not IndexSnapshot.objects.exists()


@pytest.mark.parametrize("args", [("--n", "20", "--exact-max", "20"), ("--batch", "0")])
def test_it_refuses_a_run_that_would_save_no_graph_or_has_empty_batches(args):
    with pytest.raises(CommandError, match="expected --batch >= 1 and --n above --exact-max"):
        _bench(*args)
    assert not Catalogue.objects.exists()
