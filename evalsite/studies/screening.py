"""Headphone screening stimuli, generated on the server from the participant's seed.

Antiphase test (Woods, Siegel, Traer & McDermott 2017, Atten. Percept. Psychophys. 79:2064):
three 200 Hz tones; one is 6 dB softer, one has its right channel phase-inverted. Over headphones
the -6 dB tone is the softest; over loudspeakers the antiphase tone cancels in the air and sounds
softest. Task: "which tone is the softest?".

Huggins pitch (Milne, Bianco, Poole, Zhao, Oxenham, Billig & Chait 2021, Behav. Res. Methods
53:1551): three white-noise intervals, identical in both ears except that in one interval a narrow
band around 600 Hz (+-6%) is phase-inverted in the right ear. Only over headphones does that band
evoke a faint pitch. Task: "which noise contains a faint tone?".

Each screening trial is one WAV of three intervals; the answer key (which interval is the target)
is derived from the participant's seed, so nothing about it appears in a URL or a page. Every
view of a screening page draws its trial afresh (`draw`: 0 for the first view, 1 after a reload,
...): the sounds play only once per page, and a reload gives a new trial, not a second hearing
of the same one (this project's choice; the papers do not say how a reload is handled).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from django.conf import settings

SR = 44100
KINDS = ("antiphase", "huggins")


@dataclass(frozen=True)
class ScreeningConfig:
    trials: int = 6  # per kind
    pass_correct: int = 5  # per kind, out of `trials`
    tone_s: float = 1.0
    gap_s: float = 0.5
    calibration_s: float = 4.0  # length of the volume-calibration noise


def config() -> ScreeningConfig:
    """Defaults from the papers; tests shorten them with CSN_SCREENING = {...} in settings."""
    return ScreeningConfig(**getattr(settings, "CSN_SCREENING", {}))


def plan(kinds: list[str], cfg: ScreeningConfig) -> list[tuple[str, int]]:
    """The sequence of (kind, trial number within kind) a participant goes through."""
    return [(kind, i) for kind in kinds for i in range(cfg.trials)]


def _name(seed: int, kind: str, i: int, draw: int) -> str:
    return f"{seed}:{kind}:{i}" + (f":{draw}" if draw else "")


def answer_key(seed: int, kind: str, i: int, draw: int = 0) -> dict:
    """Where the target (1-3) is; antiphase also places the antiphase distractor."""
    rng = random.Random(_name(seed, kind, i, draw))
    order = [1, 2, 3]
    rng.shuffle(order)
    return {"target": order[0], "distractor": order[1]}


def _ramp(n: int, sr: int, ramp_s: float = 0.1) -> np.ndarray:
    r = min(int(ramp_s * sr), n // 2)
    env = np.ones(n)
    env[:r] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, r))
    env[n - r :] = env[:r][::-1]
    return env


def _antiphase_interval(kind: str, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    tone = 0.25 * np.sin(2 * np.pi * 200.0 * t) * _ramp(n, SR)  # (T,)
    if kind == "soft":
        return np.stack([tone, tone], axis=1) * 10 ** (-6 / 20)  # (T, 2)
    if kind == "antiphase":
        return np.stack([tone, -tone], axis=1)
    return np.stack([tone, tone], axis=1)


def _huggins_interval(target: bool, n: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(n)
    right = noise
    if target:
        spec = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(n, 1 / SR)
        band = (freqs > 600 * 0.94) & (freqs < 600 * 1.06)
        spec[band] *= -1  # 180-degree phase shift of the band in one ear only
        right = np.fft.irfft(spec, n)
    env = 0.08 * _ramp(n, SR, 0.02)
    return np.stack([noise * env, right * env], axis=1)  # (T, 2)


def render(seed: int, kind: str, i: int, cfg: ScreeningConfig, draw: int = 0) -> np.ndarray:
    """The three intervals with gaps, stereo float32 (T, 2)."""
    key = answer_key(seed, kind, i, draw)
    n, gap = int(cfg.tone_s * SR), np.zeros((int(cfg.gap_s * SR), 2))
    name = _name(seed, kind, i, draw)
    rng = np.random.default_rng(random.Random(f"noise:{name}").getrandbits(32))
    parts = []
    for pos in (1, 2, 3):
        if kind == "antiphase":
            role = (
                "soft"
                if pos == key["target"]
                else ("antiphase" if pos == key["distractor"] else "normal")
            )
            parts.append(_antiphase_interval(role, n))
        else:
            parts.append(_huggins_interval(pos == key["target"], n, rng))
        if pos < 3:
            parts.append(gap)
    return np.concatenate([gap[: SR // 4]] + parts).astype(np.float32)


def score(answers: list[dict], kind: str) -> int:
    return sum(1 for a in answers if a["kind"] == kind and a["correct"])


def calibration_noise(seconds: float = 4.0) -> np.ndarray:
    """Pink-ish noise (1/f amplitude) for setting the volume, stereo float32 (T, 2)."""
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    pink = np.fft.irfft(spec / np.sqrt(freqs), n) * _ramp(n, SR)
    pink /= np.max(np.abs(pink))
    return np.stack([pink, pink], axis=1).astype(np.float32) * 0.5
