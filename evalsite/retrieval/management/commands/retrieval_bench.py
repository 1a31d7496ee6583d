"""manage.py retrieval_bench: queries/s and recall@10 of the HNSW index against exact search,
on synthetic vectors (default 1M x 128 per subspace) and on the real catalogue's embeddings;
with --removal, the first search after a clip is removed: full rebuild against incremental sync;
with --api, the search API end to end against /healthz (evalsite/retrieval/api_bench.py);
with --cold, the first search of a process phase by phase (evalsite/retrieval/cold_bench.py);
with --import-batches, the worker's snapshot writes over an import in batches, every graph
rebuilt against the old graphs grown (evalsite/retrieval/import_bench.py).
Run under `nice`: building a 1M-vector index takes minutes of both cores."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from evalsite.retrieval import api_bench, bench, cold_bench, import_bench
from evalsite.retrieval.search import DEFAULT_HNSW, EXACT_MAX, HnswParams


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--n",
            type=int,
            default=None,
            help="vectors per subspace (default 1,000,000); with --api, catalogue clips (10,000)",
        )
        parser.add_argument("--dim", type=int, default=128)
        parser.add_argument("--queries", type=int, default=2000)
        parser.add_argument(
            "--subspaces",
            type=int,
            default=1,
            help="synthetic subspaces to benchmark (each is built separately)",
        )
        parser.add_argument("--kind", choices=["clustered", "gaussian"], default="clustered")
        parser.add_argument("--m", type=int, default=DEFAULT_HNSW.m)
        parser.add_argument("--ef-construction", type=int, default=DEFAULT_HNSW.ef_construction)
        parser.add_argument("--skip-synthetic", action="store_true")
        parser.add_argument("--skip-catalogue", action="store_true")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--ivf-nlist",
            type=int,
            default=0,
            help="also benchmark IVF-Flat with this many lists (0: skip)",
        )
        parser.add_argument("--ef-grid", default="16,24,32,48,64,96,128,256")
        parser.add_argument("--index-dir", default=None,
                            help="save/reuse built synthetic indexes here")  # fmt: skip
        parser.add_argument(
            "--removal",
            action="store_true",
            help="only time the first search after a clip is removed from an HNSW index of "
            "--n vectors: full rebuild (the old sync) vs incremental; --queries removals",
        )
        parser.add_argument(
            "--api",
            action="store_true",
            help="only benchmark GET /retrieval/api/search end to end against /healthz, over a "
            "catalogue of --n synthetic clips made for the run and removed after it",
        )
        parser.add_argument(
            "--cold",
            action="store_true",
            help="only time the first search of a process, phase by phase, over a catalogue of "
            "--n synthetic clips made for the run and removed after it (in process)",
        )
        parser.add_argument(
            "--import-batches",
            action="store_true",
            help="only time the worker's snapshot writes over an import of --n synthetic clips "
            "(6,000) in batches of --batch, every graph rebuilt against the old graphs grown, "
            "in process; the catalogue is made for the run and removed after it",
        )
        parser.add_argument("--batch", type=int, default=None,
                            help="with --import-batches: clips per embedding task "
                            "(default CSN_EMBED_BATCH)")  # fmt: skip
        parser.add_argument(
            "--exact-max",
            type=int,
            default=EXACT_MAX,
            help="with --cold or --import-batches: the exact-search size for the run, lowered "
            "to time the HNSW case with fewer clips than EXACT_MAX (the output says so)",
        )
        parser.add_argument("--rounds", type=int, default=200,
                            help="with --api: warm searches per instrument")  # fmt: skip
        parser.add_argument("--in-process", action="store_true",
                            help="with --api: Django's test client, not gunicorn")  # fmt: skip
        parser.add_argument("--server-log", default="/tmp/retrieval_api_bench.log",
                            help="with --api: gunicorn's log")  # fmt: skip

    def handle(self, *args, **o) -> None:
        if o["api"]:
            self._api(o)
            return
        if o["cold"]:
            self._cold(o)
            return
        if o["import_batches"]:
            self._import(o)
            return
        o["n"] = o["n"] or 1_000_000
        params = HnswParams(o["m"], o["ef_construction"], DEFAULT_HNSW.ef_search)
        if o["removal"]:
            self._removal(o, params)
            return
        if not o["skip_synthetic"]:
            for s in range(o["subspaces"]):
                self._synthetic(o, params, s)
        if not o["skip_catalogue"]:
            self._catalogue(params)

    def _synthetic(self, o: dict, params: HnswParams, s: int) -> None:
        t = time.perf_counter()
        base = bench.synthetic(o["n"], o["dim"], o["kind"], seed=o["seed"] + 2 * s)
        queries = bench.synthetic(o["queries"], o["dim"], o["kind"], seed=o["seed"] + 2 * s + 1)
        self.stdout.write(
            f"synthetic subspace {s}: {o['kind']} {o['n']:,} x {o['dim']}, "
            f"{o['queries']} queries (generated in {time.perf_counter() - t:.0f} s)"
        )
        path = None
        if o["index_dir"]:
            Path(o["index_dir"]).mkdir(parents=True, exist_ok=True)
            name = f"{o['kind']}-{o['n']}x{o['dim']}-s{o['seed'] + 2 * s}-M{params.m}.faiss"
            path = Path(o["index_dir"]) / name
        ivf = bench.IvfParams(nlist=o["ivf_nlist"]) if o["ivf_nlist"] else None
        ef_grid = tuple(int(x) for x in o["ef_grid"].split(",") if x)
        rows, info = bench.run_bench(base, queries, params, ef_grid=ef_grid, log=self.stdout.write,
                                     index_path=path, ivf=ivf)  # fmt: skip
        self.stdout.write(bench.table(rows, info["exact_qps"]))
        self._verdict(rows, info["exact_qps"])

    def _removal(self, o: dict, params: HnswParams) -> None:
        base = bench.synthetic(o["n"], o["dim"], o["kind"], seed=o["seed"])
        queries = bench.synthetic(o["queries"], o["dim"], o["kind"], seed=o["seed"] + 1)
        self.stdout.write(
            f"removal: {o['kind']} {o['n']:,} x {o['dim']}, HNSW M={params.m} "
            f"efConstruction={params.ef_construction}, {o['queries']} removals"
        )
        r = bench.removal_bench(base, queries, params, log=self.stdout.write)
        self.stdout.write(
            f"first search after removing one clip: full rebuild {r['old_wall']:.2f} s wall "
            f"({r['old_cpu']:.2f} CPU-s); incremental {r['new_wall'] * 1000:.2f} ms wall "
            f"({r['new_cpu'] * 1000:.2f} CPU-ms, median); rebuild / incremental: "
            f"{r['old_wall'] / r['new_wall']:,.0f}x wall, {r['old_cpu'] / r['new_cpu']:,.0f}x CPU"
        )

    def _api(self, o: dict) -> None:
        from evalsite.retrieval.embedder import CheckpointMissing, ModelUnavailable

        if (o["n"] or 10_000) < 2 or o["rounds"] < 1:
            raise CommandError("--api: expected --n >= 2 clips and --rounds >= 1")
        cfg = api_bench.ApiBenchConfig(n=o["n"] or 10_000, rounds=o["rounds"], seed=o["seed"],
                                       in_process=o["in_process"])  # fmt: skip
        try:
            api_bench.run(cfg, self.stdout.write, Path(o["server_log"]))
        except (CheckpointMissing, ModelUnavailable, api_bench.ApiBenchError) as exc:
            raise CommandError(f"--api: {exc}") from None

    def _cold(self, o: dict) -> None:
        from evalsite.retrieval.embedder import CheckpointMissing, ModelUnavailable

        cfg = cold_bench.ColdBenchConfig(n=o["n"] or 10_000, seed=o["seed"],
                                         exact_max=o["exact_max"])  # fmt: skip
        try:
            cold_bench.run(cfg, self.stdout.write)
        except (CheckpointMissing, ModelUnavailable) as exc:
            raise CommandError(f"--cold: {exc}") from None

    def _import(self, o: dict) -> None:
        from django.conf import settings

        from evalsite.retrieval.embedder import CheckpointMissing, ModelUnavailable

        batch = settings.CSN_EMBED_BATCH if o["batch"] is None else o["batch"]
        cfg = import_bench.ImportBenchConfig(n=o["n"] or 6000, batch=batch, seed=o["seed"],
                                             exact_max=o["exact_max"])  # fmt: skip
        if cfg.batch < 1 or cfg.n <= cfg.exact_max:
            raise CommandError(
                f"--import-batches: expected --batch >= 1 and --n above --exact-max (graphs are "
                f"saved only above it); got --batch {cfg.batch}, --n {cfg.n}, "
                f"--exact-max {cfg.exact_max}"
            )
        try:
            import_bench.run(cfg, self.stdout.write)
        except (CheckpointMissing, ModelUnavailable) as exc:
            raise CommandError(f"--import-batches: {exc}") from None

    def _verdict(self, rows, exact_qps) -> None:
        b = bench.best(rows)
        if b is None:
            self.stdout.write("no efSearch reached recall@10 >= 0.95")
        else:
            self.stdout.write(
                f"best at recall@10 >= 0.95: {b.param}, {b.qps:,.0f} queries/CPU-s "
                f"({b.wall_qps:,.0f} q/s wall), recall {b.recall10:.4f}, "
                f"{b.qps / exact_qps:.1f}x exact search measured in this run"
            )

    def _catalogue(self, params: HnswParams) -> None:
        from evalsite.retrieval.embedder import CheckpointMissing, current_version
        from evalsite.retrieval.service import scope

        try:
            version = current_version()
        except CheckpointMissing as exc:
            self.stdout.write(f"real catalogue: skipped ({exc})")
            return
        if version is None:
            self.stdout.write("real catalogue: skipped (nothing embedded with the checkpoint)")
            return
        blobs = list(scope(version).values_list("vector", flat=True))
        if len(blobs) < 20:
            self.stdout.write(f"real catalogue: skipped ({len(blobs)} embedded mix clips)")
            return
        full = np.stack([np.frombuffer(bytes(b), dtype="<f4") for b in blobs])
        for condition in version.conditions:
            x = version.subspace(full, condition)
            self.stdout.write(f"real catalogue, {condition}: {len(x)} x {x.shape[1]}")
            rows, info = bench.run_bench(x, x, params, log=lambda _m: None)
            self.stdout.write(bench.table(rows, info["exact_qps"]))
            self._verdict(rows, info["exact_qps"])
