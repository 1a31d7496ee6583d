"""Note generators for each instrument role: drum grooves, bass lines, piano, guitar, others.

Each generator takes a `Bar` context (start time, beat length, chord, next chord, section) and a
numpy Generator, and returns Notes for that bar. Styles and patterns are chosen once per piece in
csn_model.data.compose, so a piece keeps its groove while pieces differ from one another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csn_model.data.render import Note

# General MIDI percussion keys.
KICK, SIDE, SNARE, CLAP = 36, 37, 38, 39
HH_CLOSED, HH_PEDAL, HH_OPEN = 42, 44, 46
TOM_LOW, TOM_MID, TOM_HIGH, TOM_HIGHER = 45, 47, 48, 50
CRASH, RIDE = 49, 51

# Drum grooves on a 16-step bar: instrument -> [(step, velocity)].
GROOVES: dict[str, dict[int, list[tuple[int, int]]]] = {
    "rock": {
        KICK: [(0, 110), (8, 105), (10, 90)],
        SNARE: [(4, 110), (12, 112)],
        HH_CLOSED: [(s, 85 if s % 4 == 0 else 65) for s in range(0, 16, 2)],
    },
    "funk": {
        KICK: [(0, 115), (3, 90), (10, 100)],
        SNARE: [(4, 112), (7, 45), (9, 40), (12, 112), (15, 45)],
        HH_CLOSED: [(s, 80 if s % 2 == 0 else 50) for s in range(16) if s != 14],
        HH_OPEN: [(14, 80)],
    },
    "disco": {
        KICK: [(s, 112) for s in (0, 4, 8, 12)],
        CLAP: [(4, 100), (12, 100)],
        HH_CLOSED: [(s, 70) for s in (0, 4, 8, 12)],
        HH_OPEN: [(s, 85) for s in (2, 6, 10, 14)],
    },
    "halftime": {
        KICK: [(0, 112), (3, 80), (11, 95)],
        SNARE: [(8, 115)],
        HH_CLOSED: [(s, 75 if s % 4 == 0 else 55) for s in range(0, 16, 2)],
    },
    "hiphop": {
        KICK: [(0, 115), (7, 95), (10, 105)],
        SNARE: [(4, 110), (12, 110)],
        HH_CLOSED: [(s, 80 if s % 4 == 0 else 60) for s in range(0, 16, 2)],
    },
    "bossa": {
        KICK: [(0, 95), (6, 80), (8, 95), (14, 80)],
        SIDE: [(0, 90), (6, 85), (12, 90), (10, 85)],
        HH_CLOSED: [(s, 60) for s in range(0, 16, 2)],
    },
    "jazz": {
        RIDE: [(0, 90), (4, 85), (7, 65), (8, 90), (12, 85), (15, 65)],
        HH_PEDAL: [(4, 70), (12, 70)],
        KICK: [(0, 60)],
        SNARE: [(11, 35)],
    },
}
SWING = {"hiphop": 0.55, "jazz": 0.62, "bossa": 0.0, "rock": 0.0, "funk": 0.0}


@dataclass(frozen=True)
class Bar:
    start: float  # seconds
    beat: float  # seconds per beat
    chord: tuple[int, ...]  # pitch classes relative to C, root first
    next_chord: tuple[int, ...]
    section: str  # intro, verse, chorus, bridge, outro
    index_in_section: int
    section_bars: int
    swing: float = 0.0  # 0 = straight; 0.6 = the off-beat 8th lands at 60% of the beat

    def step_time(self, step: float) -> float:
        """Time of a 16th step; odd 8ths are delayed by swing."""
        beat, sub = divmod(step, 4)
        if self.swing and sub == 2:
            sub = 4 * self.swing
        return self.start + (beat + sub / 4) * self.beat

    @property
    def last_in_section(self) -> bool:
        return self.index_in_section == self.section_bars - 1


def _jitter(rng, t: float, vel: int, dt: float = 0.006, dv: int = 8) -> tuple[float, int]:
    return t + float(rng.uniform(-dt, dt)), int(np.clip(vel + rng.integers(-dv, dv + 1), 1, 127))


def _pitch_near(pc: int, center: int) -> int:
    """The MIDI pitch with pitch class pc closest to center."""
    return center + ((pc - center + 6) % 12) - 6


# ---- drums -----------------------------------------------------------------------------------
def drums(bar: Bar, rng, style: str) -> list[Note]:
    groove = GROOVES[style]
    sparse = bar.section in {"intro", "outro"}
    notes = []
    for key, hits in groove.items():
        if sparse and key in {SNARE, CLAP, SIDE} and bar.index_in_section % 2 == 0:
            continue
        for step, vel in hits:
            t, v = _jitter(rng, bar.step_time(step), vel, dt=0.003, dv=6)
            if bar.section == "chorus" and key in {HH_CLOSED, RIDE}:
                v = min(127, v + 10)
            notes.append(Note(max(t, 0.0), t + 0.1, key, v))
    if bar.index_in_section == 0 and bar.section in {"chorus", "bridge", "verse"}:
        notes.append(Note(bar.start, bar.start + 1.5, CRASH, 100))
    if bar.last_in_section and bar.section_bars > 1:
        notes = [n for n in notes if n.start < bar.step_time(12)]
        for i, key in enumerate((TOM_HIGHER, TOM_HIGH, TOM_MID, TOM_LOW)):
            t, v = _jitter(rng, bar.step_time(12 + i), 95, dt=0.003)
            notes.append(Note(t, t + 0.15, key, v))
    return notes


# ---- bass ------------------------------------------------------------------------------------
BASS_PATTERNS = ("roots", "eighths", "root_fifth", "octaves", "syncopated", "walking")


def bass(bar: Bar, rng, pattern: str, center: int) -> list[Note]:
    root = _pitch_near(bar.chord[0], center)
    fifth = root + 7
    b = bar.beat
    if pattern == "roots":
        seq = [(0, root, 2.0), (2, root, 1.5), (3.5, fifth if len(bar.chord) > 2 else root, 0.5)]
    elif pattern == "eighths":
        seq = [(i * 0.5, root, 0.45) for i in range(8)]
    elif pattern == "root_fifth":
        seq = [(0, root, 1.0), (1, fifth, 1.0), (2, root + 12, 1.0), (3, fifth, 1.0)]
    elif pattern == "octaves":
        seq = [(i * 0.5, root + 12 * (i % 2), 0.4) for i in range(8)]
    elif pattern == "syncopated":
        seq = [(0, root, 0.7), (0.75, root, 0.25), (1.5, root + 12, 0.4), (2.5, fifth, 0.4)]
        seq += [(3.0, root, 0.4), (3.5, _pitch_near(bar.next_chord[0], center) - 1, 0.4)]
    else:  # walking: chord tones then a chromatic approach to the next root
        nxt = _pitch_near(bar.next_chord[0], center)
        third = _pitch_near(bar.chord[1], root + 4)
        approach = nxt + (1 if nxt < root else -1)
        seq = [(0, root, 1.0), (1, third, 1.0), (2, fifth, 1.0), (3, approach, 1.0)]
    notes = []
    for beat, pitch, dur in seq:
        t, v = _jitter(rng, bar.start + beat * b, 100 if beat == 0 else 88)
        notes.append(Note(max(t, 0.0), t + dur * b * 0.95, int(pitch), v))
    return notes


# ---- piano -----------------------------------------------------------------------------------
PIANO_PATTERNS = ("block", "comping", "arpeggio", "broken", "ballad")


def voicing(chord: tuple[int, ...], center: int) -> list[int]:
    """Close voicing of the chord's pitch classes around center."""
    return sorted(_pitch_near(pc, center) for pc in chord)


