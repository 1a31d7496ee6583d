"""manage.py loadtest --participants 200 --duration 30 [--kill-worker] [--think S]: see
studies/loadtest.py; manage.py loadtest --cost [--requests N --rounds R]: see
studies/loadtest_cost.py; manage.py loadtest --in-process [--participants N --rounds R
--profile N]: see studies/loadtest_inprocess.py."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evalsite.studies.loadtest import MAX_SPARES, LoadConfig, LoadTestError, run
from evalsite.studies.loadtest_cost import CostConfig, cost_passed, format_cost, run_cost
from evalsite.studies.loadtest_inprocess import (
    InProcessConfig,
    format_in_process,
    in_process_passed,
    run_in_process,
)
from evalsite.studies.loadtest_report import failures, format_report


class Command(BaseCommand):
    help = (
        "Simulate concurrent participants against gunicorn on PostgreSQL (loopback only) and "
        "report req/s and p50/p99 for trial pages, answer submission and /healthz."
    )

    def add_arguments(self, parser):
        parser.add_argument("--participants", type=int, default=200)
        parser.add_argument("--duration", type=float, default=30.0, help="trial phase, seconds")
        parser.add_argument(
            "--reference-duration", type=float, default=None, help="/healthz phase (default D/3)"
        )
        parser.add_argument("--trials", type=int, default=60, help="main trials in the study")
        parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
        parser.add_argument("--threads", type=int, default=4, help="threads per worker")
        parser.add_argument(
            "--client-processes", type=int, default=LoadConfig.client_processes,
            help="processes the simulated participants are spread over (default %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--spares", type=int, default=None,
            help="participants each client thread enters ahead, in setup (default: enough for "
            "1,600 answers/s through every phase)",
        )  # fmt: skip
        parser.add_argument(
            "--kill-worker", action="store_true", help="SIGKILL one worker half-way"
        )
        parser.add_argument(
            "--think", type=float, default=LoadConfig.think,
            help="paced phase: mean seconds between a trial page and its answer, like a "
            "listener (default %(default)s; 0: no paced phase)",
        )  # fmt: skip
        parser.add_argument("--keep", action="store_true", help="keep the study afterwards")
        parser.add_argument(
            "--cost", action="store_true",
            help="instead: CPU per request of each kind with no queue (one worker thread, one "
            "client, requests in sequence): loadtest_cost.py",
        )  # fmt: skip
        parser.add_argument(
            "--in-process", action="store_true",
            help="instead: Django's CPU per trial page and per answer, its WSGI handler called "
            "in this process (no server, no HTTP; DEBUG=false): loadtest_inprocess.py",
        )  # fmt: skip
        parser.add_argument(
            "--profile", type=int, default=0,
            help="--in-process: also print this many functions by CPU per kind (cProfile)",
        )  # fmt: skip
        parser.add_argument(
            "--requests", type=int, default=CostConfig.requests,
            help="--cost: requests per kind and round (default %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--rounds", type=int, default=CostConfig.rounds,
            help="--cost, --in-process: rounds, each kind in turn (default %(default)s)",
        )  # fmt: skip

    def handle(self, *args, **opts):
        bounds = {"participants": (1, 1000), "duration": (1, 600),
                  "reference_duration": (1, 600), "trials": (1, 1000),
                  "workers": (1, 32), "threads": (1, 64), "think": (0, 120),
                  "client_processes": (1, 64), "spares": (0, MAX_SPARES),
                  "requests": (1, 100_000), "rounds": (1, 1000), "profile": (0, 200)}  # fmt: skip
        for name, (lo, hi) in bounds.items():
            if opts[name] is not None and not lo <= opts[name] <= hi:
                flag = name.replace("_", "-")
                raise CommandError(f"--{flag} {opts[name]}: expected {lo}..{hi}")
        if opts["cost"] and opts["in_process"]:
            raise CommandError("--cost and --in-process are two modes: choose one")
        if opts["in_process"]:
            cfg = InProcessConfig(participants=opts["participants"], rounds=opts["rounds"],
                                  trials=opts["trials"], profile=opts["profile"])  # fmt: skip
            return self._run_mode(run_in_process, cfg, format_in_process, in_process_passed,
                                  "in-process")  # fmt: skip
        if opts["cost"]:
            cfg = CostConfig(requests=opts["requests"], rounds=opts["rounds"],
                             trials=max(opts["trials"], 2))  # fmt: skip
            return self._run_mode(run_cost, cfg, format_cost, cost_passed, "cost")
        cfg = LoadConfig(
            participants=opts["participants"],
            duration=opts["duration"],
            reference_duration=max(opts["duration"] / 3, 1.0)
            if opts["reference_duration"] is None
            else opts["reference_duration"],
            trials=opts["trials"],
            workers=opts["workers"],
            threads=opts["threads"],
            client_processes=opts["client_processes"],
            spares=opts["spares"],
            kill_worker=opts["kill_worker"],
            think=opts["think"],
            keep=opts["keep"],
        )
        try:
            result = run(cfg, out=self.stdout.write)
        except LoadTestError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(format_report(cfg, result))
        if failed := failures(result):
            raise CommandError(f"load test failed: {'; '.join(failed)}")

    def _run_mode(self, run_mode, cfg, format_result, ok, name: str) -> None:
        """One of the sequential modes (--cost, --in-process): run, print, fail on a loss."""
        try:
            result = run_mode(cfg, out=self.stdout.write)
        except LoadTestError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(format_result(result))
        if not ok(result):
            raise CommandError(f"{name} run failed: acknowledged and stored differ")
