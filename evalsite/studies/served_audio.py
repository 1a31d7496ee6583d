"""What a participant is served for a clip: its own rendition for each (participant, slot, part),
the study-normalised clip (`normalised_path`) plus TPDF dither at the 16-bit LSB and 0 to
PAD_MAX_S of digital silence before and after it, all drawn from a keyed seed.

Why: served as the one normalised file, a clip had the same bytes wherever it played, so the
identical-candidate catch trial's candidate was its reference byte for byte (same sha256, same
Content-Length in the devtools Size column), a repeat showed the same three files as its
original, and an attention check was the trial of never-seen files, for every participant alike.
A rendition's bytes, length and samples differ between slots, parts and participants; within a
slot the three parts differ in length. Inaudible: the dither changes each sample by at most one
LSB (noise of 0.5 LSB RMS, ~96 dB below full scale), the silence lasts at most 2 x 30 ms. Its
limit: someone who decodes two sounds and cross-correlates them still finds that they are the
same recording (docs/site.md, "Refusals and blindness").

The seed is an HMAC under the site's SECRET_KEY: the participant's design seed is exported with
the data and this code is public, so a seed from them alone could be recomputed and the dither
subtracted. One URL keeps its bytes (browser cache, byte ranges) as long as SECRET_KEY does
(and numpy's PCG64 stream, which `Generator.bytes` reads unchanged).

Nothing is stored: a response renders the bytes it sends as it streams them, a chunk at a time
from the clip's file (the dither is drawn per BLOCK of frames, each from its own seed), so a
byte range renders only the frames it covers and no request holds the whole file in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
from django.conf import settings

PAD_MAX_S = 0.030  # most silence before, and most after, the clip
PARTS = ("r", "A", "B")
BLOCK = 16384  # frames per dither draw
HEADER = 44  # bytes of a canonical PCM WAV header: RIFF, fmt and data chunks only
CHUNK = 64 * 1024  # bytes rendered per read while a response streams


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


def participant_key(participant_id: int, seed: int) -> str:
    """The key a participant's renditions are drawn under (with the site's SECRET_KEY)."""
    return f"{participant_id}.{seed}"


def padding_s(key: object, slot: int, rates: dict[str, int | None]) -> float:
    """Seconds of silence the slot's renditions add to their clips, summed over the parts in
    `rates` (part -> its clip's sample rate; None, unknown, adds nothing). What the listening
    check adds to the clips' durations (`participant_writes.mark_shown`)."""
    drawn = {sr: pads(key, slot, sr) for sr in set(rates.values()) if sr}  # one draw per rate
    return sum(sum(drawn[sr][part]) / sr for part, sr in rates.items() if sr)


class Rendition:
    """The WAV a slot's part is served as (16-bit PCM, the clip file's rate and channels):
    `size` bytes, any range of them rendered on demand (`read`), the same on every call. The
    clip file must be 16-bit PCM, as every stored one is (`stimuli.audio.wav_bytes`): its samples
    are copied as int16, and soundfile does not scale a float file's to int16 (0.5 reads as 0)."""

    def __init__(self, path: Path, key: object, slot: int, part: str) -> None:
        info = sf.info(str(path))
        if info.subtype != "PCM_16":
            raise ValueError(
                f"{path}: {info.format} audio of subtype {info.subtype}; expected PCM_16 "
                "(16-bit PCM, as the site stores clips): it is served as a copy of its samples"
            )
        self.path, self.labels = path, ("dither", key, slot, part)
        self.sr, self.channels, self.frames = int(info.samplerate), info.channels, info.frames
        self.lead, self.tail = pads(key, slot, self.sr)[part]
        self.total = self.lead + self.frames + self.tail  # frames served
        self.size = HEADER + 2 * self.channels * self.total
        self._dither: tuple[int, np.ndarray] = (-1, np.zeros((0, self.channels), np.int8))

    def header(self) -> bytes:
        c, data = self.channels, 2 * self.channels * self.total
        fmt = (1, c, self.sr, 2 * c * self.sr, 2 * c, 16)  # PCM, rate, bytes/s, frame, bits
        return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", HEADER - 8 + data, b"WAVE", b"fmt ", 16,
                           *fmt, b"data", data)  # fmt: skip

    def samples(self, first: int, last: int, source: sf.SoundFile) -> np.ndarray:
        """Served frames [first, last): the clip's, padded and dithered. (last - first, C) int16.

        The clip's samples are already quantised, so TPDF dither of +-1 LSB and rounding adds
        -1, 0 or +1 LSB with probabilities 1/8, 3/4, 1/8 (round(u1 - u2), u1 and u2 uniform on
        [0, 1)): drawn as such, over the padding too, so exact zeros do not mark the clip's
        edges."""
        out = np.zeros((last - first, self.channels), dtype=np.int32)  # (n, C)
        a, b = max(first - self.lead, 0), min(last - self.lead, self.frames)  # clip frames
        if a < b:
            source.seek(a)
            out[a + self.lead - first : b + self.lead - first] = source.read(
                b - a, dtype="int16", always_2d=True
            )
        for block in range(first // BLOCK, (last - 1) // BLOCK + 1):
            base = block * BLOCK
            lo, hi = max(first, base), min(last, base + BLOCK)
            out[lo - first : hi - first] += self.dither(block)[lo - base : hi - base]
        return np.clip(out, -32768, 32767).astype("<i2")

    def dither(self, block: int) -> np.ndarray:
        """The block's dither in LSB, (BLOCK, C) int8; the last one is kept, since a streamed
        read of CHUNK bytes ends inside the block the next read begins in."""
        if self._dither[0] != block:
            raw = _rng(*self.labels, block).bytes(BLOCK * self.channels)  # 2.7x integers()'s speed
            draw = np.frombuffer(raw, np.uint8).reshape(BLOCK, self.channels) & 7  # 0..7 uniform
            self._dither = (block, (draw == 7).view(np.int8) - (draw == 0).view(np.int8))
        return self._dither[1]

    def read(self, start: int, end: int, source: sf.SoundFile | None = None) -> bytes:
        """Bytes [start, end) of the WAV (a SoundFile of the clip kept open by the caller, or
        opened for this read)."""
        end = min(end, self.size)
        if start >= end:
            return b""
        head = self.header()[start:end] if start < HEADER else b""
        frame = 2 * self.channels
        lo, hi = max(start, HEADER) - HEADER, end - HEADER  # data bytes
        if hi <= lo:
            return head
        first, last = lo // frame, -(-hi // frame)
        if source is None:
            with sf.SoundFile(str(self.path)) as opened:
                body = self.samples(first, last, opened).tobytes()
        else:
            body = self.samples(first, last, source).tobytes()
        return head + body[lo - first * frame : hi - first * frame]

    def open(self) -> io.BufferedReader:
        """A seekable binary file of the WAV for a response to stream (`serving.serve_audio`)."""
        return io.BufferedReader(_RenditionFile(self), CHUNK)

    def bytes(self) -> bytes:
        return self.read(0, self.size)


class _RenditionFile(io.RawIOBase):
    def __init__(self, rendition: Rendition) -> None:
        self.rendition, self.position = rendition, 0
        self.source = sf.SoundFile(str(rendition.path))  # open while the response streams

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.rendition.size}
        self.position = max(base[whence] + offset, 0)
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        data = self.rendition.read(self.position, self.position + len(buffer), self.source)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.source.close()
        super().close()


def rendition(path: Path, key: object, slot: int, part: str) -> bytes:
    """The whole WAV of the clip file at `path` as the slot's `part` is served to the
    participant of `key`. The same arguments give the same bytes."""
    return Rendition(path, key, slot, part).bytes()
