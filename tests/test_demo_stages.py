"""The demo's stage lines say what they count."""

from __future__ import annotations

import numpy as np
import pytest

from evalsite.demo_stages import study_summary
from evalsite.stimuli.models import Catalogue
from evalsite.studies.models import Study, Trial
from tests.evalsite.reports.conftest import _clip, _trials
from tests.evalsite.studies.experimenter_personas import alice, fast_passwords  # noqa: F401

pytestmark = pytest.mark.django_db


def test_it_names_main_catch_and_practice_trials_in_the_study_line(alice):  # noqa: F811
    catalogue = Catalogue.objects.create(owner=alice, name="clips")
    clips = [_clip(catalogue, i) for i in range(12)]
    study = Study.objects.create(owner=alice, name="s", instruments=["drums", "guitar"])
    _trials(study, clips, np.random.default_rng(0))  # 5 main and 1 catch per instrument
    Trial.objects.create(
        study=study, reference=clips[0], candidate_a=clips[1], candidate_b=clips[2],
        instrument="drums", is_practice=True, expected="a", model_choice="a",
    )  # fmt: skip
    assert study_summary(study) == (
        f"study {study.pk}: 12 trials (10 main, 2 catch) and 1 practice, "
        "10 of the 12 with a model choice"
    )
