"""When audio counts as silent: the one rule of the catalogue (evalsite.stimuli.audio), of
`csn embed` (csn_model.inference) and of the data layer (csn_model.data.slakh_track: silent stems
and the energy envelope of active segments). A file is silent when its peak above
SILENCE_HIGHPASS_HZ, over every channel, is below SILENCE_DBFS: a constant offset (DC) or a slow
drift moves the speaker cone but makes no sound, so a file of constant 0.5 is as silent as one of
zeros. `csn embed` applies the rule to the mono mix the model hears (a stereo file whose channels
cancel is silent there), the catalogue to the channels as stored.
"""

from __future__ import annotations

import numpy as np

SILENCE_DBFS = -60.0  # a peak (above the high-pass) below this is silence
SILENCE_PEAK = 10 ** (SILENCE_DBFS / 20)  # the same threshold as a linear peak (0.001)
SILENCE_HIGHPASS_HZ = 20.0  # silence is judged above this: below it nothing is heard
BLOCK = 1 << 16  # samples filtered at a time


class HighPass:
    """The 4th-order Butterworth high-pass at SILENCE_HIGHPASS_HZ, run over consecutive blocks
    (T, C) of one signal. The filter starts settled on the first sample (no step from silence
    into an offset), so a constant signal comes out as zeros from its first sample on."""

    def __init__(self, sr: int):
        # scipy.signal loads scipy.stats (~1 s): imported where a filter is made, not with the
        # constants the site reads at start-up (tests/test_startup_imports.py).
        from scipy import signal

        self._signal = signal
        self.sos = signal.butter(4, SILENCE_HIGHPASS_HZ, "highpass", fs=sr, output="sos")  # (2, 6)
        self.state: np.ndarray | None = None  # (2, 2, C) once the first block is seen

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """The next block (T, C), filtered (T, C) float64."""
        if not len(block):
            return np.zeros(block.shape, dtype=np.float64)
        if self.state is None:
            # (2, 2): the state for a constant input of 1
            settled = self._signal.sosfilt_zi(self.sos)
            self.state = settled[:, :, None] * block[0].astype(np.float64)[None, None, :]
        out, self.state = self._signal.sosfilt(self.sos, block, axis=0, zi=self.state)
        return out


def audible_peak(data: np.ndarray, sr: int) -> float:
    """Peak of `data` (T, C) after the high-pass at SILENCE_HIGHPASS_HZ (a file of constant 0.5
    has a peak near 0, about -220 dBFS). Runs in blocks, holding a few MB at most whatever the
    file's length; 0 for no samples."""
    if not data.size:
        return 0.0
    hp = HighPass(sr)
    peak = 0.0
    for start in range(0, data.shape[0], BLOCK):
        peak = max(peak, float(np.max(np.abs(hp(data[start : start + BLOCK])))))
    return peak


def is_silent(peak: float) -> bool:
    """A peak measured by audible_peak (or through HighPass) that counts as silence."""
    return peak < SILENCE_PEAK
