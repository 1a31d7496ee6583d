"""Benchmark: the whole report on a simulated study (default 200 participants x 500 answers =
100,000 answers), printing the time of each part.

    nice -n 10 python -m evalsite.reports.analysis.bench [--participants 200] [--trials 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from .report import ReportConfig, build_report
from .simulate import SimulationSpec, simulate_answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalsite.reports.analysis.bench")
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--trials", type=int, default=500, help="answers per participant")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    # Per participant: 10 catch trials (6 identical + 4 repeats), the rest regular trials from a
    # pool shared by everyone, split evenly over the five instruments.
    regular = args.trials - 10
    spec = SimulationSpec(
        n_participants=args.participants,
        trials_per_instrument=regular // 5,
        n_identical_catch=6,
        n_repeat_catch=4,
        seed=args.seed,
    )
    t = time.perf_counter()
    answers, _ = simulate_answers(spec)
    t_sim = time.perf_counter() - t
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}"
    )
    print(
        f"answers: {len(answers)} ({args.participants} participants x "
        f"{len(answers) // args.participants} answers), n_boot={args.n_boot}"
    )
    print(f"{'simulate (not part of the report)':40s} {t_sim:8.2f} s")
    report = build_report(answers, ReportConfig(n_boot=args.n_boot, seed=args.seed))
    for part, seconds in report.timings.items():
        print(f"{part:40s} {seconds:8.2f} s")
    from ..rendering.files import write_report  # matplotlib only here

    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        write_report(report, Path(out))
        t_render = time.perf_counter() - t
    print(f"{'render (plots, tables, summaries)':40s} {t_render:8.2f} s")
    print(f"{'report + render':40s} {report.timings.get('total', 0) + t_render:8.2f} s")
    for m in report.messages:
        print(f"[{m['level']}] {m['part']}: {m['text']}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
