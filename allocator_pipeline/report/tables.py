"""Tables of the walk-forward report, computed from ``metrics.json`` content.

Every function here reads the metrics dict written by the evaluation stage (see
``report/page.py`` for its shape) and returns a pandas frame of raw numbers (fractions, not
percent) plus, where a human reads it, a formatter that turns the numbers into strings. The
same cell strings are used in the terminal table (:func:`format_headline`) and in the HTML page,
so a figure reads the same everywhere.

Conventions of the figures (they are computed upstream from ``oos_daily.parquet``): 252 sessions
a year, geometric CAGR, max drawdown a negative fraction of the compounded equity peak,
Calmar = CAGR / |MaxDD|, average monthly PnL = mean of calendar-month compounded returns by
``realized_ts`` in New York time (a fraction of capital, and in currency for the notional),
turnover annualised (sum over legs of traded weight per year), cost drag the annual trading
cost as a fraction of capital (see ``core/evaluation/metrics.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError

#: Strategies in report order; the oracle is the hindsight label path (the penalised labels'
#: best weights traded with costs: not an upper bound).
STRATEGIES: tuple[str, ...] = ("allocator", "baseline", "qqq_only", "spy_only", "inverse_vol", "oracle")
#: The allocator's ablations (``core/evaluation/ablations.py``), shown right after the allocator.
ABLATIONS: tuple[str, ...] = ("envelope_only", "model_only", "confidence_rule")
REPORT_ORDER: tuple[str, ...] = (STRATEGIES[0], *ABLATIONS, *STRATEGIES[1:])

_STRATEGY_LABELS: dict[str, str] = {
    "allocator": "Allocator",
    "envelope_only": "Envelope only (baseline w + envelope)",
    "model_only": "Model only (allocator w, no envelope)",
    "confidence_rule": "Confidence rule (Step 3 prob_up spread + envelope)",
    "baseline": "Step 3 baseline",
    "qqq_only": "QQQ leg only",  # with the run's symbols: leg_symbols()
    "spy_only": "SPY leg only",
    "inverse_vol": "Inverse volatility",
    "oracle": "Hindsight label path (penalised labels, not an upper bound)",
    "planted_rule": "Planted rule (trailing mean of the planted column)",
}

#: Headline column -> key of the per-strategy metrics dict.
HEADLINE_METRICS: dict[str, str] = {
    "CAGR": "cagr",
    "MaxDD": "max_drawdown",
    "Calmar": "calmar",
    "AvgMonthlyPnL": "avg_monthly_pnl",
    "AvgMonthlyPnLCcy": "avg_monthly_pnl_ccy",
    "Sharpe": "sharpe",
    "Vol": "volatility",
    "Turnover": "turnover",
    "CostDrag": "cost_drag",
}

MISSING = "n/a"


def fmt_pct(value: Any, decimals: int = 2) -> str:
    """Fraction -> percent string with ``decimals`` decimals (0.1234 -> '12.34%'); None/NaN -> 'n/a'."""
    x = as_float(value)
    return MISSING if x is None else f"{x * 100:.{decimals}f}%"


def fmt_ratio(value: Any, decimals: int = 2) -> str:
    """Plain number with ``decimals`` decimals (Calmar, Sharpe, turnover); None/NaN -> 'n/a'."""
    x = as_float(value)
    return MISSING if x is None else f"{x:.{decimals}f}"


def fmt_money(value: Any) -> str:
    """Currency amount rounded to a unit with thousands separators (12345.6 -> '12,346')."""
    x = as_float(value)
    return MISSING if x is None else f"{x:,.0f}"


def fmt_number(value: Any) -> str:
    """A value of unknown unit (gate values, tuning parameters): 4 significant digits."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    x = as_float(value)
    return MISSING if x is None else f"{x:.4g}"


def as_float(value: Any) -> float | None:
    """Number -> float; None, NaN, infinities and non-numbers -> None."""
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