def piano(bar: Bar, rng, pattern: str, center: int) -> list[Note]:
    chord = voicing(bar.chord, center)
    bass_note = _pitch_near(bar.chord[0], center - 17)
    b = bar.beat
    notes: list[tuple[float, list[int], float, int]] = []
    if pattern == "block":
        notes = [(0, [bass_note] + chord, 1.9, 90), (2, chord, 1.9, 78)]
    elif pattern == "comping":
        notes = [(0, chord, 0.8, 88), (1.5, chord, 0.45, 75), (2.5, chord, 0.4, 72)]
        notes += [(3.5, chord, 0.45, 70)]
    elif pattern == "arpeggio":
        tones = chord + [chord[0] + 12]
        order = tones + tones[-2:0:-1]
        notes = [(i * 0.5, [order[i % len(order)]], 0.9, 80) for i in range(8)]
    elif pattern == "broken":
        notes = [(0, [bass_note], 1.0, 88), (1, chord, 0.9, 75), (2, [bass_note + 7], 1.0, 82)]
        notes += [(3, chord, 0.9, 72)]
    else:  # ballad: whole-bar chord with a melody note on beat 3
        notes = [(0, [bass_note] + chord, 3.9, 85), (2, [chord[-1] + 12], 1.9, 80)]
    out = []
    for beat, pitches, dur, vel in notes:
        for p in pitches:
            t, v = _jitter(rng, bar.start + beat * b, vel)
            out.append(Note(max(t, 0.0), t + dur * b, int(p), v))
    return out


# ---- guitar ----------------------------------------------------------------------------------
GUITAR_PATTERNS = {  # program -> patterns that suit it
    24: ("strum", "picking"),
    25: ("strum", "picking"),
    26: ("picking", "offbeat"),
    27: ("offbeat", "picking", "strum"),
    28: ("muted",),
    29: ("power", "strum"),
    30: ("power",),
    31: ("picking",),
}
STRUM = [(0, 1), (1.5, -1), (2, 1), (2.5, -1), (3.5, -1)]  # (beat, direction)


