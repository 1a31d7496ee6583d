"""When audio counts as silent: the one rule of the catalogue (evalsite.stimuli.audio) and of
`csn embed` (csn_model.inference). A file is silent when its peak above SILENCE_HIGHPASS_HZ, over
every channel, is below SILENCE_DBFS: a constant offset (DC) or a slow drift moves the speaker
cone but makes no sound, so a file of constant 0.5 is as silent as one of zeros.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

SILENCE_DBFS = -60.0  # a peak (above the high-pass) below this is silence
SILENCE_HIGHPASS_HZ = 20.0  # silence is judged above this: below it nothing is heard
BLOCK = 1 << 16  # samples filtered at a time


def audible_peak(data: np.ndarray, sr: int) -> float:
    """Peak of `data` (T, C) after a 4th-order Butterworth high-pass at SILENCE_HIGHPASS_HZ (a
    file of constant 0.5 has a peak near 0, about -220 dBFS). The filter starts settled on the
    first sample (no step from silence into the offset) and runs in blocks, holding a few MB at
    most whatever the file's length; 0 for no samples."""
    if not data.size:
        return 0.0
    sos = signal.butter(4, SILENCE_HIGHPASS_HZ, "highpass", fs=sr, output="sos")  # (2, 6)
    settled = signal.sosfilt_zi(sos)  # (2, 2): the state for a constant input of 1
    peak = 0.0
    for channel in data.T:  # (T,) each
        state = settled * float(channel[0])
        for start in range(0, channel.size, BLOCK):
            out, state = signal.sosfilt(sos, channel[start : start + BLOCK], zi=state)
            peak = max(peak, float(np.max(np.abs(out))))
    return peak
