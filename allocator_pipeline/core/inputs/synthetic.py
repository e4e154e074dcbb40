"""Planted-signal Step 3 directories: a measuring instrument for the allocator's power.

``allocator synth-step3 OUT --ic X --horizon H --seed S [--source DIR]`` writes a Step 3 directory
whose leg returns are real (the reference engine's, or those of a given Step 3 directory) and whose
confidence columns carry a signal with correlation ``X`` to the next ``H`` sessions' leg spread
(``X = 0``: pure noise). Run on a user's own legs it tells them how strong a signal must be before
this pipeline can see it (``scripts/bench_power.py``). What is planted is stated exactly in
:func:`plant_signal`. The directory passes the project's own Step 3 validator (it is written by
``write_step3_dir`` and read back by ``read_step3_dir``), and it carries two extra files the
reader ignores: ``synthetic.json`` (the parameters and the achieved correlations) and
``signal.parquet`` (the planted signal and the future spread per session), from which the report
measures how much of the signal each stage of the allocator keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.storage import read_json, read_parquet, write_json, write_parquet
from allocator_pipeline.core.inputs.step3 import read_step3_dir, write_step3_dir

MARKER = "synthetic.json"
"""File of a planted-signal Step 3 directory holding its parameters (absent elsewhere)."""
SIGNAL_FILE = "signal.parquet"
"""File of a planted-signal Step 3 directory: ``decision_ts``, ``signal``, ``spread``, ``z``."""


SpreadKind = Literal["sum", "compound"]
SpyMode = Literal["mirror", "noise"]


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _indexed(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if "decision_ts" in out.columns:
        out = out.set_index("decision_ts")
    out.index = pd.DatetimeIndex(out.index, name="decision_ts")
    return out.sort_index()


def future_spread(r_qqq: np.ndarray, r_spy: np.ndarray, horizon: int, kind: SpreadKind = "sum") -> np.ndarray:
    """QQQ-leg minus SPY-leg return over rows ``d + 1 .. d + H`` (NaN on the last ``H`` rows).

    ``kind="sum"``: ``sum_k (r_qqq[d+k] - r_spy[d+k])``; ``"compound"``:
    ``prod(1 + r_qqq[d+k]) - prod(1 + r_spy[d+k])``. Fractions.
    """
    r_q = np.asarray(r_qqq, dtype=float)
    r_s = np.asarray(r_spy, dtype=float)
    n = len(r_q)
    out = np.full(n, np.nan)
    if n <= horizon:
        return out
    if kind == "sum":
        c = np.concatenate([[0.0], np.cumsum(r_q - r_s)])
        out[: n - horizon] = c[horizon + 1 :] - c[1 : n - horizon + 1]
    else:
        lq = np.concatenate([[0.0], np.cumsum(np.log1p(r_q))])
        ls = np.concatenate([[0.0], np.cumsum(np.log1p(r_s))])
        gq = np.exp(lq[horizon + 1 :] - lq[1 : n - horizon + 1])
        gs = np.exp(ls[horizon + 1 :] - ls[1 : n - horizon + 1])
        out[: n - horizon] = gq - gs
    return out


def planted_signal(
    r_qqq: np.ndarray, r_spy: np.ndarray, ic: float, horizon: int, seed: int, kind: SpreadKind = "sum"
) -> tuple[np.ndarray, np.ndarray]:
    """The standard-normal planted signal ``s`` and the future spread it was planted on.

    ``z`` = future spread (:func:`future_spread`) standardised over the rows that have one;
    ``s = ic * z + sqrt(1 - ic**2) * eps`` with ``eps`` iid N(0, 1) from
    ``numpy.random.default_rng(seed)``; rows without a future (the last ``H``) get ``s = eps``.
    So ``corr(s, spread) = ic`` in expectation (sampling error about ``1 / sqrt(n)``), ``ic = 0``
    is pure noise, and ``s`` is N(0, 1) marginally on every row.
    """
    if not -1.0 <= ic <= 1.0:
        raise InputDataError("the planted correlation must be in [-1, 1]", column="ic", value=ic)
    spread = future_spread(r_qqq, r_spy, horizon, kind)
    has = np.isfinite(spread)
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(len(spread))
    s = eps.copy()
    if has.sum() > 1:
        z = (spread[has] - spread[has].mean()) / spread[has].std()
        s[has] = ic * z + np.sqrt(1.0 - ic * ic) * eps[has]
    return s, spread


def plant_signal(
    legs: Mapping[str, pd.DataFrame],
    ic: float,
    horizon: int = 20,
    seed: int = 0,
    *,
    qqq_symbol: str = "QQQ",
    spy_symbol: str = "SPY",
    slope: float = 0.5,
    band: float = 0.4,
    spy_mode: SpyMode = "mirror",
    kind: SpreadKind = "sum",
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Replace both legs' confidence columns by a signal with a known IC on the future leg spread.

    What is planted, exactly (``d`` a session common to both legs, rows sorted by ``decision_ts``):

    1. ``spread_d = sum_{k=1..H} (leg_return_QQQ[d+k] - leg_return_SPY[d+k])`` (``kind="sum"``;
       ``"compound"`` uses compounded growth), the next ``H`` sessions' QQQ-leg minus SPY-leg
       return; undefined on the last ``H`` common sessions.
    2. ``s_d = ic * z_d + sqrt(1 - ic^2) * eps_d``, ``z`` the standardised spread, ``eps`` iid
       N(0, 1) (seeded); ``s_d = eps_d`` (pure noise) where the spread is undefined. Hence
       ``corr(s, spread) ~= ic`` and ``ic = 0`` plants nothing.
    3. QQQ leg: ``prob_up = prob_q50 = logistic(slope * s)``, ``prob_q10 = logistic(slope * s - b)``,
       ``prob_q90 = logistic(slope * s + b)`` with ``b = band * exp(0.25 * eta)``, ``eta`` iid
       N(0, 1) (independent of everything: the quantile spread carries no information), so
       ``0 < q10 <= q50 <= q90 < 1``.
    4. SPY leg, ``spy_mode="mirror"`` (default): the same construction on ``-s`` (a Step 3 that
       believes QQQ beats SPY is less bullish on SPY; the relative view is what ``s`` encodes,
       and both legs then agree, as a real pair of leg models driven by one view would);
       ``"noise"``: on an independent N(0, 1) draw (only the QQQ leg is informative).

    Everything else (``leg_return``, ``position``, ``step3_fold``, drift columns, ...) is left as
    it is; sessions present in one leg only get noise. The signal at ``d`` describes the returns
    of ``d + 1 .. d + H`` only (a deliberately clairvoyant but noisy Step 3).

    Parameters
    ----------
    legs : mapping
        Symbol -> leg frame as stored in ``backtest/<SYMBOL>.parquet`` (``decision_ts`` as a column
        or the index, ``leg_return`` fraction per session).
    ic : float
        Target correlation with the future spread, in [-1, 1] (0: pure noise).
    horizon : int
        ``H`` in sessions.
    seed : int
        Seed of every random draw.
    qqq_symbol, spy_symbol : str
        Keys of the growth (w) and core (1 - w) legs in ``legs``.
    slope, band : float
        Logistic slope and base half-width (logit units) of the quantile band.
    spy_mode : {"mirror", "noise"}
    kind : {"sum", "compound"}

    Returns
    -------
    legs : dict
        Symbol -> a copy of the leg frame with the four confidence columns replaced (``decision_ts``
        restored as a column if it was one).
    signal : DataFrame
        Index ``decision_ts`` (common sessions): ``signal`` (``s``), ``spread`` (future spread,
        NaN on the last ``H`` rows), ``z``.
    """
    if qqq_symbol not in legs or spy_symbol not in legs:
        raise InputDataError(f"the legs must hold {qqq_symbol!r} and {spy_symbol!r}, got {sorted(legs)}")
    q, sp = _indexed(legs[qqq_symbol]), _indexed(legs[spy_symbol])
    common = q.index.intersection(sp.index)
    s, spread = planted_signal(
        q.loc[common, "leg_return"].to_numpy(), sp.loc[common, "leg_return"].to_numpy(), ic, horizon, seed, kind
    )
    rng = np.random.default_rng([seed, 1])
    out: dict[str, pd.DataFrame] = {}
    for symbol, frame, sign in ((qqq_symbol, q, 1.0), (spy_symbol, sp, -1.0)):
        # every session gets an independent N(0, 1); the common sessions are then overwritten
        x = pd.Series(rng.standard_normal(len(frame)), index=frame.index)
        if symbol == qqq_symbol or spy_mode == "mirror":
            x.loc[common] = sign * s
        eta = rng.standard_normal(len(frame))
        b = band * np.exp(0.25 * eta)
        mid = slope * x.to_numpy()
        leg = frame.copy()
        leg["prob_up"] = _logistic(mid)
        leg["prob_q50"] = leg["prob_up"]
        leg["prob_q10"] = np.minimum(_logistic(mid - b), leg["prob_q50"])
        leg["prob_q90"] = np.maximum(_logistic(mid + b), leg["prob_q50"])
        if "decision_ts" in legs[symbol].columns:
            leg = leg.reset_index()
        out[symbol] = leg
    sig = pd.DataFrame({"signal": s, "spread": spread}, index=common)
    has = np.isfinite(spread)
    sig["z"] = np.nan
    if has.sum() > 1:
        sig.loc[has, "z"] = (spread[has] - spread[has].mean()) / spread[has].std()
    return out, sig


