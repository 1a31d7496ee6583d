"""The length a WAV or AIFF file's header declares, read from the header itself.

libsndfile clamps a WAV's or AIFF's frame count to the data the file holds, so a file cut short
(an interrupted copy, upload or download) opens as a shorter, intact-looking one: its header
says 4 s, libsndfile reports and decodes 1.33 s. Comparing the two tells it apart. (A FLAC
header's total, STREAMINFO, is reported as written: a cut FLAC fails to decode instead.)
"""

from __future__ import annotations

import struct
from pathlib import Path

# Writers that cannot seek back (a pipe) leave a placeholder for the data size: ffmpeg
# 0xFFFFFFFF, SoX 0x7FFFF000, others 0. Sizes from here up (over 2 GB), or 0, say nothing.
UNKNOWN_SIZE_FROM = 0x7FFFF000
# WAV format tags whose data holds whole frames of `block_align` bytes (PCM, IEEE float, A-law,
# mu-law; EXTENSIBLE carries one of these as its subformat): compressed data (ADPCM, GSM) is
# not counted in frames that way and is left unchecked.
_FRAMED_WAV_TAGS = {0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE}
# AIFF-C compression types whose COMM frame count is a count of sample frames.
_FRAMED_AIFC = {b"NONE", b"sowt", b"twos", b"fl32", b"FL32", b"fl64", b"FL64", b"raw ", b"in24",
                b"in32", b"42ni", b"23ni", b"alaw", b"ulaw", b"ALAW", b"ULAW"}  # fmt: skip
_MAX_CHUNKS = 1000  # a header of more chunks than this is not walked to its end


def declared_frames(path: str | Path) -> int | None:
    """The frame count the header of the WAV (RIFF, RIFX, RF64) or AIFF/AIFF-C file at `path`
    declares; None for other formats, compressed data, or a header that does not say (a
    streaming writer's placeholder) or cannot be walked (libsndfile then reports its own
    error)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return None
        if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
            return _wav_frames(f, "<" if head[:4] != b"RIFX" else ">", head[:4] == b"RF64")
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _aiff_frames(f)
    return None


def _chunks(f, order: str):
    """(id, size, offset of its data) of each chunk after a RIFF/FORM header, in file order."""
    pos = 12
    for _ in range(_MAX_CHUNKS):
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return
        cid, size = header[:4], struct.unpack(f"{order}I", header[4:])[0]
        yield cid, size, pos + 8
        pos += 8 + size + (size & 1)  # chunks are padded to an even size


def _wav_frames(f, order: str, rf64: bool) -> int | None:
    block_align, data_size = 0, None
    for cid, size, offset in _chunks(f, order):
        f.seek(offset)
        if cid == b"ds64" and size >= 16:  # RF64: the 64-bit sizes, the data chunk's second
            data_size = struct.unpack(f"{order}Q", f.read(16)[8:])[0]
        elif cid == b"fmt " and size >= 16:
            tag, _channels, _rate, _rate_bytes, block_align = struct.unpack(
                f"{order}HHIIH", f.read(14)
            )
            if tag not in _FRAMED_WAV_TAGS:
                return None
        elif cid == b"data":
            if not (rf64 and size == 0xFFFFFFFF):
                data_size = size
            break
    else:
        return None  # no data chunk: not a file libsndfile opens either
    if not block_align or data_size is None or not 0 < data_size < UNKNOWN_SIZE_FROM:
        return None
    return data_size // block_align


def _aiff_frames(f) -> int | None:
    for cid, size, offset in _chunks(f, ">"):
        if cid != b"COMM" or size < 18:
            continue
        f.seek(offset)
        comm = f.read(min(size, 22))
        channels, frames, bits = struct.unpack(">HIH", comm[:8])
        if len(comm) >= 22 and comm[18:22] not in _FRAMED_AIFC:
            return None
        frame_bytes = channels * -(-bits // 8)
        if not frames or frames * frame_bytes >= UNKNOWN_SIZE_FROM:
            return None
        return frames
    return None
