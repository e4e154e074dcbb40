"""Charts of the walk-forward report as deterministic PNG bytes (matplotlib, Agg canvas).

Figures are drawn with the object API on an Agg canvas (no pyplot, no global backend switch), in
matplotlib's default style with fixed overrides, so a user's matplotlibrc cannot change them.
PNGs are palette-quantised and saved without any metadata chunk, so the same inputs give the
same bytes and a chart weighs tens of KB.
Daily series are downsampled to at most ``MAX_POINTS`` points; drawdowns keep each bucket's
trough so a crash is never smoothed away.

Time axes: strategy returns of ``oos_daily`` row ``d`` are realised in the session
``realized_ts(d)`` (the next session); equity and drawdown are plotted against that session's
New York date. Weights and exposure are plotted against the decision session ``decision_ts``.

This module draws the performance charts (equity, drawdown, weights, per-fold bars) and holds the
shared canvas; the diagnostic charts (reliability, importance heat map) are in
``report/diagnostic_charts.py``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter
from PIL import Image

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.report.tables import REPORT_ORDER, strategy_label

MAX_POINTS = 2000
DPI = 100
PALETTE_COLORS = 64
ORACLE_OFF_SCALE = 3.0

STRATEGY_STYLE: dict[str, dict] = {
    "allocator": {"color": "#1f4e9c", "lw": 2.0, "zorder": 5},
    "envelope_only": {"color": "#17becf", "lw": 1.2, "ls": "-.", "zorder": 4},
    "model_only": {"color": "#d62728", "lw": 1.0, "ls": ":", "zorder": 4},
    "baseline": {"color": "#e07b00", "lw": 1.5, "zorder": 4},
    "qqq_only": {"color": "#2e8b57", "lw": 1.0, "zorder": 3},
    "spy_only": {"color": "#8e44ad", "lw": 1.0, "zorder": 3},
    "inverse_vol": {"color": "#8c564b", "lw": 1.0, "zorder": 3},
    "oracle": {"color": "#7f7f7f", "lw": 1.0, "ls": "--", "zorder": 2},
}

_RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "svg.hashsalt": "allocator-report",
    "path.simplify": True,
}

REQUIRED_COLUMNS: tuple[str, ...] = (
    "realized_ts",
    "fold",
    "w_raw",
    "w_smoothed",
    "w_final",
    "exposure",
    "ret_allocator",
    "ret_baseline",
)


def validate_oos_daily(oos_daily: pd.DataFrame) -> None:
    """Check the columns and index the report reads; raise :class:`InputDataError` otherwise."""
    if not isinstance(oos_daily, pd.DataFrame) or oos_daily.empty:
        raise InputDataError("oos_daily is empty: nothing to report", file="oos_daily.parquet")
    idx = oos_daily.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise InputDataError(
            "index must be tz-aware UTC decision_ts timestamps",
            file="oos_daily.parquet",
            column="decision_ts",
            value=str(getattr(idx, "dtype", type(idx))),
        )
    if not idx.is_monotonic_increasing:
        bad = int(np.argmax(np.diff(idx.asi8) < 0)) + 1
        raise InputDataError(
            "decision_ts is not increasing",
            file="oos_daily.parquet",
            column="decision_ts",
            row=bad,
            value=str(idx[bad]),
        )
    for column in REQUIRED_COLUMNS:
        if column not in oos_daily.columns:
            raise InputDataError("required column is missing", file="oos_daily.parquet", column=column)
    realized = oos_daily["realized_ts"]
    if not isinstance(realized.dtype, pd.DatetimeTZDtype):
        raise InputDataError(
            "realized_ts must be tz-aware UTC timestamps",
            file="oos_daily.parquet",
            column="realized_ts",
            value=str(realized.dtype),
        )


def _png(fig: Figure, colors: int = PALETTE_COLORS) -> bytes:
    """Rasterise ``fig`` and encode it as a compact, deterministic PNG.

    The RGB raster is reduced to a ``PALETTE_COLORS`` adaptive palette (fast octree, no
    dithering: flat chart colours survive, the file shrinks about 3x) and written by Pillow
    without any text chunk, so no software name or timestamp enters the bytes.
    """
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    image = Image.fromarray(rgba[..., :3].copy(), mode="RGB")
    palette = image.quantize(colors=colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    # the octree can shift pure white by a few levels: snap near-white entries back to white
    entries = np.asarray(palette.getpalette(), dtype=np.uint8).reshape(-1, 3)
    entries[(entries >= 248).all(axis=1)] = 255
    palette.putpalette(entries.ravel().tolist())
    buf = io.BytesIO()
    palette.save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def _figure(
    width: float,
    height: float,
    *,
    left: float = 0.07,
    right: float = 0.98,
    top: float = 0.94,
    bottom: float = 0.08,
    hspace: float = 0.25,
    wspace: float = 0.2,
) -> Figure:
    """A figure of ``width`` x ``height`` inches with fixed margins (fractions of the figure);
    fixed margins keep the layout deterministic and cheap compared with a layout engine."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(left=left, right=right, top=top, bottom=bottom, hspace=hspace, wspace=wspace)
    return fig


