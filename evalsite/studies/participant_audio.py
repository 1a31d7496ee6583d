"""The participant's sounds: the clips of the current trial by display position only (`audio`:
the URL never names a clip, and the bytes are the slot's own rendition, `served_audio`), the
current screening trial as its page drew it, and calibration noise. Separate from the pages
(`participant`, `participant_steps`): these are served to the page's audio elements, to the same
browser only (`participant.own_participant`).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.utils import timezone

from evalsite.stimuli.audio import normalise, normalised_path, wav_bytes
from evalsite.stimuli.serving import serve_audio
from evalsite.studies import flow_screening, flow_trials, screening
from evalsite.studies.models import Participant
from evalsite.studies.participant import own_participant
from evalsite.studies.served_audio import Rendition, participant_key

Step = Participant.Step


def audio(request: HttpRequest, token: str, slot: int, part: str) -> HttpResponseBase:
    """A clip of the participant's current trial, by display position only (r, A or B), named
    by the current slot's id: a slot keeps its id and its trial when a return renumbers the
    list (`design_return`), so a URL always serves the same clip and the browser may keep it
    (`Cache-Control: private, max-age=3600`, replays); by the slot's number, a URL cached for
    one trial would have served another's after a renumbering. Each (participant, slot, part) is
    served its own rendition of the normalised clip (`served_audio`), the same for each request."""
    p = own_participant(request, token)
    if p is None or p.step not in (Step.PRACTICE, Step.TRIALS):
        raise Http404
    current = flow_trials.current_slot(p)
    if current is None or current.pk != slot or part not in ("r", "A", "B"):
        raise Http404
    t = current.trial
    shown_b = "b" if current.displayed_first == "a" else "a"
    canonical = {"r": None, "A": current.displayed_first, "B": shown_b}[part]
    clip = {None: t.reference, "a": t.candidate_a, "b": t.candidate_b}[canonical]
    try:
        path = normalised_path(clip, float(p.study.setting("loudness_target_lufs")))
    except FileNotFoundError:
        raise Http404 from None
    # Its own rendition (dither, silence around it): the same clip in two slots or positions, or
    # to two participants, is never the same bytes (served_audio).
    return serve_audio(request, Rendition(path, participant_key(p.pk, p.seed), current.pk, part))


def _cached_wav(name: str, make) -> Path:
    folder = Path(settings.MEDIA_ROOT) / "generated"
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{timezone.now().timestamp()}.tmp")
        tmp.write_bytes(wav_bytes(*make()))
        tmp.replace(path)
    return path


def screening_audio(request: HttpRequest, token: str, n: int, draw: int) -> HttpResponseBase:
    """The participant's current screening trial as its page drew it, rendered for each request
    (~9 ms, ~0.75 MB) and never written to disk: the stimuli are the participant's own (its
    seed), and files kept per participant added up to ~9 MB each. The draw is in the URL so that
    a reloaded page never plays a cached earlier draw."""
    p = own_participant(request, token)
    if p is None or p.step != Step.SCREENING or n != len(p.screening.get("answers", [])):
        raise Http404
    position = flow_screening.screening_position(p)  # None: answered to its end (another tab)
    if draw != flow_screening.screening_draw(p) or position is None:
        raise Http404
    kind, i = position
    signal = screening.render(p.seed, kind, i, screening.config(), draw)
    return serve_audio(request, wav_bytes(signal, screening.SR))


def calibration_audio(request: HttpRequest, token: str) -> HttpResponseBase:
    """Pink noise at the study's loudness target, for setting a comfortable volume."""
    p = own_participant(request, token)
    if p is None:
        raise Http404
    target = float(p.study.setting("loudness_target_lufs"))
    seconds = screening.config().calibration_s

    def make():
        noise, _gain = normalise(screening.calibration_noise(seconds), screening.SR, target)
        return noise, screening.SR

    return serve_audio(request, _cached_wav(f"calibration_{target:+.1f}_{seconds:g}.wav", make))
