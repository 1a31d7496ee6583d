"""What a participant is served for a clip: its own rendition for each (participant, slot, part),
the study-normalised clip (`normalised_path`) plus TPDF dither at the 16-bit LSB and 0 to
PAD_MAX_S of digital silence before and after it, all drawn from a keyed seed.

Why: served as the one normalised file, a clip had the same bytes wherever it played, so the
identical-candidate catch trial's candidate was its reference byte for byte (same sha256, same
Content-Length in the devtools Size column), a repeat showed the same three files as its
original, and an attention check was the trial of never-seen files, for every participant alike.
A rendition's bytes, length and samples differ between slots, parts and participants; within a
slot the three parts differ in length. Inaudible: the dither changes each sample by at most one
LSB (noise at about -101 dBFS), the silence lasts at most 2 x 30 ms and the loudness is unchanged.
Its limit: someone who decodes two sounds and cross-correlates them still finds that they are
the same recording (docs/site.md, "Refusals and blindness").

The seed is an HMAC under the site's SECRET_KEY: the participant's design seed is exported with
the data and this code is public, so a seed from them alone could be recomputed and the dither
subtracted. One URL keeps its bytes (browser cache, byte ranges) as long as SECRET_KEY does.
Each request renders the rendition afresh (a 10 s stereo 44.1 kHz clip: see docs/site.md for
the measured time), and nothing is stored per participant.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from pathlib import Path

import numpy as np
import soundfile as sf
from django.conf import settings

PAD_MAX_S = 0.030  # most silence before, and most after, the clip
PARTS = ("r", "A", "B")


def _rng(*labels: object) -> np.random.Generator:
    message = ":".join(str(label) for label in labels).encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def pads(key: object, slot: int, sr: int) -> dict[str, tuple[int, int]]:
    """(frames of silence before, after) for each part of the slot: each 0..PAD_MAX_S, and three
    different totals, so that no two parts of one trial have the same length when their clips do
    (the identical-candidate catch trial's reference and candidate)."""
    most = round(PAD_MAX_S * sr)
    rng = _rng("pads", key, slot, sr)
    totals = rng.choice(2 * most + 1, size=len(PARTS), replace=False)
    leads = [int(rng.integers(max(0, t - most), min(t, most) + 1)) for t in totals]
    return {k: (lead, int(t) - lead) for k, lead, t in zip(PARTS, leads, totals, strict=True)}


def vary(samples: np.ndarray, lead: int, tail: int, rng: np.random.Generator) -> np.ndarray:
    """16-bit samples (T, C) padded with silence and dithered: (lead + T + tail, C) int16.

    The samples are already quantised, so TPDF dither of +-1 LSB followed by rounding adds -1, 0
    or +1 LSB with probabilities 1/8, 3/4, 1/8 (round(u1 - u2), u1, u2 uniform on [0, 1)): drawn
    directly as such, the padding included, so the clip's edges are not marked by exact zeros."""
    t, c = samples.shape
    out = np.zeros((lead + t + tail, c), dtype=np.int32)
    out[lead : lead + t] = samples
    draw = rng.integers(0, 8, size=out.shape, dtype=np.uint8)
    out += (draw == 7).view(np.int8)
    out -= (draw == 0).view(np.int8)
    return np.clip(out, -32768, 32767).astype(np.int16)


def rendition(path: Path, key: object, slot: int, part: str) -> bytes:
    """WAV bytes of the clip file at `path` as the slot's `part` is served to the participant
    of `key`. The same arguments give the same bytes."""
    samples, sr = sf.read(str(path), dtype="int16", always_2d=True)  # (T, C)
    lead, tail = pads(key, slot, sr)[part]
    varied = vary(samples, lead, tail, _rng("dither", key, slot, part))
    buf = io.BytesIO()
    sf.write(buf, varied, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()