def sample_rows(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Evenly spaced row positions (first and last kept), at most ``max_points`` of ``n``."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def strategy_columns(oos_daily: pd.DataFrame) -> list[str]:
    """Strategies with a ``ret_<strategy>`` column, in report order."""
    return [s for s in REPORT_ORDER if f"ret_{s}" in oos_daily.columns]


def equity_and_drawdown(oos_daily: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Compounded equity (from 1.0) and drawdown (negative fraction) of every strategy.

    Rows whose ``realized_ts`` is missing are left out; a missing return (NaN) contributes no
    growth and is shown as a gap. Returns the realised session dates (naive New York dates,
    ``datetime64``), and equity and drawdown arrays per strategy.
    """
    frame = oos_daily.loc[oos_daily["realized_ts"].notna()]
    dates = session_dates(pd.DatetimeIndex(frame["realized_ts"])).to_numpy(dtype="datetime64[ns]")
    equity, drawdown = {}, {}
    for s in strategy_columns(frame):
        r = frame[f"ret_{s}"].to_numpy(dtype=float)
        eq = np.cumprod(1.0 + np.nan_to_num(r, nan=0.0))
        dd = eq / np.maximum.accumulate(np.maximum(eq, 1.0)) - 1.0
        eq[np.isnan(r)] = np.nan
        dd[np.isnan(r)] = np.nan
        equity[s], drawdown[s] = eq, dd
    return dates, equity, drawdown


def _log_equity_axis(ax) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("growth of 1 (log scale)")


def _fold_starts(oos_daily: pd.DataFrame) -> list[tuple[np.datetime64, str]]:
    folds = oos_daily["fold"].astype(str).to_numpy()
    change = np.flatnonzero(np.r_[True, folds[1:] != folds[:-1]])
    dates = session_dates(oos_daily.index).to_numpy(dtype="datetime64[ns]")
    return [(dates[i], folds[i]) for i in change]


def _draw_equity(ax, dates: np.ndarray, equity: Mapping[str, np.ndarray], labels: Mapping[str, str]) -> None:
    """Equity curves on a log axis. When the hindsight oracle outgrows the tradable strategies
    by more than ``ORACLE_OFF_SCALE``, the axis is fitted to the tradable curves and the oracle
    runs off the top, its final multiple written in the corner (else it would flatten them)."""
    rows = sample_rows(len(dates))
    for s, eq in equity.items():
        style = dict(STRATEGY_STYLE.get(s, {"lw": 1.0}))
        ax.plot(dates[rows], eq[rows], label=labels.get(s, s), **style)
    _log_equity_axis(ax)
    tradable = [eq for s, eq in equity.items() if s != "oracle" and np.isfinite(eq).any()]
    oracle = equity.get("oracle")
    if tradable and oracle is not None and np.isfinite(oracle).any():
        low = min(1.0, *(float(np.nanmin(eq)) for eq in tradable))
        high = max(1.0, *(float(np.nanmax(eq)) for eq in tradable))
        if float(np.nanmax(oracle)) > ORACLE_OFF_SCALE * high:
            ax.set_ylim(low / 1.15, high * 1.6)
            last = float(oracle[np.flatnonzero(np.isfinite(oracle))[-1]])
            ax.text(
                0.995,
                0.98,
                f"{labels.get('oracle', 'oracle')}: off scale, ends at {last:,.1f}x",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8,
                color="#555555",
            )
    ax.legend(loc="upper left", ncols=3)


def equity_drawdown_png(oos_daily: pd.DataFrame, labels: Mapping[str, str] | None = None) -> bytes:
    """Equity curves (log scale) above drawdowns, all strategies, out of sample, as PNG bytes."""
    validate_oos_daily(oos_daily)
    labels = labels or {s: strategy_label(s) for s in REPORT_ORDER}
    dates, equity, drawdown = equity_and_drawdown(oos_daily)
    with matplotlib.style.context(["default", _RC]):
        fig = _figure(12, 7.5, top=0.96, bottom=0.05, hspace=0.14)
        ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        _draw_equity(ax_eq, dates, equity, labels)
        ax_eq.set_title("Equity curves, out of sample (returns by realised session)")
        for start, _fold in _fold_starts(oos_daily)[1:]:
            ax_eq.axvline(start, color="#bbbbbb", lw=0.6, zorder=1)
            ax_dd.axvline(start, color="#bbbbbb", lw=0.6, zorder=1)
        rows = sample_rows(len(dates))
        for s, dd in drawdown.items():
            trough = np.fmin.reduceat(dd, rows) if len(rows) else dd
            style = dict(STRATEGY_STYLE.get(s, {"lw": 1.0}))
            if s == "allocator":
                ax_dd.fill_between(dates[rows], trough, 0.0, color=style["color"], alpha=0.15, lw=0)
            ax_dd.plot(dates[rows], trough, label=labels.get(s, s), **style)
        ax_dd.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax_dd.set_ylabel("drawdown")
        ax_dd.set_title("Drawdown from the running peak (thin grey lines: fold boundaries)")
        return _png(fig)


def headline_figure_png(oos_daily: pd.DataFrame) -> bytes:
    """The out-of-sample equity curves (log scale) of all strategies alone, as PNG bytes.

    Meant for Dagster asset metadata; deterministic bytes for the same ``oos_daily``.
    """
    validate_oos_daily(oos_daily)
    dates, equity, _ = equity_and_drawdown(oos_daily)
    labels = {s: strategy_label(s) for s in REPORT_ORDER}
    with matplotlib.style.context(["default", _RC]):
        fig = _figure(10, 4.5, left=0.08, top=0.93, bottom=0.08)
        ax = fig.subplots()
        _draw_equity(ax, dates, equity, labels)
        ax.set_title("Allocator vs baselines: out-of-sample equity")
        return _png(fig)


def weights_png(oos_daily: pd.DataFrame, growth_symbol: str = "QQQ") -> bytes:
    """w_qqq through the policy (w_raw, w_smoothed, w_final) and gross exposure, by decision session;
    ``growth_symbol`` names the growth leg (``data.qqq_symbol``) in the labels."""
    validate_oos_daily(oos_daily)
    dates = session_dates(oos_daily.index).to_numpy(dtype="datetime64[ns]")
    rows = sample_rows(len(dates))
    with matplotlib.style.context(["default", _RC]):
        fig = _figure(12, 6, top=0.88, bottom=0.06, hspace=0.12)
        ax_w, ax_x = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.4))
        starts = _fold_starts(oos_daily)
        ends = [s for s, _ in starts[1:]] + [dates[-1]]
        for k, ((start, fold), end) in enumerate(zip(starts, ends)):
            if k % 2 == 1:
                for ax in (ax_w, ax_x):
                    ax.axvspan(start, end, color="#f0f0f0", lw=0, zorder=0)
            if len(starts) <= 30:
                ax_w.text(
                    start + (end - start) / 2,
                    1.01,
                    fold,
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    color="#666666",
                    transform=ax_w.get_xaxis_transform(),
                )
        ax_w.plot(
            dates[rows],
            oos_daily["w_raw"].to_numpy(dtype=float)[rows],
            color="#9ecae1",
            lw=0.7,
            label="w_raw",
            drawstyle="steps-post",
        )
        ax_w.plot(
            dates[rows],
            oos_daily["w_smoothed"].to_numpy(dtype=float)[rows],
            color="#e07b00",
            lw=1.6,
            label="w_smoothed",
        )
        ax_w.plot(
            dates[rows],
            oos_daily["w_final"].to_numpy(dtype=float)[rows],
            color="#1f4e9c",
            lw=1.0,
            label="w_final (traded)",
        )
        ax_w.set_ylim(-0.03, 1.03)
        ax_w.set_ylabel(f"w_qqq (share of {growth_symbol} leg)")
        fig.legend(loc="upper right", ncols=3, bbox_to_anchor=(0.98, 0.995))
        fig.suptitle(
            f"{growth_symbol} weight through the policy and the risk envelope",
            x=0.07,
            y=0.975,
            ha="left",
            fontsize=11,
            fontweight="bold",
        )
        exposure = oos_daily["exposure"].to_numpy(dtype=float)[rows]
        ax_x.fill_between(dates[rows], exposure, 0.0, color="#2e8b57", alpha=0.25, lw=0)
        ax_x.plot(dates[rows], exposure, color="#2e8b57", lw=1.0)
        ax_x.set_ylim(0.0, max(1.05, float(np.nanmax(exposure)) * 1.05 if len(exposure) else 1.05))
        ax_x.axhline(1.0, color="black", lw=0.6, ls=":")
        ax_x.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax_x.set_ylabel("gross exposure")
        return _png(fig)


def envelope_png(oos_daily: pd.DataFrame, dd_soft: float, dd_hard: float) -> bytes:
    """The risk envelope at work: gross exposure, the realised volatility of the leg portfolio
    against the target, and the envelope's own drawdown against the guard's levels (``dd_soft``,
    ``dd_hard``, fractions), by decision session (``envelope_*`` columns of ``oos_daily``)."""
    validate_oos_daily(oos_daily)
    dates = session_dates(oos_daily.index).to_numpy(dtype="datetime64[ns]")
    rows = sample_rows(len(dates))
    with matplotlib.style.context(["default", _RC]):
        fig = _figure(12, 7, top=0.92, bottom=0.06, hspace=0.15)
        ax_e, ax_v, ax_d = fig.subplots(3, 1, sharex=True)
        exposure = oos_daily["exposure"].to_numpy(dtype=float)[rows]
        ax_e.fill_between(dates[rows], exposure, 0.0, color="#2e8b57", alpha=0.25, lw=0)
        ax_e.plot(dates[rows], exposure, color="#2e8b57", lw=1.0)
        ax_e.axhline(1.0, color="black", lw=0.6, ls=":")
        ax_e.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax_e.set_ylabel("gross exposure")
        vol = oos_daily["envelope_vol"].to_numpy(dtype=float)[rows]
        target = oos_daily["envelope_vol_target"].to_numpy(dtype=float)[rows]
        ax_v.plot(dates[rows], vol, color="#c0392b", lw=0.9, label="realised volatility (leg portfolio)")
        ax_v.plot(dates[rows], target, color="black", lw=1.2, ls="--", label="target")
        ax_v.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax_v.set_ylabel("annualised vol")
        ax_v.legend(loc="upper right")
        dd = -oos_daily["envelope_dd"].to_numpy(dtype=float)[rows]
        ax_d.fill_between(dates[rows], dd, 0.0, color="#c0392b", alpha=0.3, lw=0)
        for level, name in ((dd_soft, "dd_soft: tilt cut, no leverage"), (dd_hard, "dd_hard: no tilt, exposure cut")):
            ax_d.axhline(-level, color="black", lw=0.8, ls=":")
            ax_d.text(dates[0], -level, f" {name}", va="bottom", fontsize=8)
        ax_d.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax_d.set_ylabel("envelope drawdown")
        fig.suptitle("The risk envelope at work", x=0.07, y=0.975, ha="left", fontsize=11, fontweight="bold")
        return _png(fig)


def fold_bars_png(folds: pd.DataFrame, strategies: tuple[str, str] = ("allocator", "baseline")) -> bytes:
    """Per-fold Calmar and average monthly PnL, two strategies side by side (from
    :func:`report_tables.fold_comparison`)."""
    n = len(folds)
    x = np.arange(n)
    width = 0.4
    with matplotlib.style.context(["default", _RC]):
        fig = _figure(12, 4.2, left=0.06, top=0.92, bottom=0.15 if n > 10 else 0.1, wspace=0.18)
        ax_c, ax_p = fig.subplots(1, 2)
        for k, s in enumerate(strategies):
            color = STRATEGY_STYLE.get(s, {}).get("color", None)
            label = strategy_label(s)
            offset = x + (k - 0.5) * width
            ax_c.bar(offset, folds[f"{s}_calmar"].to_numpy(dtype=float), width, color=color, label=label)
            ax_p.bar(offset, folds[f"{s}_avg_monthly_pnl"].to_numpy(dtype=float), width, color=color, label=label)
        for ax, title in ((ax_c, "Calmar by fold"), (ax_p, "Average monthly PnL by fold")):
            ax.axhline(0.0, color="black", lw=0.8)
            ax.set_xticks(x, [str(f) for f in folds.index], rotation=45 if n > 10 else 0)
            ax.set_title(title)
            ax.legend(loc="best")
            ax.grid(axis="x", visible=False)
        ax_p.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
        return _png(fig)
