"""End-to-end embedding speed: decode -> resample -> log-mel -> embedding, in x real time.

Measured in one run, on the same files and the same threads:
- fast path: Embedder.embed_files (decoding in threads ahead of the model, segments of all files
  batched, torch log-mel, BatchNorm folded into the convolutions);
- naive path: one file at a time, librosa resampling and log-mel, one segment per forward pass,
  the unmodified model;
- the model's FLOPs per second of audio (features + network, csn_model.model.count_flops) and
  what the fast path achieves of the machine's matmul peak measured here (float32, same threads).
Weights do not change the cost, so without a checkpoint the default config's model is used
with its random initial weights.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from csn_model.checkpoint import make_payload, save_checkpoint
from csn_model.config import ExperimentConfig, load_config, to_dict
from csn_model.inference import Embedder, decode, segment_starts
from csn_model.model import build_model, count_flops, model_args_from_config


def make_corpus(folder: Path, files: int, seconds: float, rate: int, fmt: str, seed: int = 0):
    """Synthetic music-like clips (tones with decaying envelopes plus noise) as audio files."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    paths = []
    for i in range(files):
        y = 0.02 * rng.standard_normal(t.size)
        for _ in range(6):
            f0, start = rng.uniform(40, 2000), rng.uniform(0, seconds)
            env = np.exp(-3.0 * np.clip(t - start, 0, None)) * (t >= start)
            y += 0.1 * env * np.sin(2 * np.pi * f0 * t)
        path = folder / f"clip{i:04d}.{fmt}"
        sf.write(path, y.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def matmul_peak_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """Best float32 matmul rate (GFLOP/s) over repeated (size x size) products, current threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2.0 * size**3 / (time.perf_counter() - t0) / 1e9)
    return best


def embed_naive(model, paths: list[Path], segment: int, feature_cfg) -> np.ndarray:
    """One clip at a time: soundfile, librosa resample, librosa log-mel, one forward per segment."""
    import librosa

    from csn_model.features import reference_logmel

    out = []
    with torch.inference_mode():
        for path in paths:
            y, sr = sf.read(str(path), dtype="float32", always_2d=True)
            y = y.mean(axis=1)
            if sr != model.sample_rate:
                y = librosa.resample(y, orig_sr=sr, target_sr=model.sample_rate)
            embs = []
            for s in segment_starts(y.size, segment):
                feats = reference_logmel(y[s : s + segment], feature_cfg)  # (M, F)
                x = torch.from_numpy(feats).unsqueeze(0)  # (1, M, F)
                embs.append(model.embed_logmel(x)[0].numpy())  # (D,)
            out.append(np.mean(embs, axis=0))
    return np.stack(out)  # (N, D)


def _checkpoint(path: Path | None, cfg: ExperimentConfig, tmp: Path) -> Path:
    if path is not None:
        return path
    args = model_args_from_config(cfg)
    model = build_model("csn", args).eval()
    return save_checkpoint(tmp / "random.pt", make_payload("csn", args, model, to_dict(cfg)))


def run_speed(
    checkpoint: Path | None = None,
    files: int = 96,
    seconds: float = 10.0,
    rate: int = 44100,
    fmt: str = "flac",
    naive_files: int = 6,
    batch_size: int = 64,
    repeats: int = 3,
) -> dict:
    """Measure both paths on a fresh corpus; returns the figures (see module docstring).

    Each path is timed in wall-clock seconds and in CPU seconds of this process (all threads):
    on a machine shared with other jobs the wall figure understates what the cores can do, and
    audio seconds per CPU second x cores is what the pipeline gives when it has them to itself.
    """
    cfg = load_config(None)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="csn_speed_") as tmp:
        tmp = Path(tmp)
        # target_lufs=None: the naive path does not level either, so both do the same work
        emb = Embedder.from_checkpoint(
            _checkpoint(checkpoint, cfg, tmp),
            device="cpu",
            batch_size=batch_size,
            target_lufs=None,
        )
        paths = make_corpus(tmp, files, seconds, rate, fmt)
        emb.embed_files(paths[:4])  # warm-up (allocations, thread pools)
        fast = _best(repeats, emb.embed_files, paths)
        dec = _best(repeats, lambda p: [decode(x, emb.sample_rate, None) for x in p], paths)
        fcfg = _features(emb)
        embed_naive(emb.model, paths[:1], emb.segment, fcfg)  # warm-up (numba compile)
        naive = _best(1, embed_naive, emb.model, paths[:naive_files], emb.segment, fcfg)
    audio_s, naive_audio = files * seconds, naive_files * seconds
    seg_s = emb.segment / emb.sample_rate
    flops = {k: v / seg_s for k, v in count_flops(emb.model, emb.segment).items()}  # per audio s
    fast_xrt = audio_s / fast[0]
    peak = matmul_peak_gflops()
    return {
        "fast_x_real_time": fast_xrt,
        "naive_x_real_time": naive_audio / naive[0],
        "ratio_fast_to_naive": fast_xrt / (naive_audio / naive[0]),
        "fast_audio_s_per_cpu_s": audio_s / fast[1],
        "naive_audio_s_per_cpu_s": naive_audio / naive[1],
        "decode_resample_x_real_time": audio_s / dec[0],
        "model_mflop_per_audio_second": flops["total"] / 1e6,
        "mflop_by_stage_per_audio_second": {k: v / 1e6 for k, v in flops.items()},
        "achieved_gflops": flops["total"] * fast_xrt / 1e9,
        "matmul_peak_gflops": peak,
        "share_of_peak": flops["total"] * fast_xrt / 1e9 / peak,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "audio_seconds": audio_s,
        "files": files,
        "seconds_per_file": seconds,
        "file_format": f"{fmt} {rate} Hz mono 16-bit",
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": str(torch.__version__),
        "checkpoint": str(checkpoint) if checkpoint else "default config, random weights",
    }


def _best(repeats: int, fn, *args) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of the fastest of `repeats` calls."""
    runs = []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn(*args)
        runs.append((time.perf_counter() - w, time.process_time() - c))
    return min(runs)


def _features(emb: Embedder):
    from csn_model.config import FeatureConfig

    fe = emb.model.frontend
    return FeatureConfig(
        sample_rate=fe.sample_rate,
        n_fft=fe.n_fft,
        hop_length=fe.hop_length,
        n_mels=fe.n_mels,
        top_db=fe.top_db,
        fmin=fe.fmin,
        fmax=fe.fmax,
        db_ref=fe.db_ref,
    )
