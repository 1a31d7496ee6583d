"""Log-mel front end in torch: the one place where waveforms become model input.

Matches `librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft,
hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax), top_db=top_db)` (librosa's defaults:
centred frames padded with zeros, periodic Hann window, power 2, Slaney mel filterbank,
ref 1.0, amin 1e-10) to float32 precision; tests/csn_model/model/test_features.py checks it.
With db_ref "max" the reference is each clip's own maximum instead (librosa's ref=np.max): a gain
shifts every dB value of a clip by the same amount, which this takes away, so the log-mel, and
the model's embedding, do not depend on the level the clip arrives at (exactly, up to float
rounding, while the top_db floor lies above the amin floor: a clip whose mel peak is above
10*log10(amin) + top_db = -20 dB with the defaults; a silent clip is all zeros at any gain).
Without a top_db floor it is not (silent bins stay at the amin floor), nor with one of 100 dB or
more (at or below amin's -100 dB for every clip up to full scale), so the config check
refuses db_ref "max" with either.
It runs on the module's device, so a model moved to CUDA computes its features there.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from csn_model.config import AMIN, DB_REFS

CPU_CHUNK = 8  # clips per chunk on CPU: keeps the frames and spectra of one chunk in cache
MEL_GROUPS = 8  # mel bands in groups of 128/8; each group multiplies only its frequency range


class LogMel(nn.Module):
    window: torch.Tensor  # buffers, registered in __init__
    mel_fb2_t: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float | None = None,
        top_db: float | None = 80.0,
        db_ref: str = "one",  # "one" for a checkpoint from before the field (model_args lack it)
    ):
        super().__init__()
        if db_ref not in DB_REFS:
            raise ValueError(f"db_ref {db_ref!r}: expected one of {', '.join(DB_REFS)}")
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.n_mels, self.top_db, self.fmin, self.fmax = n_mels, top_db, fmin, fmax
        self.db_ref = db_ref
        # Periodic Hann, as scipy.signal.get_window("hann", n_fft, fftbins=True) in librosa.
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64).float()
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        # Derived from the arguments, so not part of the state_dict.
        self.register_buffer("window", window, persistent=False)  # (n_fft,)
        # Each row twice, to multiply the interleaved (re, im) squares directly:
        # sum_f (re_f^2 + im_f^2) w_f = sum_f re_f^2 w_f + im_f^2 w_f, one pass fewer.
        fb2 = np.ascontiguousarray(np.repeat(fb.T, 2, axis=0))  # (2 * n_freq, n_mels)
        self.register_buffer("mel_fb2_t", torch.from_numpy(fb2), persistent=False)
        # The filterbank is banded (each filter spans a few bins): per group of bands, the bin
        # range where any of them is non-zero, so that the product skips the ~87% of zeros.
        # Same sum as the dense product up to float rounding.
        self.bands = _band_ranges(fb, MEL_GROUPS)

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) float waveforms -> (B, n_mels, frames) log-mel in dB."""
        with torch.autocast(wave.device.type, enabled=False):  # features stay float32 under AMP
            wave = wave.float()
            if wave.device.type == "cpu" and wave.shape[0] > CPU_CHUNK:
                parts = [self._logmel(w) for w in wave.split(CPU_CHUNK)]
                return torch.cat(parts)  # (B, n_mels, frames)
            return self._logmel(wave)

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, frames, n_mels) mel power spectrogram (librosa.feature.melspectrogram)."""
        pad = self.n_fft // 2
        x = F.pad(wave, (pad, pad))  # (B, T + n_fft), zeros as librosa's pad_mode="constant"
        frames = x.unfold(-1, self.n_fft, self.hop_length) * self.window  # (B, frames, n_fft)
        spec = torch.fft.rfft(frames)  # (B, frames, n_freq) complex
        sq = torch.view_as_real(spec).flatten(-2).square()  # (B, frames, 2 * n_freq) re², im²
        if self.bands is None:
            return sq @ self.mel_fb2_t  # (B, frames, n_mels)
        parts = [
            sq[..., 2 * lo : 2 * hi] @ self.mel_fb2_t[2 * lo : 2 * hi, m0:m1]  # (B, frames, m)
            for m0, m1, lo, hi in self.bands
        ]
        return torch.cat(parts, dim=-1)  # (B, frames, n_mels)

    def _logmel(self, wave: torch.Tensor) -> torch.Tensor:
        mel = self.power_mel(wave)  # (B, frames, n_mels)
        db = torch.log10(mel.clamp(min=AMIN)).mul_(10.0)  # ref = 1.0: no offset
        if self.top_db is None and self.db_ref == "one":
            return db.transpose(1, 2)  # (B, n_mels, frames)
        peak = db.amax(dim=(1, 2), keepdim=True)  # (B, 1, 1) per clip, as librosa per call
        if self.top_db is not None:
            db = torch.maximum(db, peak - self.top_db)
        if self.db_ref == "max":
            db = db - peak  # librosa ref=np.max: 10*log10(max(amin, ref)) subtracted
        return db.transpose(1, 2)  # (B, n_mels, frames)


def _band_ranges(fb: np.ndarray, groups: int) -> list[tuple[int, int, int, int]] | None:
    """[(first band, end band, first bin, end bin)] per group of mel bands, None if not banded."""
    n_mels = fb.shape[0]
    if n_mels % groups:
        return None
    size = n_mels // groups
    nonzero = fb != 0  # (n_mels, n_freq)
    out = []
    for m0 in range(0, n_mels, size):
        cols = np.flatnonzero(nonzero[m0 : m0 + size].any(axis=0))
        lo, hi = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)
        out.append((m0, m0 + size, lo, hi))
    return out


def reference_logmel(y: np.ndarray, cfg) -> np.ndarray:
    """librosa's log-mel of one clip (the naive path and the reference the tests compare to)."""
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )
    ref = np.max if getattr(cfg, "db_ref", "one") == "max" else 1.0
    return librosa.power_to_db(mel, ref=ref, amin=AMIN, top_db=cfg.top_db)  # (n_mels, frames)


def frontend_from_config(cfg) -> LogMel:
    """LogMel from a FeatureConfig (or anything with its field names)."""
    return LogMel(
        sample_rate=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        top_db=cfg.top_db,
        db_ref=cfg.db_ref,
    )