#: Headline column -> formatter of one cell.
HEADLINE_FORMATS: dict[str, Callable[[Any], str]] = {
    "CAGR": fmt_pct,
    "MaxDD": fmt_pct,
    "Calmar": fmt_ratio,
    "AvgMonthlyPnL": fmt_pct,
    "AvgMonthlyPnLCcy": fmt_money,
    "Sharpe": fmt_ratio,
    "Vol": fmt_pct,
    "Turnover": fmt_ratio,
    "CostDrag": fmt_pct,
}


def report_currency(metrics: Mapping[str, Any], default: str = "USD") -> str:
    """Currency label of the currency PnL figures: ``settings.report.currency`` when present."""
    report = (metrics.get("settings") or {}).get("report") or {}
    currency = report.get("currency") if isinstance(report, Mapping) else None
    return str(currency) if currency else default


def leg_symbols(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
    """The run's growth and core leg symbols (``data.qqq_symbol``, ``data.spy_symbol`` of its
    settings); QQQ and SPY when the metrics do not record them.

    >>> leg_symbols({"settings": {"data": {"qqq_symbol": "TLT", "spy_symbol": "SPY"}}})
    ('TLT', 'SPY')
    """
    data = ((metrics or {}).get("settings") or {}).get("data") or {}
    if not isinstance(data, Mapping):
        data = {}
    return str(data.get("qqq_symbol") or "QQQ"), str(data.get("spy_symbol") or "SPY")


def report_title(metrics: Mapping[str, Any] | None) -> str:
    """The report's title, naming the run's legs: ``QQQ/SPY allocator: walk-forward report``."""
    growth, core = leg_symbols(metrics)
    return f"{growth}/{core} allocator: walk-forward report"


def strategy_label(strategy: str, metrics: Mapping[str, Any] | None = None) -> str:
    """Human label of a strategy key; the single-leg rows name the run's symbols
    (:func:`leg_symbols`), the baseline its static weight when known."""
    growth, core = leg_symbols(metrics)
    label = {"qqq_only": f"{growth} leg only", "spy_only": f"{core} leg only"}.get(
        strategy, _STRATEGY_LABELS.get(strategy, strategy)
    )
    if strategy == "baseline" and metrics is not None:
        labels = (metrics.get("settings") or {}).get("labels") or {}
        weight = as_float(labels.get("baseline_weight")) if isinstance(labels, Mapping) else None
        if weight is not None:
            label = f"{label} (w={weight:.2f})"
    return label


def ordered_strategies(names: Any) -> list[str]:
    """Known strategies in report order, then any other names sorted."""
    names = list(names)
    return [s for s in REPORT_ORDER if s in names] + sorted(n for n in names if n not in REPORT_ORDER)


def headline_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Out-of-sample headline figures, one row per strategy.

    Parameters
    ----------
    metrics : mapping
        The content of ``metrics.json``; reads ``metrics["strategies"][strategy][key]``.

    Returns
    -------
    DataFrame
        Index ``strategy`` (keys, report order: allocator, envelope_only, model_only, baseline,
        qqq_only, spy_only, inverse_vol, oracle, then others). Columns ``Strategy`` (human label; the oracle is
        labelled as the hindsight label path) and the raw float figures ``CAGR``, ``MaxDD``
        (negative fraction), ``Calmar``, ``AvgMonthlyPnL`` (fraction of capital per month),
        ``AvgMonthlyPnLCcy`` (currency per month), ``Sharpe``, ``Vol`` (annualised fraction),
        ``Turnover`` (annualised, sum over legs), ``CostDrag`` (annual cost, fraction); NaN where
        undefined.
        ``attrs["currency"]`` holds the currency label.

    Raises
    ------
    InputDataError
        When ``strategies`` is missing or holds no allocator row.
    """
    strategies = metrics.get("strategies")
    if not isinstance(strategies, Mapping) or not strategies:
        raise InputDataError("metrics has no 'strategies' mapping", file="metrics.json", column="strategies")
    if "allocator" not in strategies:
        raise InputDataError(
            "metrics.strategies has no 'allocator' entry",
            file="metrics.json",
            column="strategies",
            value=sorted(strategies),
        )
    rows = []
    order = ordered_strategies(strategies)
    for name in order:
        m = strategies[name] or {}
        row: dict[str, Any] = {"Strategy": strategy_label(name, metrics)}
        for column, key in HEADLINE_METRICS.items():
            x = as_float(m.get(key))
            row[column] = np.nan if x is None else x
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index(order, name="strategy"))
    table = table.astype({c: "float64" for c in HEADLINE_METRICS})
    table.attrs["currency"] = report_currency(metrics)
    return table


def headline_headers(currency: str) -> dict[str, str]:
    """Display header of each headline column."""
    return {
        "Strategy": "Strategy",
        "CAGR": "CAGR",
        "MaxDD": "MaxDD",
        "Calmar": "Calmar",
        "AvgMonthlyPnL": "AvgMonthlyPnL",
        "AvgMonthlyPnLCcy": f"AvgMonthlyPnL {currency}",
        "Sharpe": "Sharpe",
        "Vol": "Vol",
        "Turnover": "Turnover/yr",
        "CostDrag": "CostDrag",
    }


def headline_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The headline table as display strings (percentages with 2 decimals, ratios 2 decimals,
    currency rounded to a unit); the same strings appear in the terminal and in the HTML. A table
    with fewer figure columns (the comparison of two runs) gives those columns."""
    cells = pd.DataFrame(index=table.index)
    cells["Strategy"] = table["Strategy"].astype(str)
    for column, fmt in HEADLINE_FORMATS.items():
        if column in table.columns:
            cells[column] = [fmt(v) for v in table[column].to_numpy()]
    return cells


def format_headline(df: pd.DataFrame) -> str:
    """Fixed-width plain-text table of :func:`headline_table` for the terminal.

    The strategy column is left-aligned, figures right-aligned; a dashed rule separates the
    header. Percentages carry 2 decimals, Calmar/Sharpe/turnover 2 decimals, currency PnL is
    rounded to a unit with thousands separators; undefined figures read ``n/a``.
    """
    cells = headline_cells(df)
    headers = headline_headers(str(df.attrs.get("currency", "USD")))
    columns = list(cells.columns)
    widths = {c: max(len(headers[c]), *(len(s) for s in cells[c])) for c in columns}

    def line(values: dict[str, str]) -> str:
        parts = [values[c].ljust(widths[c]) if c == "Strategy" else values[c].rjust(widths[c]) for c in columns]
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * widths[c] for c in columns)]
    out += [line(dict(zip(columns, row))) for row in cells.itertuples(index=False, name=None)]
    return "\n".join(out) + "\n"


