"""The screening stimuli have the properties the tests rely on (Woods 2017, Milne 2021)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from evalsite.studies import screening

CFG = screening.ScreeningConfig(trials=6, pass_correct=5, tone_s=0.5, gap_s=0.2)


def intervals(x: np.ndarray, cfg=CFG) -> list[np.ndarray]:
    """Split a rendered trial (lead-in gap, 3 intervals with gaps) into its three intervals."""
    n, gap, lead = int(cfg.tone_s * screening.SR), int(cfg.gap_s * screening.SR), screening.SR // 4
    lead = min(lead, gap)
    return [x[lead + k * (n + gap) : lead + k * (n + gap) + n] for k in range(3)]


def rms_db(x):
    return 10 * np.log10(np.mean(x**2))


@pytest.mark.parametrize("i", range(6))
def test_it_makes_the_target_tone_6_db_softer_and_one_tone_antiphase(i):
    key = screening.answer_key(seed=11, kind="antiphase", i=i)
    parts = intervals(screening.render(11, "antiphase", i, CFG))
    levels = [rms_db(p) for p in parts]
    normal = ({1, 2, 3} - {key["target"], key["distractor"]}).pop()
    assert levels[key["target"] - 1] == pytest.approx(levels[normal - 1] - 6, abs=0.05)
    anti = parts[key["distractor"] - 1]
    assert np.allclose(anti[:, 0], -anti[:, 1]) and not np.allclose(anti[:, 0], 0)
    assert np.allclose(parts[normal - 1][:, 0], parts[normal - 1][:, 1])


def test_it_inverts_a_narrow_band_around_600_hz_in_one_ear_for_huggins():
    key = screening.answer_key(seed=5, kind="huggins", i=0)
    parts = intervals(screening.render(5, "huggins", 0, CFG))
    for pos, part in enumerate(parts, start=1):
        left, right = np.fft.rfft(part[:, 0]), np.fft.rfft(part[:, 1])
        freqs = np.fft.rfftfreq(len(part), 1 / screening.SR)
        band = (freqs > 600 * 0.95) & (freqs < 600 * 1.05)
        outside = freqs > 2000
        # Correlation of the two ears inside the band: -1 in the target, +1 elsewhere.
        corr = np.real(np.sum(left[band] * np.conj(right[band]))) / np.sum(np.abs(left[band]) ** 2)
        assert corr == pytest.approx(-1 if pos == key["target"] else 1, abs=0.05)
        assert np.allclose(left[outside], right[outside], atol=1e-3)


def test_each_draw_of_a_screening_trial_is_its_own_trial():
    draws = [screening.answer_key(3, "antiphase", 0, draw) for draw in range(30)]
    assert draws == [screening.answer_key(3, "antiphase", 0, draw) for draw in range(30)]
    assert len({(k["target"], k["distractor"]) for k in draws}) == 6  # every arrangement occurs
    first = random.Random("3:huggins:1")  # draw 0 keeps the seeding of stored participants
    order = [1, 2, 3]
    first.shuffle(order)
    assert screening.answer_key(3, "huggins", 1, 0) == {"target": order[0], "distractor": order[1]}
    noise = [screening.render(3, "huggins", 1, CFG, draw) for draw in (0, 1)]
    assert not np.array_equal(*noise)  # a reload hears new noise even where the target stays


def test_it_derives_the_answer_key_from_the_seed_only():
    keys = [screening.answer_key(3, "antiphase", i)["target"] for i in range(50)]
    assert keys == [screening.answer_key(3, "antiphase", i)["target"] for i in range(50)]
    assert set(keys) == {1, 2, 3}
