"""`csn bench-speed`: end-to-end embedding throughput against a naive path and the matmul peak."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from csn_model.cli import non_negative_int, out_file, positive_float, positive_int


def add_arguments(parser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, help="default: the default model, random weights"
    )
    parser.add_argument(
        "--files", type=positive_int, default=96, help="clips in the generated corpus"
    )
    parser.add_argument("--seconds", type=positive_float, default=10.0, help="length of each clip")
    parser.add_argument("--rate", type=positive_int, default=44100, help="sample rate of the files")
    parser.add_argument("--format", choices=("flac", "wav"), default="flac")
    parser.add_argument(
        "--naive-files",
        type=positive_int,
        default=6,
        help="clips timed on the naive path (at most --files)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument(
        "--threads", type=non_negative_int, help="torch threads (default or 0: torch's, all cores)"
    )
    parser.add_argument("--json", type=out_file, help="also write the figures to this file")


def run(args) -> int:
    import soundfile as sf
    import torch

    from csn_model.checkpoint import CheckpointError
    from csn_model.inference import EmbedError
    from csn_model.speed import run_speed

    problem = _argument_problem(args)
    if problem:
        print(f"csn bench-speed: error: {problem}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        r = run_speed(
            args.checkpoint,
            args.files,
            args.seconds,
            args.rate,
            args.format,
            args.naive_files,
            args.batch_size,
        )
    except (CheckpointError, EmbedError, sf.LibsndfileError) as exc:
        print(f"csn bench-speed: error: {exc}", file=sys.stderr)
        return 2
    _print_figures(r)
    if args.json:
        try:
            args.json.write_text(json.dumps(r, indent=2))
        except OSError as exc:
            print(f"csn bench-speed: error: cannot write {args.json}: {exc}", file=sys.stderr)
            return 2
    return 0


def _argument_problem(args) -> str | None:
    """What makes the arguments unusable together, or None."""
    if args.naive_files > args.files:  # the naive path times the first --naive-files clips
        return f"--naive-files {args.naive_files}: expected at most --files ({args.files})"
    if int(args.seconds * args.rate) < 1:  # make_corpus's clip length in samples
        return (
            f"--seconds {args.seconds:g}: under one sample at --rate {args.rate}; expected "
            "clips of at least one sample"
        )
    return None


def _print_figures(r: dict) -> None:
    print(
        f"corpus: {r['files']} x {r['seconds_per_file']:g} s, {r['file_format']}; "
        f"{r['threads']} torch threads, {r['cores']} cores, torch {r['torch']}"
    )
    print(f"fast path (batched, torch log-mel)   {r['fast_x_real_time']:10.0f} x real time")
    print(f"naive path (one clip, librosa)       {r['naive_x_real_time']:10.0f} x real time")
    print(f"ratio fast / naive                   {r['ratio_fast_to_naive']:10.1f}")
    print(
        f"audio seconds per CPU second: fast {r['fast_audio_s_per_cpu_s']:.0f}, "
        f"naive {r['naive_audio_s_per_cpu_s']:.0f} "
        f"(x {r['cores']} cores = {r['cores'] * r['fast_audio_s_per_cpu_s']:.0f} x real time "
        "with the cores to itself)"
    )
    print(
        f"decode + resample alone              {r['decode_resample_x_real_time']:10.0f} x real time"
    )
    by_stage = r["mflop_by_stage_per_audio_second"].items()
    stages = ", ".join(f"{k} {v:.1f}" for k, v in by_stage if k != "total")
    print(f"model cost: {r['model_mflop_per_audio_second']:.1f} MFLOP per audio second ({stages})")
    print(
        f"achieved {r['achieved_gflops']:.1f} GFLOP/s = {100 * r['share_of_peak']:.1f}% of the "
        f"measured matmul peak {r['matmul_peak_gflops']:.0f} GFLOP/s"
    )
    load = r["load_average_1min"]
    print(f"machine load average (1 min) before/after: {load[0]:.1f} / {load[1]:.1f}")
