"""The worker's snapshot writes over an import in batches (`manage.py retrieval_bench
--import-batches`): every graph built from scratch at each write (before) against the old graphs
grown (after), in the same run.

A catalogue of N synthetic clips is made as the API benchmark makes it (api_bench.make_fixture),
then imported again batch by batch: every clip is set pending, and then, in key order, each batch
of `batch` clips is set ready and snapshot.refresh runs as the embedding task runs it after the
batch (the worker's rule for when to write is unchanged: REFRESH_SHARE). The import runs twice
from no snapshot, first with refresh(grow=False), then with the default; the process CPU time
(FAISS's build threads included) and the wall time of the refreshes are summed for each. The last
snapshot's graphs of each run are checked to pass the web process's checks (search.load_hnsw).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from evalsite.retrieval import api_bench, search, snapshot, snapshot_graphs
from evalsite.retrieval.models import Embedding, IndexSnapshot
from evalsite.retrieval.search import EXACT_MAX
from evalsite.stimuli.models import Clip


@dataclass(frozen=True)
class ImportBenchConfig:
    n: int = 6000  # catalogue clips
    batch: int = 32  # clips per embedding task (CSN_EMBED_BATCH's default)
    seed: int = 0
    exact_max: int = EXACT_MAX  # lowered for a run above it with fewer clips


@dataclass(frozen=True)
class ImportRun:
    writes: int  # snapshot writes over the import
    with_graphs: int  # of which wrote graphs
    cpu_s: float  # process CPU seconds of all refreshes
    wall_s: float
    graphs: Counter  # graphs "built" from scratch and "grown", all instruments


@contextmanager
def graphs_made():
    """A Counter of the graphs snapshot_graphs builds and grows meanwhile, counted from its
    INFO records, which are kept out of the run's output (its warnings are not)."""
    made: Counter = Counter()

    def count(record: logging.LogRecord) -> bool:
        kind = getattr(record, "graph", None)
        if kind is not None:
            made[kind] += 1
        return kind is None

    logger = logging.getLogger(snapshot_graphs.__name__)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addFilter(count)
    try:
        yield made
    finally:
        logger.removeFilter(count)
        logger.setLevel(level)


def import_in_batches(version, cat: int, keys: list[int], cfg: ImportBenchConfig,
                      grow: bool) -> ImportRun:  # fmt: skip
    """From no snapshot and every clip pending, set each batch of clips ready in key order and
    refresh the snapshot after it as the embedding task does; the refreshes' totals."""
    IndexSnapshot.objects.filter(version=version, catalogue_id=cat).delete()  # file goes too
    Clip.objects.filter(catalogue_id=cat).update(status=Clip.Status.PENDING)
    writes = with_graphs = 0
    cpu = wall = 0.0
    with graphs_made() as made:
        for start in range(0, len(keys), cfg.batch):
            batch = keys[start : start + cfg.batch]
            Clip.objects.filter(pk__in=batch).update(status=Clip.Status.READY)
            c, w = time.process_time(), time.perf_counter()
            written = snapshot.refresh(version, cat, exact_max=cfg.exact_max, grow=grow)
            cpu += time.process_time() - c
            wall += time.perf_counter() - w
            if written:
                writes += 1
                snap = snapshot.load(version, cat)
                with_graphs += snap is not None and snap.hnsw is not None
    return ImportRun(writes, with_graphs, cpu, wall, made)


def assert_graphs_usable(version, cat: int) -> None:
    """The snapshot's graphs pass what a web process checks before using one."""
    snap = snapshot.load(version, cat)
    if snap is None or snap.hnsw is None:
        raise RuntimeError(f"catalogue {cat}: the last snapshot has no graphs")
    finite = snap.vectors[np.isfinite(snap.vectors).all(axis=1)]  # (N, D)
    for condition in version.conditions:
        sub = np.ascontiguousarray(version.subspace(finite, condition))  # (N, d)
        if snapshot_graphs.graph(snap, condition, sub, search.DEFAULT_HNSW) is None:
            raise RuntimeError(f"catalogue {cat}: graph_{condition} fails the web checks")


def run(cfg: ImportBenchConfig, out: Callable[[str], None]) -> dict[str, ImportRun]:
    """Make the catalogue, import it in batches twice (rebuild, then grow), print, remove it."""
    t = time.perf_counter()
    fixture = api_bench.make_fixture(api_bench.ApiBenchConfig(n=cfg.n, seed=cfg.seed))
    try:
        version, cat = fixture.version, fixture.catalogue.pk
        keys = list(Embedding.objects.filter(clip__catalogue_id=cat, version=version)
                    .order_by("id").values_list("clip_id", flat=True))  # fmt: skip
        out(f"import in batches: catalogue of N={cfg.n:,} synthetic clips (D={version.dim}, "
            f"{len(version.conditions)} instruments, checkpoint {version.checkpoint_id}), made in "
            f"{time.perf_counter() - t:.1f} s; batches of {cfg.batch}, "
            f"REFRESH_SHARE {snapshot.REFRESH_SHARE}")  # fmt: skip
        lowered = (f"EXACT_MAX lowered to {cfg.exact_max:,} for this run (it is {EXACT_MAX:,})"
                   if cfg.exact_max != EXACT_MAX else f"EXACT_MAX {EXACT_MAX:,}")  # fmt: skip
        p = search.DEFAULT_HNSW
        out(f"graphs: HNSW M={p.m}, efConstruction={p.ef_construction} ({lowered})")
        out(f"machine: {api_bench.machine()}")
        runs = {}
        for name, grow in (("rebuild every graph (before)", False), ("grow the graphs", True)):
            runs[name] = r = import_in_batches(version, cat, keys, cfg, grow)
            assert_graphs_usable(version, cat)
            out(f"  {name:<30} {r.cpu_s:>9.1f} CPU-s {r.wall_s:>9.1f} s wall, {r.writes} "
                f"writes ({r.with_graphs} with graphs); graphs built {r.graphs['built']}, "
                f"grown {r.graphs['grown']}")  # fmt: skip
        before, after = runs.values()
        out(
            f"worker CPU over the import, rebuild / grow: {before.cpu_s / after.cpu_s:.1f}x "
            f"(wall {before.wall_s / after.wall_s:.1f}x; same run)"
        )
    finally:
        api_bench.remove_fixture(fixture)
    out("removed the catalogue, its clips and embeddings, its snapshot, and the run's user")
    return runs
