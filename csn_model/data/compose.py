"""Compose one multitrack piece: tempo, key, chord progressions, sections, and an arrangement.

A piece is a form of sections (intro, verse, chorus, bridge, outro), each with its own chord
progression; a drum groove style and kit; a bass line that follows the chords; piano comping or
arpeggios; a guitar part whose pattern suits its program (strums, picking, power chords, muted
16ths); and one or two "others" parts (strings, brass, organ, synth leads or pads, reeds). Some
pieces lack an instrument, and sections thin the arrangement out, as real songs do.
Everything is drawn from one numpy Generator, so a piece is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pretty_midi

from csn_model.data import patterns as pt
from csn_model.data.render import Note

KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10]}
# Progressions as scale degrees (0 = tonic), one chord per bar.
PROGRESSIONS = {
    "major": {
        "I-V-vi-IV": [0, 4, 5, 3],
        "I-vi-IV-V": [0, 5, 3, 4],
        "ii-V-I-I": [1, 4, 0, 0],
        "I-IV-V-IV": [0, 3, 4, 3],
        "vi-IV-I-V": [5, 3, 0, 4],
        "I-iii-IV-V": [0, 2, 3, 4],
    },
    "minor": {
        "i-VI-III-VII": [0, 5, 2, 6],
        "i-iv-v-i": [0, 3, 4, 0],
        "i-VII-VI-VII": [0, 6, 5, 6],
        "i-VI-iv-v": [0, 5, 3, 4],
        "i-iv-VII-III": [0, 3, 6, 2],
    },
}
FORMS = (
    ("intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    ("verse", "chorus", "verse", "chorus", "bridge", "chorus"),
    ("intro", "chorus", "verse", "chorus", "outro"),
)
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)  # GM bank-128 kits in FluidR3 (56 is sound effects)
STYLE_TEMPO = {
    "rock": (100, 140),
    "funk": (90, 115),
    "disco": (112, 128),
    "halftime": (70, 90),
    "hiphop": (82, 98),
    "bossa": (110, 140),
    "jazz": (110, 170),
}
PRESENCE = {"drums": 0.92, "bass": 0.92, "piano": 0.82, "guitar": 0.82, "others": 0.92}
# Roles that sit out a section (besides absent instruments): thins intros, outros, bridges.
SECTION_RESTS = {"intro": ("drums", "bass", "guitar"), "outro": ("guitar",), "bridge": ("piano",)}


@dataclass
class Part:
    condition: str  # drums, bass, piano, guitar, others
    program: int
    bank: int
    pattern: str  # groove style / pattern / role
    family: str = ""
    notes: list[Note] = field(default_factory=list)

    @property
    def is_drum(self) -> bool:
        return self.bank == 128

    @property
    def program_name(self) -> str:
        if self.is_drum:
            return f"Drum kit {self.program}"
        return pretty_midi.program_to_instrument_name(self.program)

    @property
    def inst_class(self) -> str:
        return "Drums" if self.is_drum else pretty_midi.program_to_instrument_class(self.program)


@dataclass
class Piece:
    tempo: float
    key: str
    mode: str
    style: str
    swing: float
    form: list[str]
    progressions: dict[str, str]  # section -> progression name
    parts: list[Part]


def compose(rng: np.random.Generator, seconds: float, kits: tuple[int, ...] = DRUM_KITS) -> Piece:
    style = str(rng.choice(sorted(STYLE_TEMPO)))
    lo, hi = STYLE_TEMPO[style]
    tempo = float(rng.integers(lo, hi + 1))
    tonic, mode = int(rng.integers(12)), str(rng.choice(["major", "minor"]))
    scale = [(tonic + i) % 12 for i in SCALES[mode]]
    names = list(PROGRESSIONS[mode])
    progs = {s: str(rng.choice(names)) for s in ("intro", "verse", "chorus", "bridge", "outro")}
    progs["outro"] = progs["intro"] = progs["verse"] if rng.random() < 0.5 else progs["intro"]
    section_bars = {"intro": 2, "verse": 4, "chorus": 4, "bridge": 4, "outro": 2}
    if rng.random() < 0.4:
        section_bars.update(verse=8, chorus=8)
    form = list(FORMS[int(rng.integers(len(FORMS)))])
    beat = 60.0 / tempo
    if seconds < 24 * beat:  # a short excerpt starts with the band playing, not an intro
        form = [s for s in form if s != "intro"]
    bars = _bar_plan(form, section_bars, progs, mode, scale, beat, seconds, style)
    parts = _choose_parts(rng, style, kits)
    motif = pt.make_motif(rng)
    centers = {"drums": 0, "bass": 38, "piano": 62, "guitar": 57, "others": 67}
    for part in parts:
        center = centers[part.condition] + int(rng.integers(-2, 3))
        for bar in bars:
            if part.condition in SECTION_RESTS.get(bar.section, ()):
                continue
            part.notes += _bar_notes(part, bar, rng, center, scale, motif)
    # A part that never plays (short excerpt, resting section) is no stem: metadata never lists
    # an instrument whose audio is silent.
    parts = [p for p in parts if p.notes]
    return Piece(
        tempo=tempo,
        key=KEYS[tonic],
        mode=mode,
        style=style,
        swing=pt.SWING.get(style, 0.0),
        form=[b.section for b in bars if b.index_in_section == 0],
        progressions={s: progs[s] for s in dict.fromkeys(b.section for b in bars)},
        parts=parts,
    )


def _bar_notes(part: Part, bar: pt.Bar, rng, center: int, scale, motif) -> list[Note]:
    if part.condition == "drums":
        return pt.drums(bar, rng, part.pattern)
    if part.condition == "bass":
        return pt.bass(bar, rng, part.pattern, center)
    if part.condition == "piano":
        return pt.piano(bar, rng, part.pattern, center)
    if part.condition == "guitar":
        return pt.guitar(bar, rng, part.pattern, center)
    return pt.others(bar, rng, part.pattern, center, scale, motif)


def _chord(scale: list[int], degree: int, seventh: bool) -> tuple[int, ...]:
    tones = [scale[(degree + i) % 7] for i in ((0, 2, 4, 6) if seventh else (0, 2, 4))]
    return tuple(tones)


def _bar_plan(form, section_bars, progs, mode, scale, beat, seconds, style) -> list[pt.Bar]:
    """Bars covering `seconds` (the form repeats if it is too short), chords per section."""
    seventh = style in {"jazz", "bossa", "funk"}
    plan: list[tuple[str, int, int, int]] = []  # (section, index, bars, degree)
    while len(plan) * 4 * beat < seconds + 4 * beat:
        for section in form:
            degrees = PROGRESSIONS[mode][progs[section]]
            n = section_bars[section]
            plan += [(section, i, n, degrees[i % len(degrees)]) for i in range(n)]
    swing = pt.SWING.get(style, 0.0)
    bars = []
    for i, (section, idx, n, degree) in enumerate(plan):
        nxt = plan[i + 1][3] if i + 1 < len(plan) else plan[0][3]
        start = i * 4 * beat
        if start >= seconds:
            break
        bars.append(
            pt.Bar(
                start=start,
                beat=beat,
                chord=_chord(scale, degree, seventh),
                next_chord=_chord(scale, nxt, seventh),
                section=section,
                index_in_section=idx,
                section_bars=n,
                swing=swing,
            )
        )
    return bars


def _choose_parts(rng, style: str, kits: tuple[int, ...]) -> list[Part]:
    present = [c for c, p in PRESENCE.items() if rng.random() < p]
    while len(present) < 3:  # at least a trio
        extra = [c for c in PRESENCE if c not in present]
        present.append(str(rng.choice(extra)))
    parts = []
    if "drums" in present:
        parts.append(Part("drums", int(rng.choice(kits)), 128, style, "kit"))
    if "bass" in present:
        pattern = "walking" if style == "jazz" else str(rng.choice(pt.BASS_PATTERNS[:-1]))
        parts.append(Part("bass", int(rng.integers(32, 40)), 0, pattern, "bass"))
    if "piano" in present:
        parts.append(Part("piano", int(rng.integers(0, 8)), 0, str(rng.choice(pt.PIANO_PATTERNS))))
    if "guitar" in present:
        program = int(rng.integers(24, 32))
        pattern = str(rng.choice(pt.GUITAR_PATTERNS[program]))
        parts.append(Part("guitar", program, 0, pattern, "guitar"))
    if "others" in present:
        families = list(pt.OTHERS)
        count = 2 if rng.random() < 0.4 else 1
        for family in rng.choice(families, size=count, replace=False):
            programs, role = pt.OTHERS[str(family)]
            parts.append(Part("others", int(rng.choice(programs)), 0, role, str(family)))
    for p in parts:
        if p.condition == "piano":
            p.family = "piano"
    return parts