def fold_comparison(
    metrics: Mapping[str, Any], strategies: tuple[str, str] = ("allocator", "baseline")
) -> pd.DataFrame:
    """Per-fold figures of two strategies side by side.

    Returns
    -------
    DataFrame
        Index ``fold`` (sorted); for each strategy ``s``: ``s_cagr``, ``s_max_drawdown``,
        ``s_calmar``, ``s_avg_monthly_pnl`` (fractions, NaN where undefined), and the
        differences ``calmar_diff`` and ``avg_monthly_pnl_diff`` (first minus second).
    """
    folds = metrics.get("folds") or {}
    keys = ("cagr", "max_drawdown", "calmar", "avg_monthly_pnl")
    rows = []
    for fold in sorted(folds, key=str):
        row: dict[str, Any] = {"fold": str(fold)}
        for s in strategies:
            m = (folds[fold] or {}).get(s) or {}
            for k in keys:
                x = as_float(m.get(k))
                row[f"{s}_{k}"] = np.nan if x is None else x
        rows.append(row)
    columns = [f"{s}_{k}" for s in strategies for k in keys]
    frame = pd.DataFrame(rows, columns=["fold", *columns]).set_index("fold")
    frame = frame.astype("float64")
    a, b = strategies
    frame["calmar_diff"] = frame[f"{a}_calmar"] - frame[f"{b}_calmar"]
    frame["avg_monthly_pnl_diff"] = frame[f"{a}_avg_monthly_pnl"] - frame[f"{b}_avg_monthly_pnl"]
    return frame


