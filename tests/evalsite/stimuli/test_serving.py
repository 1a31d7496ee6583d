"""Byte ranges for <audio>: whole file, partial content, suffix ranges, unsatisfiable ranges."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from evalsite.stimuli.serving import parse_range, serve_audio


@pytest.mark.parametrize(
    ("header", "expected"),
    [("bytes=0-99", (0, 99)), ("bytes=100-", (100, 999)), ("bytes=-10", (990, 999)),
     ("bytes=900-5000", (900, 999)), ("bytes=1000-", None), ("bytes=5-1", None),
     ("items=0-1", None), ("bytes=-", None)],
)  # fmt: skip
def test_it_parses_single_byte_ranges(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(bytes(range(256)) * 4)
    return path


def test_it_serves_partial_content(wav):
    response = serve_audio(RequestFactory().get("/", HTTP_RANGE="bytes=10-19"), wav)
    assert response.status_code == 206
    assert response["Content-Range"] == "bytes 10-19/1024"
    assert b"".join(response.streaming_content) == bytes(range(10, 20))


def test_it_serves_the_whole_file_without_naming_or_dating_it(wav):
    response = serve_audio(RequestFactory().get("/"), wav)
    assert response.status_code == 200 and response["Accept-Ranges"] == "bytes"
    assert "Content-Disposition" not in response and "Last-Modified" not in response
    assert b"".join(response.streaming_content) == wav.read_bytes()


@pytest.mark.parametrize(
    "headers",
    [{"HTTP_RANGE": "items=0-5"}, {"HTTP_RANGE": "bytes=0-1,5-6"},
     {"HTTP_RANGE": "bytes=0-9", "HTTP_IF_RANGE": '"some-etag"'}],
)  # fmt: skip
def test_it_ignores_a_range_it_does_not_serve_and_sends_the_whole_file(wav, headers):
    response = serve_audio(RequestFactory().get("/", **headers), wav)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == wav.read_bytes()


def test_it_answers_416_to_an_unsatisfiable_range(wav):
    response = serve_audio(RequestFactory().get("/", HTTP_RANGE="bytes=5000-"), wav)
    assert response.status_code == 416 and response["Content-Range"] == "bytes */1024"


def test_it_serves_bytes_made_for_the_request_whole_and_in_ranges(wav):
    data = wav.read_bytes()
    whole = serve_audio(RequestFactory().get("/"), data)
    assert whole.status_code == 200 and whole["Content-Length"] == "1024"
    assert b"".join(whole.streaming_content) == data
    part = serve_audio(RequestFactory().get("/", HTTP_RANGE="bytes=-4"), data)
    assert part.status_code == 206 and part["Content-Range"] == "bytes 1020-1023/1024"
    assert b"".join(part.streaming_content) == data[-4:]
