"""`cluster_bootstrap` on independent answers: its se is too large (Owen 2007's product-weight
bootstrap overstates the answer-level variance), by the factor docs/statistics.md quotes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from evalsite.reports.analysis.bootstrap import cluster_bootstrap


def test_it_overstates_the_se_of_independent_answers_by_about_1_7():
    # 20 participants x 20 trials, every answer an independent coin flip (p = 0.5): the true se
    # of the mean is sqrt(0.25 / 400) = 0.025. Measured (seed 3, 40 studies, n_boot 400; shown
    # by `pytest -s`): se ratio 1.664, so a nominal 95 % interval spans +-3.26 true SDs and
    # covers 99.89 %; docs/statistics.md quotes these.
    rng = np.random.default_rng(3)
    n_p, n_t = 20, 20
    answers = pd.DataFrame(
        {
            "participant": np.repeat([f"p{i}" for i in range(n_p)], n_t),
            "trial": np.tile([f"t{j}" for j in range(n_t)], n_p),
            "instrument": "drums",
            "is_catch": False,
        }
    )
    ses = []
    for study in range(40):
        answers["agree"] = (rng.random(n_p * n_t) < 0.5).astype(float)
        table, _ = cluster_bootstrap(answers, n_boot=400, seed=study)
        ses.append(table.set_index("term").loc["drums", "se"])
    ratio = float(np.mean(ses)) / np.sqrt(0.25 / (n_p * n_t))
    coverage = 2 * stats.norm.cdf(1.96 * ratio) - 1
    print(f"se ratio {ratio:.3f}, nominal 95% interval covers {coverage:.4f}")
    assert 1.5 < ratio < 1.9 and coverage > 0.995
