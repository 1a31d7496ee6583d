"""Holm's step-down adjustment, the one the benchmark (csn_model.evaluation) and the site's
reports (evalsite/reports/analysis) both use, so that an undefined p gets one rule everywhere.

Pure numpy: the site imports it without the model's dependencies (this package never imports
Django).
"""

from __future__ import annotations

import numpy as np


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    An undefined p (NaN: a test that could not be computed, e.g. a crossed test whose variance
    estimate is 0 because every answer agrees, or an instrument left out of a fit) counts in
    the family as p = 1: it orders last and is never rejected, so the others are adjusted in the
    family of every test there was, the conservative choice (this project's; R's
    p.adjust(p, "holm", n = length(p)), which takes the unobserved p-values as greater than
    every observed one). Leaving it out (R's default n) would step the others down as if it had
    been rejected, and the family size would depend on the data. Its own adjusted p stays NaN;
    the caller reports why it is undefined.
    """
    p = np.asarray(p_values, dtype=float)
    undefined = np.isnan(p)
    order = np.argsort(np.where(undefined, 1.0, p), kind="stable")  # NaN: as p = 1, last
    m = p.size
    adjusted_sorted = np.maximum.accumulate((m - np.arange(m)) * np.nan_to_num(p[order], nan=1.0))
    out = np.empty(m)
    out[order] = np.minimum(adjusted_sorted, 1.0)
    out[undefined] = np.nan
    return out
