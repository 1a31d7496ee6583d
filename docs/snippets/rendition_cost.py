# Cost of one participant audio response (studies/served_audio.py): a 10 s stereo 44.1 kHz clip
# rendered and read to its end in the 4096-byte blocks Django's FileResponse streams, 200 times
# (a new slot each time), and the plain file read the same way; wall time and this thread's CPU
# time (less disturbed by other load on the machine). Run from the repository root:
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


def timed(opener) -> tuple[list[float], list[float], int]:
    wall, cpu = [], []
    for slot in range(200):
        w0, c0 = time.perf_counter(), time.thread_time()
        with opener(slot) as stream:
            size = sum(len(b) for b in iter(lambda: stream.read(4096), b""))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.thread_time() - c0)
    return wall, cpu, size


for name, opener in (
    ("rendition", lambda slot: Rendition(path, "1.1", slot, "A").open()),
    ("plain file", lambda slot: path.open("rb")),
):
    wall, cpu, size = timed(opener)
    w, c = 1000 * np.array(wall), 1000 * np.array(cpu)
    print(f"{name}: {size} bytes; wall {np.median(w):.2f} ms median, {np.percentile(w, 90):.2f}"
          f" p90; CPU {np.median(c):.2f} ms median")  # fmt: skip
