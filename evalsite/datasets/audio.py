"""Serve dataset audio with HTTP range requests (seeking in <audio>), confined to the dataset."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from csn_model.data.slakh import SPLITS

AUDIO_TYPES = {".flac": "audio/flac", ".wav": "audio/wav"}
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def resolve_inside(root: Path, relpath: str) -> Path:
    """The audio file at root/relpath, confined to the dataset: relpath must not be absolute or
    hold "..", and what it names must resolve inside the root or, for SPLIT/TRACK/..., inside
    that track folder. A track folder may be a symlink (a subset of a Slakh copy made of linked
    track folders, which the listing, the reader and the import accept); a file or stems folder
    linking out of its track folder is still refused, and so is anything but .flac/.wav."""
    parts = PurePosixPath(relpath).parts
    if not parts or PurePosixPath(relpath).is_absolute() or ".." in parts:
        raise Http404("no such audio file")
    root = root.resolve()
    try:
        path = (root / relpath).resolve(strict=True)
        track = _track_folder(root, parts)
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte in the path
        raise Http404("no such audio file") from None
    inside = path.is_relative_to(root) or (track is not None and path.is_relative_to(track))
    if not inside or not path.is_file():
        raise Http404("no such audio file")
    if path.suffix.lower() not in AUDIO_TYPES:
        raise Http404("not an audio file")
    return path


def _track_folder(root: Path, parts: tuple[str, ...]) -> Path | None:
    """The resolved track folder of SPLIT/TRACK/FILE..., as the listing finds it (a folder of
    a split, not hidden, symlinks followed); None when the path names none."""
    if len(parts) < 3 or parts[0] not in SPLITS or parts[1].startswith("."):
        return None
    folder = root / parts[0] / parts[1]
    return folder.resolve(strict=True) if folder.is_dir() else None


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte, inclusive, for a single-range header; None when unsatisfiable."""
    m = RANGE.match(header.strip())
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":  # suffix: the last N bytes
        n = int(m.group(2))
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


def audio_response(request, path: Path) -> HttpResponseBase:
    content_type = AUDIO_TYPES[path.suffix.lower()]
    size = path.stat().st_size
    header = request.headers.get("Range")
    response: HttpResponseBase
    if not header:
        response = FileResponse(path.open("rb"), content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        return response
    span = parse_range(header, size)
    if span is None:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    first, last = span
    response = StreamingHttpResponse(
        _read_span(path, first, last - first + 1), status=206, content_type=content_type
    )
    response["Content-Length"] = str(last - first + 1)
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response


def _read_span(path: Path, first: int, length: int):
    with path.open("rb") as f:
        f.seek(first)
        while length > 0:
            data = f.read(min(CHUNK, length))
            if not data:
                return
            length -= len(data)
            yield data
