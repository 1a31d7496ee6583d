"""Report plots as SVG text: consent per instrument (Wilson and crossed random-effects intervals,
chance, noise ceiling), the psychometric curve, position bias and fatigue. Agg backend: no
display is ever needed."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..analysis.report import Report  # noqa: E402
from .summary import report_level  # noqa: E402

CHANCE: dict[str, Any] = dict(color="0.4", linestyle="--", linewidth=1)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _error_bars(table: pd.DataFrame) -> list:
    """Lengths below and above the estimate, never negative: an interval that misses its estimate
    by rounding (or a noise ceiling's estimate outside its range) would make matplotlib raise."""
    est = table["estimate"].to_numpy(dtype=float)
    return [
        np.clip(est - table["ci_low"].to_numpy(dtype=float), 0, None),
        np.clip(table["ci_high"].to_numpy(dtype=float) - est, 0, None),
    ]


def _interval_points(ax, table: pd.DataFrame, x, offset: float, label: str, **style) -> None:
    style.setdefault("fmt", "o")
    ax.errorbar(
        [i + offset for i in x],
        table["estimate"],
        yerr=_error_bars(table),
        capsize=3,
        label=label,
        **style,
    )


def consent_plot(report: Report) -> str | None:
    consent = report.tables.get("consent")
    if consent is None or consent.empty:
        return None
    terms = list(consent["term"])
    x = list(range(len(terms)))
    level = report_level(report)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    _interval_points(ax, consent, x, -0.12, f"consent (Wilson {level})", color="C0")
    crossed = report.tables.get("crossed")
    if crossed is not None and not crossed.empty:
        # The clustered interval (participants and trials); none drawn where it is empty.
        c = crossed.set_index("term").reindex(terms)
        has = (c["ci_low"].notna() & c["ci_high"].notna()).to_numpy()
        if has.any():
            xs = [i for i, keep in zip(x, has, strict=True) if keep]
            _interval_points(ax, c[has], xs, 0.0, f"crossed random effects {level}", color="C2")
    ceiling = report.tables.get("noise_ceiling")
    if ceiling is not None and not ceiling.empty and "model_ceiling" in ceiling:
        # The ceiling on the trials consent is scored on (those with a model choice), the one
        # `relative` divides by; a report stored before that column existed draws none.
        c = ceiling.set_index("term").reindex(terms)[
            ["model_ceiling", "model_ceiling_ci_low", "model_ceiling_ci_high"]
        ]
        c.columns = ["estimate", "ci_low", "ci_high"]
        _interval_points(ax, c, x, 0.12, "noise ceiling", color="C1", fmt="_", markersize=14)
    ax.axhline(0.5, label="chance", **CHANCE)
    ax.set_xticks(x, terms)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share agreeing with the model")
    ax.legend(fontsize=8, loc="lower right")
    return _svg(fig)


def psychometric_plot(report: Report) -> str | None:
    bins, fit = report.tables.get("psychometric"), report.tables.get("psychometric_fit")
    if bins is None or bins.empty:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(
        bins["bin_mean"],
        bins["estimate"],
        yerr=_error_bars(bins),
        fmt="o",
        capsize=3,
        label=f"binned consent (Wilson {report_level(report)})",
    )
    if fit is not None and not fit.empty:
        ax.plot(fit["model_margin"], fit["estimate"], color="C1", label="logistic fit")
        ax.fill_between(fit["model_margin"], fit["ci_low"], fit["ci_high"], color="C1", alpha=0.2)
    ax.axhline(0.5, label="chance", **CHANCE)
    ax.set_ylim(0, 1)
    ax.set_xlabel("model margin")
    ax.set_ylabel("share agreeing with the model")
    ax.legend(fontsize=8)
    return _svg(fig)


def _share_plot(
    table: pd.DataFrame | None, label: str, xlabel: str, ylabel: str, x_col: str = "term"
):
    """Shares with their intervals (`label` names the interval); a row whose interval is empty
    is drawn as a point without bars."""
    if table is None or table.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = list(range(len(table)))
    _interval_points(ax, table.fillna({"ci_low": table["estimate"], "ci_high": table["estimate"]}),
                     x, 0.0, label, color="C0")  # fmt: skip
    ax.axhline(0.5, label="0.5", **CHANCE)
    ax.set_xticks(x, list(table[x_col]))
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return _svg(fig)


def plot_makers(report: Report) -> dict[str, Callable[[], str | None]]:
    """Each plot's name and a function drawing it (None where its table is missing), so that a
    caller can draw them one at a time and go on past one that fails."""
    level = report_level(report)
    makers = {
        "consent": lambda: consent_plot(report),
        "psychometric": lambda: psychometric_plot(report),
        "position_bias": lambda: _share_plot(
            report.tables.get("position_bias"),
            f"crossed random effects {level}",
            "instrument",
            "share choosing position A",
        ),
        "fatigue": lambda: _share_plot(
            report.tables.get("fatigue"),
            f"Wilson {level} (answer level)",
            "trial-index bin (session order)",
            "share agreeing with the model",
        ),
    }
    return {name: _closing_on_error(make) for name, make in makers.items()}


def _closing_on_error(make: Callable[[], str | None]) -> Callable[[], str | None]:
    def draw() -> str | None:
        try:
            return make()
        except Exception:
            plt.close("all")  # the failed plot's figure would stay open in the worker
            raise

    return draw


def all_plots(report: Report) -> dict[str, str]:
    plots = {name: make() for name, make in plot_makers(report).items()}
    return {k: v for k, v in plots.items() if v}
