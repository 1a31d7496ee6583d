"""A sound whose download stops part-way (the network stalls mid-file) in real headless Chromium.

The clip's requests go to a small server of the test's own that sends the file up to a byte,
then nothing: the media element plays what it has, then waits for ever, as it does on a
connection that stops without an error. The page must say so and let the participant play it
again, and the answers stay locked until the clip really played to its end.
"""

from __future__ import annotations

import io
import re
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from django.urls import reverse

from evalsite.studies.models import Answer, Participant
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_steps import scripted, through_calibration
from tests.evalsite.studies.conftest import make_catalogue, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Chromium reports a WAV's metadata (and so starts it) only once it has about 5 s of it or all
# of it: the clips are longer than that, the stalling one is sent up to 80 % (6.4 s).
CLIP_S = 8.0
SENT = 0.8
RATE = 4  # the clips play this much faster, so the test does not wait out 8 s clips
STALL_MS = 500  # the page's stall watchdog, shortened (its default is several seconds)


@pytest.fixture
def stalling_server():
    """serve(body) -> a URL answering for body (ranges too, as the site's audio views do) but
    sending nothing past SENT of it: each connection then stays open, silent, until the test
    ends."""
    done = threading.Event()
    served = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            body = served["body"]
            asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            start = int(asked.group(1)) if asked else 0
            self.send_response(206 if asked else 200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Accept-Ranges", "bytes")
            if asked:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start : int(len(body) * SENT)])
            self.wfile.flush()
            done.wait(60)

        def log_message(self, *args):  # quiet: the test's output is pytest's
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(body: bytes) -> str:
        served["body"] = body
        return f"http://127.0.0.1:{server.server_port}/clip.wav"

    yield serve
    done.set()
    server.shutdown()
    server.server_close()


def to_first_trial(live_server, page, owner, pid: str) -> Participant:
    # No listening time checked by the server: the clips play faster than it counts.
    study = make_study(owner, make_catalogue(owner, seconds=CLIP_S), per_instrument=1,
                       screening=False, practice_trials=0, min_listen_share=0)  # fmt: skip
    entry = reverse("studies:entry", args=[study.slug])
    page.goto(f"{live_server.url}{entry}?pid={pid}")
    through_calibration(page)
    page.click("#continue")  # instructions (no screening, no practice in this study)
    page.wait_for_selector("#play-r")
    return Participant.objects.get(external_pid=pid)


def stall_clip(live_server, page, stalling_server, key: str) -> None:
    """From the next page load on, clip `key` stalls part-way through its download."""
    src = page.get_attribute(f"audio[data-key='{key}']", "src")
    body = page.request.get(live_server.url + src).body()
    url = stalling_server(body)
    page.route(f"**/audio/*/{key}", lambda route: route.continue_(url=url))


def fast_watchdog_and_clips(page) -> None:
    page.evaluate(f"""() => {{
        document.querySelector('form[data-listen]').dataset.stallMs = '{STALL_MS}';
        document.querySelectorAll('audio').forEach(a => {{  // load() keeps the default rate
            a.defaultPlaybackRate = a.playbackRate = {RATE}; }}); }}""")


def test_a_clip_that_stalls_mid_play_says_so_and_plays_again_to_unlock(
    live_server, page, owner, stalling_server
):
    p = to_first_trial(live_server, page, owner, "stalls-mid-play")
    stall_clip(live_server, page, stalling_server, "A")
    page.reload()
    scripted(page)
    fast_watchdog_and_clips(page)
    for key in ("r", "B"):
        page.click(f"#play-{key}")
        page.wait_for_selector(f"[data-state='{key}'][data-value='done']")
    page.click("#play-A")
    page.wait_for_selector("[data-state='A'][data-value='stalled']", state="attached", timeout=5000)
    assert page.evaluate("document.querySelector(\"audio[data-key='A']\").currentTime") > 0
    assert page.is_disabled("#choose-A") and page.is_disabled("#choose-B")  # A did not end
    assert page.is_enabled("#play-A") and "playing" not in page.get_attribute("#play-A", "class")
    assert "Press its play button" in page.inner_text("[data-stalled]")  # visible
    assert page.is_hidden("[data-load-error]")  # it loaded and played: nothing failed
    color = "getComputedStyle(document.querySelector(\"[data-state='{}']\")).color"
    assert page.evaluate(color.format("A")) != page.evaluate(color.format("r"))  # not a ✓'s green

    page.unroute("**/audio/*/A")  # the network is back
    page.click("#play-A")  # played again, it is asked for again and now plays to its end
    page.wait_for_selector("[data-state='A'][data-value='done']")
    page.wait_for_selector("#choose-A:not([disabled])")
    assert page.is_hidden("[data-stalled]")
    with page.expect_navigation():
        page.keyboard.press("a")
    answer = Answer.objects.get(participant=p)
    # The answer stores candidates in canonical order: the clip shown as A is canonical "b"
    # when the participant's seeded A/B balance displayed b first.
    shown_a = "a" if answer.displayed_first == "a" else "b"
    assert getattr(answer, f"plays_{shown_a}") == 2  # the stalled play counts: part was heard
    assert getattr(answer, f"heard_{shown_a}") > 0.9
    assert answer.client["plays"]["A"] == 2  # the page's own log is by displayed position
    assert any(what == "stalled A" for _, what in answer.client["events"])


def long_wav(seconds: float = CLIP_S, sr: int = 22050) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())
    return out.getvalue()


@pytest.mark.slow  # the play-once variant of the stalled clip, which stays in the default tier
def test_a_play_once_sound_that_stalls_mid_play_asks_for_a_reload(
    live_server, page, owner, stalling_server
):
    # Played part-way, it stays played (no second hearing): a reload draws new sounds.
    study = make_study(owner, make_catalogue(owner, seconds=1.2), per_instrument=1)
    page.goto(f"{live_server.url}{reverse('studies:entry', args=[study.slug])}?pid=once")
    through_calibration(page)
    page.wait_for_selector("input[name=n][value='0']", state="attached")
    url = stalling_server(long_wav())  # the screening's sounds are too short to start early
    page.route("**/screening/*/*", lambda route: route.continue_(url=url))
    page.reload()
    scripted(page)
    fast_watchdog_and_clips(page)
    page.click("#play")
    page.wait_for_selector("[data-stalled]", state="visible", timeout=5000)
    assert "reload this page" in page.inner_text("[data-stalled]")
    assert page.is_disabled("#play") and page.is_disabled("[data-choice='1']")
    page.unroute("**/screening/*/*")
    page.reload()
    page.wait_for_selector("input[name=draw][value='2']", state="attached")  # new sounds
    scripted(page)
    page.click("#play")
    page.wait_for_selector("[data-choice='1']:not([disabled])")
    assert page.is_hidden("[data-stalled]")
