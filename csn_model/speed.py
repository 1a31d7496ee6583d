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
    """Measure both paths on a fresh corpus; returns the figures (see module docstring)."""
    cfg = load_config(None)
    with tempfile.TemporaryDirectory(prefix="csn_speed_") as tmp:
        tmp = Path(tmp)
        ckpt = _checkpoint(checkpoint, cfg, tmp)
        emb = Embedder.from_checkpoint(ckpt, device="cpu", batch_size=batch_size)
        paths = make_corpus(tmp, files, seconds, rate, fmt)
        audio_s = files * seconds
        emb.embed_files(paths[:4])  # warm-up (allocations, thread pools)
        fast_s = min(_timed(emb.embed_files, paths) for _ in range(repeats))
        decode_s = min(
            _timed(lambda p: [decode(x, emb.sample_rate) for x in p], paths) for _ in range(repeats)
        )
        feature_cfg = _features(emb)
        embed_naive(emb.model, paths[:1], emb.segment, feature_cfg)  # warm-up (numba compile)
        naive_s = _timed(embed_naive, emb.model, paths[:naive_files], emb.segment, feature_cfg)
        naive_audio = naive_files * seconds
    flops = count_flops(emb.model, emb.segment)
    flops_per_s = flops["total"] / (emb.segment / emb.sample_rate)
    fast_xrt = audio_s / fast_s
    peak = matmul_peak_gflops()
    return {
        "fast_x_real_time": fast_xrt,
        "naive_x_real_time": naive_audio / naive_s,
        "ratio_fast_to_naive": fast_xrt / (naive_audio / naive_s),
        "decode_resample_x_real_time": audio_s / decode_s,
        "model_mflop_per_audio_second": flops_per_s / 1e6,
        "mflop_by_stage_per_audio_second": {
            k: v / (emb.segment / emb.sample_rate) / 1e6 for k, v in flops.items()
        },
        "achieved_gflops": flops_per_s * fast_xrt / 1e9,
        "matmul_peak_gflops": peak,
        "share_of_peak": flops_per_s * fast_xrt / 1e9 / peak,
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
    )


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0