def synth_step3(
    source: str | Path,
    out: str | Path,
    calendar: pd.DatetimeIndex,
    ic: float,
    horizon: int = 20,
    seed: int = 0,
    symbols: Mapping[str, str] | None = None,
    spy_mode: SpyMode = "mirror",
) -> dict[str, Any]:
    """Write the planted-signal copy of the Step 3 directory ``source`` to ``out``.

    The source is read and validated by ``read_step3_dir`` (against the session ``calendar``); the
    legs with the planted confidence columns (:func:`plant_signal`), the fold summary and the events
    are written by ``write_step3_dir`` (validated first, atomic files), then ``signal.parquet`` and,
    last, ``synthetic.json``. Returns the content of ``synthetic.json``: the parameters and the
    achieved correlations of the signal (and of its trailing ``H``-session mean) with the spread.
    """
    roles = dict(symbols or {"qqq": "QQQ", "spy": "SPY"})
    data = read_step3_dir(source, roles, calendar, require_confidence=False)
    legs = {roles[role]: frame for role, frame in data.legs.items()}
    planted, signal = plant_signal(
        legs, ic, horizon, seed, qqq_symbol=roles["qqq"], spy_symbol=roles["spy"], spy_mode=spy_mode
    )
    events = {roles[role]: frame for role, frame in data.events.items()}
    out = Path(out)
    write_step3_dir(out, planted, data.summary, events, calendar=calendar)
    read_step3_dir(out, roles, calendar)  # the project's own validator accepts it
    write_parquet(signal.reset_index(), out / SIGNAL_FILE)
    has = signal["spread"].notna()
    mean = signal["signal"].rolling(horizon, min_periods=horizon).mean()
    both = has & mean.notna()
    manifest = {
        "generator": "allocator synth-step3",
        "source": str(Path(source).resolve()),
        "ic": ic,
        "horizon": horizon,
        "seed": seed,
        "spy_mode": spy_mode,
        "symbols": roles,
        "sessions": int(len(signal)),
        "achieved_ic": float(np.corrcoef(signal.loc[has, "signal"], signal.loc[has, "spread"])[0, 1]),
        "achieved_ic_trailing_mean": float(np.corrcoef(mean[both], signal.loc[both, "spread"])[0, 1]),
        "planted": "s = ic * z + sqrt(1 - ic^2) * eps on the standardised next-H-session leg spread; QQQ prob_up = "
        "logistic(0.5 s), SPY prob_up = logistic(-0.5 s) (mirror); quantiles around it with an uninformative band",
    }
    write_json(manifest, out / MARKER)
    return manifest


def read_planted(step3_dir: str | Path) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """``(synthetic.json, signal frame indexed by decision_ts)`` of a planted-signal Step 3
    directory, or None for any other directory."""
    root = Path(step3_dir)
    if not (root / MARKER).is_file():
        return None
    signal = read_parquet(root / SIGNAL_FILE).set_index("decision_ts")
    return read_json(root / MARKER), signal