#: Gate name -> formatter in the headline's units (a monthly PnL difference in percent a month, a
#: drawdown in percent, a Calmar as the headline's Calmar); other gates: :func:`fmt_number`.
GATE_FORMATS: dict[str, Callable[[Any], str]] = {
    "avg_monthly_pnl_vs_baseline": fmt_pct,
    "max_drawdown_vs_baseline": fmt_pct,
    "negative_fold_rate": fmt_pct,
    "calmar_vs_baseline": fmt_ratio,
    "p25_fold_calmar": fmt_ratio,
    "turnover": fmt_ratio,
}


def fmt_gate(name: str | None, value: Any) -> str:
    """A gate's value, threshold or miss in its headline unit; +/-infinity reads '+inf'/'-inf' (a
    Calmar over a zero drawdown), None/NaN 'n/a'. The terminal and the HTML page both use it.

    >>> fmt_gate("avg_monthly_pnl_vs_baseline", 0.0003872), fmt_gate("calmar_vs_baseline", float("inf"))
    ('0.04%', '+inf')
    """
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return GATE_FORMATS.get(name or "", fmt_number)(value)


def fmt_interval(interval: Any, name: str | None = None) -> str:
    """``[lower, upper]`` of a gate, in the gate's unit (:func:`fmt_gate`); None -> '' (the gate has none)."""
    if not interval:
        return ""
    return f"[{fmt_gate(name, interval[0])}, {fmt_gate(name, interval[1])}]"


def gate_line(gate: Mapping[str, Any]) -> str:
    """One gate for the terminal: ``[FAIL] avg_monthly_pnl_vs_baseline: value 0.04% [-0.04%, 0.12%] vs
    threshold 0.00%``, the same figures as the report's gate table."""
    name = gate.get("name")
    mark = "pass" if gate.get("passed") else ("not evaluated" if gate.get("evaluated") is False else "FAIL")
    value = fmt_gate(name, gate.get("value"))
    if gate.get("interval"):
        value += f" {fmt_interval(gate['interval'], name)}"
    return f"[{mark}] {name}: value {value} vs threshold {fmt_gate(name, gate.get('threshold'))}"


def failed_gates(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Gates with ``passed`` false, each with ``miss`` = |value - threshold| (None if either is
    not a number): how far the value is on the wrong side of its threshold."""
    out = []
    for gate in metrics.get("gates") or []:
        if gate.get("passed") or gate.get("evaluated") is False:  # not evaluated: not a failure
            continue
        value, threshold = as_float(gate.get("value")), as_float(gate.get("threshold"))
        miss = abs(value - threshold) if value is not None and threshold is not None else None
        out.append({**gate, "miss": miss})
    return out


def lag_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The allocator's and the baseline's headline at each execution lag (``metrics["execution_lag"]``):
    :func:`headline_table` rows labelled ``... (lag L: trade at the decision close / the next close)``,
    index ``<strategy>@<lag>``; empty when the metrics hold no lag comparison."""
    lags = (metrics.get("execution_lag") or {}).get("strategies") or {}
    parts = []
    for lag, strategies in sorted(lags.items()):
        table = headline_table({"strategies": strategies, "settings": metrics.get("settings")})
        when = "decision close" if int(lag) == 0 else "next close" if int(lag) == 1 else f"close +{lag}"
        table["Strategy"] = table["Strategy"] + f" (lag {lag}: {when})"
        table.index = [f"{name}@{lag}" for name in table.index]
        parts.append(table)
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts)
    out.attrs = parts[0].attrs
    return out
