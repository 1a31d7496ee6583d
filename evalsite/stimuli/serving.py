"""Serving audio with HTTP range requests (browsers seek and stream <audio> that way), from a file,
from bytes made for the request, or from bytes rendered while they stream (`Rendered`).

Responses carry no file name (no Content-Disposition) and no file date (no Last-Modified), and are
private to the browser, so a response reveals nothing about the clip beyond its bytes and shared
caches never hand one participant's audio to another.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


class Rendered(Protocol):
    """Audio made as it is sent (`studies.served_audio.Rendition`): its size in bytes, and a
    seekable binary file of it, opened for each response."""

    size: int

    def open(self) -> BinaryIO: ...


def _file_range(handle, start: int, length: int):
    handle.seek(start)
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        yield chunk
    handle.close()


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range, or None if absent/unsatisfiable."""
    match = RANGE_RE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            return None
        return max(size - n, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


def serve_audio(
    request: HttpRequest, source: Path | bytes | Rendered, content_type: str = "audio/wav"
) -> HttpResponseBase:
    """200 with the whole file (or bytes), 206 for a satisfiable single bytes range, 416 for an
    unsatisfiable one; 404 when the file is missing. Other Range headers are ignored (200)."""
    opener: Callable[[], BinaryIO]
    if isinstance(source, bytes):
        size, opener = len(source), lambda: io.BytesIO(source)
    elif not isinstance(source, Path):
        size, opener = source.size, source.open
    else:
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            raise Http404("No such audio file.") from None
        opener = lambda: source.open("rb")  # noqa: E731
    header = request.headers.get("Range", "").strip()
    # RFC 9110 14.2: a Range the server does not serve (another unit, several ranges) is
    # ignored, and so is any Range under If-Range: no validator is sent, so none can match.
    if not header.startswith("bytes=") or "," in header or "If-Range" in request.headers:
        header = ""
    response: HttpResponseBase
    if header:
        span = parse_range(header, size)
        if span is None:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        start, end = span
        length = end - start + 1
        response = StreamingHttpResponse(
            _file_range(opener(), start, length), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(length)
    else:
        response = FileResponse(opener(), content_type=content_type)
        response["Content-Length"] = str(size)
        if "Content-Disposition" in response:  # FileResponse names the file: don't
            del response["Content-Disposition"]
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