def guitar(bar: Bar, rng, pattern: str, center: int) -> list[Note]:
    b = bar.beat
    root = _pitch_near(bar.chord[0], center - 7)
    out = []
    if pattern == "power":
        for i in range(8):
            t, v = _jitter(rng, bar.start + i * 0.5 * b, 100 if i % 2 == 0 else 85)
            for p in (root, root + 7, root + 12):
                out.append(Note(max(t, 0.0), t + 0.45 * b, p, v))
        return out
    if pattern == "muted":
        for i in range(16):
            if rng.random() < 0.2:
                continue
            t, v = _jitter(rng, bar.step_time(i), 90 if i % 4 == 0 else 70)
            out.append(Note(max(t, 0.0), t + 0.12 * b, root + (7 if i % 8 == 6 else 0), v))
        return out
    shape = [root] + voicing(bar.chord, center + 2)  # six-string-like spread
    if pattern == "offbeat":
        for beat in (1, 3):
            t, v = _jitter(rng, bar.start + beat * b, 92)
            out += [Note(max(t, 0.0), t + 0.3 * b, p, v) for p in shape[1:]]
        return out
    if pattern == "picking":
        order = [shape[0], shape[2], shape[1], shape[3 % len(shape)], shape[-1], shape[2]]
        for i in range(8):
            t, v = _jitter(rng, bar.start + i * 0.5 * b, 82)
            out.append(Note(max(t, 0.0), t + 1.0 * b, order[i % len(order)], v))
        return out
    for strum_beat, direction in STRUM:  # strum: strings 12 ms apart, down or up
        strings = shape if direction > 0 else shape[::-1]
        t0, v = _jitter(rng, bar.start + strum_beat * b, 95 if direction > 0 else 78)
        for k, p in enumerate(strings):
            t = t0 + 0.012 * k
            out.append(Note(max(t, 0.0), t0 + 0.48 * b, p, v))
    return out


# ---- others ----------------------------------------------------------------------------------
OTHERS = {  # family -> (programs, role)
    "strings": ((48, 49, 50, 51), "pad"),
    "brass": ((56, 57, 58, 60, 61, 62), "stabs"),
    "organ": ((16, 17, 18, 19), "pad"),
    "synth_lead": ((80, 81, 82, 83, 84, 85, 87), "melody"),
    "synth_pad": ((88, 89, 90, 91, 92, 94, 95), "pad"),
    "reed": ((64, 65, 66, 71), "melody"),
}


def others(bar: Bar, rng, role: str, center: int, scale: list[int], motif: list) -> list[Note]:
    b = bar.beat
    if role == "pad":
        t = bar.start
        return [Note(t, t + 4 * b * 0.98, p, 70) for p in voicing(bar.chord, center)]
    if role == "stabs":
        chord = voicing(bar.chord, center)
        out = []
        for beat in (0.5, 1.5, 3.0):
            t, v = _jitter(rng, bar.start + beat * b, 96)
            out += [Note(max(t, 0.0), t + 0.3 * b, p, v) for p in chord]
        return out
    # melody: the piece's motif (beat, scale step, length), anchored on the chord root
    root_step = min(range(len(scale)), key=lambda i: (scale[i] - bar.chord[0]) % 12)
    out = []
    for beat, step, dur in motif:
        deg = root_step + step
        pitch = _pitch_near(scale[deg % len(scale)], center) + 12 * (deg // len(scale) > 0)
        t, v = _jitter(rng, bar.start + beat * b, 92)
        out.append(Note(max(t, 0.0), t + dur * b * 0.9, int(pitch), v))
    return out


def make_motif(rng) -> list[tuple[float, int, float]]:
    """A one-bar melodic motif: (beat, scale step above the chord root, length in beats)."""
    rhythms = [
        [(0, 1.0), (1, 0.5), (1.5, 0.5), (2, 1.5), (3.5, 0.5)],
        [(0, 0.5), (0.5, 0.5), (1, 1.0), (2.5, 0.5), (3, 1.0)],
        [(0, 1.5), (1.5, 0.5), (2, 2.0)],
        [(0.5, 0.5), (1, 0.5), (1.5, 1.0), (3, 0.5), (3.5, 0.5)],
    ]
    rhythm = rhythms[int(rng.integers(len(rhythms)))]
    steps = np.cumsum(rng.choice([-2, -1, 1, 2], size=len(rhythm))) % 7
    steps[0] = int(rng.choice([0, 2, 4]))
    return [(beat, int(s), dur) for (beat, dur), s in zip(rhythm, steps)]
