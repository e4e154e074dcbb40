"""Diagnostic charts of the walk-forward report: calibration reliability, feature-importance stability
and the return attribution.

Drawn on the same deterministic Agg canvas and PNG encoding as the performance charts
(``report/charts.py``).
"""

from __future__ import annotations

import matplotlib
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter

from allocator_pipeline.report.charts import _RC, _figure, _png


def reliability_png(
    before: pd.DataFrame, after: pd.DataFrame, ece_before: float | None, ece_after: float | None
) -> bytes:
    """Reliability diagram pooled over folds (confidence of the top bucket vs its hit rate),
    before and after calibration, with the number of test rows per confidence bin."""

    def tag(ece: float | None) -> str:
        return "" if ece is None else f" (ECE {ece * 100:.2f}%)"

    with matplotlib.style.context(["default", _RC]):
        fig = _figure(12, 4.2, left=0.06, top=0.92, bottom=0.12, wspace=0.18)
        ax_r, ax_n = fig.subplots(1, 2, width_ratios=(1.2, 1))
        ax_r.plot([0, 1], [0, 1], color="#999999", lw=1.0, ls=":", label="perfect calibration")
        stages = ((before, "#e07b00", "before", ece_before), (after, "#1f4e9c", "after", ece_after))
        for curve, color, name, ece in stages:
            if len(curve):
                ax_r.plot(
                    curve["confidence"],
                    curve["accuracy"],
                    marker="o",
                    ms=4,
                    color=color,
                    lw=1.4,
                    label=f"{name} calibration{tag(ece)}",
                )
        ax_r.set_xlim(0, 1)
        ax_r.set_ylim(0, 1)
        ax_r.set_xlabel("mean predicted probability of the top bucket")
        ax_r.set_ylabel("observed frequency")
        ax_r.set_title("Reliability, pooled over folds")
        ax_r.legend(loc="upper left")
        for k, (curve, color, name) in enumerate(((before, "#e07b00", "before"), (after, "#1f4e9c", "after"))):
            if len(curve):
                mids = curve["bin_mid"].to_numpy(dtype=float)
                step = float(np.min(np.diff(mids))) if len(mids) > 1 else 0.1
                ax_n.bar(
                    mids + (k - 0.5) * step * 0.4,
                    curve["count"].to_numpy(dtype=float),
                    step * 0.4,
                    color=color,
                    label=name,
                )
        ax_n.set_xlim(0, 1)
        ax_n.set_xlabel("confidence bin")
        ax_n.set_ylabel("test rows")
        ax_n.set_title("Rows per confidence bin")
        ax_n.legend(loc="upper right")
        return _png(fig)


def importance_heatmap_png(matrix: pd.DataFrame) -> bytes:
    """Heat map of normalised LightGBM gain, features (rows, top first) x folds (columns)."""
    n_feat, n_fold = matrix.shape
    with matplotlib.style.context(["default", _RC, {"axes.grid": False}]):
        height = max(2.5, 0.3 * n_feat + 1.3)
        label_in = 0.3 + 0.075 * max((len(str(f)) for f in matrix.index), default=4)
        fig = _figure(
            12,
            height,
            left=label_in / 12,
            right=0.97,
            top=1 - 0.4 / height,
            bottom=(0.75 if n_fold > 10 else 0.45) / height,
        )
        ax = fig.subplots()
        values = matrix.to_numpy(dtype=float)
        image = ax.imshow(values, aspect="auto", cmap="Blues", vmin=0.0, vmax=max(float(values.max()), 1e-12))
        ax.set_xticks(np.arange(n_fold), list(matrix.columns), rotation=45 if n_fold > 10 else 0)
        ax.set_yticks(np.arange(n_feat), list(matrix.index))
        if n_feat * n_fold <= 600:
            top = float(values.max())
            for i in range(n_feat):
                for j in range(n_fold):
                    v = values[i, j]
                    ax.text(
                        j,
                        i,
                        f"{v * 100:.1f}",
                        ha="center",
                        va="center",
                        fontsize=8 if n_fold <= 12 else 7,
                        color="white" if v > 0.6 * top else "#222222",
                    )
        ax.set_title("Normalised gain by fold (% of the fold's total gain)")
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, format=PercentFormatter(xmax=1.0, decimals=0))
        return _png(fig, colors=128)


ATTRIBUTION_COLORS = {"allocation": "#1f4e9c", "exposure": "#2e8b57", "interaction": "#9467bd", "cost": "#e07b00"}


def attribution_png(terms: pd.DataFrame) -> bytes:
    """Stacked bars of the attribution terms per fold (columns ``allocation, exposure, interaction,
    cost`` and ``difference``, fractions of capital: sums of daily contributions), positive terms
    stacked up and negative ones down, the total (allocator minus baseline) as a black dot."""
    n = len(terms)
    x = np.arange(n)
    with matplotlib.style.context(["default", _RC]):
        fig = _figure(12, 4.2, left=0.07, top=0.9, bottom=0.15 if n > 10 else 0.1)
        ax = fig.subplots()
        up, down = np.zeros(n), np.zeros(n)
        for name, color in ATTRIBUTION_COLORS.items():
            v = terms[name].to_numpy(dtype=float)
            base = np.where(v >= 0, up, down)
            ax.bar(x, v, 0.6, bottom=base, color=color, label=name)
            up, down = up + np.maximum(v, 0), down + np.minimum(v, 0)
        ax.plot(x, terms["difference"].to_numpy(dtype=float), "o", color="black", ms=5, label="allocator - baseline")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(x, [str(f) for f in terms.index], rotation=45 if n > 10 else 0)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
        ax.set_ylabel("sum of daily return differences")
        ax.set_title("Where the allocator's return went, per fold (the terms add up to the dot)")
        ax.legend(loc="best", ncols=5)
        ax.grid(axis="x", visible=False)
        return _png(fig)
