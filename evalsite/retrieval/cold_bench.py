"""The first search of a process (`manage.py retrieval_bench --cold`): where its seconds go.

Over a catalogue of N synthetic clips made as the API benchmark makes them (api_bench.make_fixture),
in this process, with no server: for each instrument, the phases a cold index goes through when it
is built from the database rows (the scope's rows read with their vectors, decoded, cut into the
instrument's subspace and added to the index), then `service.synced_index` of every instrument
from a fresh registry as a first search calls it (cold), and again (warm: the scope check only);
then the worker's snapshot write (snapshot.refresh) and the same cold and warm searches, which
now load the snapshot: the ratio of the two cold figures is printed.
Above exact_max (EXACT_MAX unless lowered for the run, which the output then says) the indexes
are HNSW: the snapshot is first written without graphs (the file as before the graphs were
saved: each first search builds them) and then with them, and both cold figures are printed.
Each figure is the median of `repeats` runs, wall seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from evalsite.retrieval import api_bench, service, snapshot
from evalsite.retrieval.search import EXACT_MAX, SubspaceIndex

T = TypeVar("T")


@dataclass(frozen=True)
class ColdBenchConfig:
    n: int = 10_000
    repeats: int = 3
    seed: int = 0
    exact_max: int = EXACT_MAX  # lowered for a run above it with fewer clips


def _median(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """(median wall seconds of repeats calls of fn, what the last call returned)."""
    times, results = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times)), results[-1]


def phases(version, catalogue_id: int, repeats: int, exact_max: int) -> dict[str, float]:
    """Seconds of each phase of building one instrument's index from the rows, summed over the
    instruments (each index reads the rows again, as synced_index does)."""
    qs = service.scope(version, catalogue_id)
    out = {"read rows": 0.0, "decode": 0.0, "subspace + index": 0.0}
    for condition in version.conditions:
        rows_qs = service._hashed(qs).order_by("id").values_list(*service._COLUMNS)

        def read(q=rows_qs) -> list:
            return list(q.all())  # .all(): a fresh queryset, not the cached rows

        seconds, rows = _median(read, repeats)
        out["read rows"] += seconds

        def decode(r=rows) -> tuple:
            return service._decode(r)

        seconds, (ids, vecs, keys, _) = _median(decode, repeats)
        out["decode"] += seconds

        def build(condition=condition, ids=ids, vecs=vecs, keys=keys) -> None:
            sub = version.subspace(vecs, condition)  # (N, d)
            SubspaceIndex(sub.shape[1], exact_max=exact_max).add(ids, sub, keys=np.asarray(keys))

        out["subspace + index"] += _median(build, repeats)[0]
    return out


def first_search(version, catalogue_id: int, repeats: int, exact_max: int) -> tuple[float, float]:
    """(cold, warm) seconds of synced_index for every instrument, from a fresh registry."""

    def cold() -> None:
        service.forget_indexes()
        for condition in version.conditions:
            service.synced_index(version, condition, catalogue_id, exact_max)

    def warm() -> None:
        for condition in version.conditions:
            service.synced_index(version, condition, catalogue_id, exact_max)

    return _median(cold, repeats)[0], _median(warm, repeats)[0]


def run(cfg: ColdBenchConfig, out: Callable[[str], None]) -> dict[str, float]:
    """Make the catalogue; time the first search from the rows, the worker's snapshot write, the
    first search from the snapshot, in that order (above exact_max: the write and the first
    search without graphs, then with them); print; remove the catalogue."""
    t = time.perf_counter()
    fixture = api_bench.make_fixture(api_bench.ApiBenchConfig(n=cfg.n, seed=cfg.seed))
    try:
        version, cat = fixture.version, fixture.catalogue.pk
        out(f"cold first search: catalogue of N={cfg.n:,} synthetic clips (D={version.dim}, "
            f"{len(version.conditions)} instruments, checkpoint {version.checkpoint_id}), made in "
            f"{time.perf_counter() - t:.1f} s; median of {cfg.repeats}, wall seconds")  # fmt: skip
        out(_method_line(cfg))
        out(f"machine: {api_bench.machine()}")
        figures = _measure(cfg, version, cat, out)
        for name, seconds in figures.items():
            out(f"  {name:<34} {seconds * 1000:>10.1f} ms (all instruments)")
        if cfg.n > cfg.exact_max:
            ratio = figures["cold, snapshot without graphs"] / figures["cold, snapshot"]
            out(f"first search, snapshot without graphs / with graphs: {ratio:.1f}x (same run)")
        ratio = figures["cold, rows"] / figures["cold, snapshot"]
        out(f"first search, rows / snapshot: {ratio:.1f}x (same run)")
    finally:
        service.forget_indexes()
        api_bench.remove_fixture(fixture)
    out("removed the catalogue, its clips and embeddings, its snapshot, and the run's user")
    return figures


def _method_line(cfg: ColdBenchConfig) -> str:
    method = "HNSW" if cfg.n > cfg.exact_max else "exact search"
    lowered = (f"EXACT_MAX lowered to {cfg.exact_max:,} for this run (it is {EXACT_MAX:,})"
               if cfg.exact_max != EXACT_MAX else f"EXACT_MAX {EXACT_MAX:,}")  # fmt: skip
    return f"indexes: {method} ({lowered})"


def _measure(
    cfg: ColdBenchConfig, version, cat: int, out: Callable[[str], None]
) -> dict[str, float]:
    figures = phases(version, cat, cfg.repeats, cfg.exact_max)
    figures["cold, rows"], figures["warm"] = first_search(version, cat, cfg.repeats, cfg.exact_max)
    built = {"rows": _graphs_built(version, cat, cfg.exact_max)}
    if cfg.n > cfg.exact_max:
        # The file as it was before graphs were saved: written as if under EXACT_MAX.
        figures["snapshot write, no graphs (worker)"] = _write(version, cat, cfg.n)
        cold, warm = first_search(version, cat, cfg.repeats, cfg.exact_max)
        built["snapshot without graphs"] = _graphs_built(version, cat, cfg.exact_max)
        figures["cold, snapshot without graphs"] = cold
        figures["warm, snapshot without graphs"] = warm
    figures["snapshot write (worker)"] = _write(version, cat, cfg.exact_max)
    cold, warm = first_search(version, cat, cfg.repeats, cfg.exact_max)
    figures["cold, snapshot"], figures["warm, snapshot"] = cold, warm
    built["snapshot"] = _graphs_built(version, cat, cfg.exact_max)
    out("HNSW graphs the last first search built: "
        + ", ".join(f"from the {k} {v}" for k, v in built.items()))  # fmt: skip
    return figures


def _graphs_built(version, cat: int, exact_max: int) -> int:
    """HNSW graphs built (not loaded) by the indexes the registry holds, all instruments."""
    return sum(
        service.synced_index(version, c, cat, exact_max).hnsw_builds for c in version.conditions
    )


def _write(version, cat: int, exact_max: int) -> float:
    """Seconds of the worker's snapshot write, with graphs when above exact_max."""
    t = time.perf_counter()
    if not snapshot.refresh(version, cat, exact_max=exact_max):  # what the embedding worker does
        raise RuntimeError(f"catalogue {cat}: the snapshot was not written")
    return time.perf_counter() - t
