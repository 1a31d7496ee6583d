# Cost of one participant audio response (studies/served_audio.py): a 10 s stereo 44.1 kHz clip
# rendered and read to its end in the 4096-byte blocks Django's FileResponse streams, 200 times
# (a new slot each time). Run from the repository root:
#   .venv/bin/python manage.py shell -c "$(cat docs/snippets/rendition_cost.py)"
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from evalsite.studies.served_audio import Rendition

path = Path(tempfile.mkdtemp()) / "clip.wav"
noise = 0.1 * np.random.default_rng(0).standard_normal((441000, 2))  # (T, C)
sf.write(str(path), noise, 44100, subtype="PCM_16")
times = []
for slot in range(200):
    t0 = time.perf_counter()
    with Rendition(path, "1.1", slot, "A").open() as stream:
        size = sum(len(b) for b in iter(lambda: stream.read(4096), b""))
    times.append(time.perf_counter() - t0)
ms = 1000 * np.array(times)
print(f"{size} bytes; {np.median(ms):.1f} ms median, {np.percentile(ms, 90):.1f} ms p90 (n=200)")
