"""Planted-signal Step 3 directories: a measuring instrument for the allocator's power.

``allocator synth-step3 OUT --ic X --horizon H --seed S [--legs both|qqq|spy] [--condition
none|high_vol|flip] [--resample BLOCK] [--source DIR]`` writes a Step 3 directory whose leg returns
are real (the reference engine's, or those of a given Step 3 directory; with ``--resample``, a
stationary block bootstrap of them, ``core/inputs/synthetic_legs.py``) and whose confidence columns
carry a signal with correlation ``X`` to the next ``H`` sessions' leg spread (``X = 0``: pure
noise), on one leg or both, everywhere or only under a causal volatility condition (the family of
:class:`Planted`). Run on a user's own legs it tells them how strong a signal must be before
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
from allocator_pipeline.core.inputs.synthetic_legs import resample_legs, resampled_symbol, write_price_files

MARKER = "synthetic.json"
"""File of a planted-signal Step 3 directory holding its parameters (absent elsewhere)."""
SIGNAL_FILE = "signal.parquet"
"""File of a planted-signal Step 3 directory: ``decision_ts``, ``signal``, ``spread``, ``z``."""


SpreadKind = Literal["sum", "compound"]
InformativeLegs = Literal["both", "qqq", "spy"]
Condition = Literal["none", "high_vol", "flip"]
REGIME_WINDOW = 21
"""Sessions of the trailing volatility that defines the regime of the conditional variants."""
REGIME_MIN_SESSIONS = 252
"""Sessions of history before the regime is defined (earlier sessions count as calm)."""


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


def volatility_regime(r_qqq: np.ndarray) -> np.ndarray:
    """+1 on a high-volatility session, -1 on a calm one, known at the session's close (causal).

    High: the QQQ leg's trailing :data:`REGIME_WINDOW`-session standard deviation of returns (rows
    ``d - 20 .. d``) above the expanding median of that quantity (rows ``<= d``); the first
    :data:`REGIME_MIN_SESSIONS` sessions count as calm.
    """
    vol = pd.Series(np.asarray(r_qqq, dtype=float)).rolling(REGIME_WINDOW, min_periods=REGIME_WINDOW).std()
    median = vol.expanding(min_periods=REGIME_WINDOW).median()
    high = (vol > median).to_numpy() & (np.arange(len(vol)) >= REGIME_MIN_SESSIONS)
    return np.where(high, 1.0, -1.0)


def planted_signal(
    r_qqq: np.ndarray,
    r_spy: np.ndarray,
    ic: float,
    horizon: int,
    seed: int,
    kind: SpreadKind = "sum",
    condition: Condition = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The standard-normal planted signal ``s``, the future spread it was planted on and the sign
    the signal's loading takes on each session.

    ``z`` = future spread (:func:`future_spread`) standardised over the rows that have one
    (within each volatility regime under a condition); ``s = c_d * ic * z + sqrt(1 - (c_d ic)**2) * eps`` with ``eps`` iid N(0, 1) from
    ``numpy.random.default_rng(seed)``; rows without a future (the last ``H``) get ``s = eps``.
    ``c_d`` follows ``condition`` and the :func:`volatility_regime` ``g_d`` (+1 high, -1 calm):
    ``"none"``: 1 everywhere; ``"high_vol"``: 1 on high-volatility sessions, 0 on calm ones (the
    signal speaks only when markets are rough); ``"flip"``: ``g_d`` (the same strength, the sign
    reversed in calm sessions, so a linear reading of ``s`` averages the two out). So
    ``corr(s, spread | c_d) = c_d * ic`` in expectation, ``ic = 0`` is pure noise, and ``s`` is
    N(0, 1) marginally on every row.
    """
    if not -1.0 <= ic <= 1.0:
        raise InputDataError("the planted correlation must be in [-1, 1]", column="ic", value=ic)
    spread = future_spread(r_qqq, r_spy, horizon, kind)
    has = np.isfinite(spread)
    regime = volatility_regime(r_qqq)
    loading = {"none": np.ones(len(spread)), "high_vol": (regime > 0).astype(float), "flip": regime}[condition]
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(len(spread))
    s = eps.copy()
    if has.sum() > 1:
        z = np.zeros(len(spread))
        # standardised within each regime under a condition (the spread is more volatile in rough
        # sessions), so that the correlation given the regime is exactly the loading times the IC
        groups = [has] if condition == "none" else [has & (regime == g) for g in (1.0, -1.0)]
        for rows in groups:
            if rows.sum() > 1:
                z[rows] = (spread[rows] - spread[rows].mean()) / spread[rows].std()
        c = loading[has]
        s[has] = c * ic * z[has] + np.sqrt(1.0 - (c * ic) ** 2) * eps[has]
    return s, spread, loading


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
    informative: InformativeLegs = "both",
    kind: SpreadKind = "sum",
    condition: Condition = "none",
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Replace both legs' confidence columns by a signal with a known IC on the future leg spread.

    What is planted, exactly (``d`` a session common to both legs, rows sorted by ``decision_ts``):

    1. ``spread_d = sum_{k=1..H} (leg_return_QQQ[d+k] - leg_return_SPY[d+k])`` (``kind="sum"``;
       ``"compound"`` uses compounded growth), the next ``H`` sessions' QQQ-leg minus SPY-leg
       return; undefined on the last ``H`` common sessions.
    2. ``s_d = c_d * ic * z_d + sqrt(1 - (c_d ic)^2) * eps_d``, ``z`` the standardised spread,
       ``eps`` iid N(0, 1) (seeded), ``c_d`` the ``condition``'s loading (:func:`planted_signal`:
       1, or only in high-volatility sessions, or a sign that flips with the volatility regime);
       ``s_d = eps_d`` (pure noise) where the spread is undefined. Hence ``corr(s, spread) ~= ic``
       under ``"none"`` and ``ic = 0`` plants nothing.
    3. QQQ leg: ``prob_up = prob_q50 = logistic(slope * s)``, ``prob_q10 = logistic(slope * s - b)``,
       ``prob_q90 = logistic(slope * s + b)`` with ``b = band * exp(0.25 * eta)``, ``eta`` iid
       N(0, 1) (independent of everything: the quantile spread carries no information), so
       ``0 < q10 <= q50 <= q90 < 1``.
    4. SPY leg: the same construction on ``-s`` (a Step 3 that believes QQQ beats SPY is less
       bullish on SPY; the relative view is what ``s`` encodes, and both legs then agree, as a real
       pair of leg models driven by one view would). ``informative="both"`` (default) plants on
       both legs; ``"qqq"`` gives the SPY leg an independent N(0, 1) draw instead (only the QQQ
       leg is informative), ``"spy"`` the QQQ leg (only the SPY leg is).

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
    informative : {"both", "qqq", "spy"}
    kind : {"sum", "compound"}
    condition : {"none", "high_vol", "flip"}

    Returns
    -------
    legs : dict
        Symbol -> a copy of the leg frame with the four confidence columns replaced (``decision_ts``
        restored as a column if it was one).
    signal : DataFrame
        Index ``decision_ts`` (common sessions): ``signal`` (``s``), ``spread`` (future spread,
        NaN on the last ``H`` rows), ``z``, ``loading`` (``c_d``).
    """
    if qqq_symbol not in legs or spy_symbol not in legs:
        raise InputDataError(f"the legs must hold {qqq_symbol!r} and {spy_symbol!r}, got {sorted(legs)}")
    q, sp = _indexed(legs[qqq_symbol]), _indexed(legs[spy_symbol])
    common = q.index.intersection(sp.index)
    s, spread, loading = planted_signal(
        q.loc[common, "leg_return"].to_numpy(),
        sp.loc[common, "leg_return"].to_numpy(),
        ic,
        horizon,
        seed,
        kind,
        condition,
    )
    rng = np.random.default_rng([seed, 1])
    out: dict[str, pd.DataFrame] = {}
    for symbol, frame, sign in ((qqq_symbol, q, 1.0), (spy_symbol, sp, -1.0)):
        # every session gets an independent N(0, 1); the common sessions are then overwritten
        x = pd.Series(rng.standard_normal(len(frame)), index=frame.index)
        if informative == "both" or (informative == "qqq") == (symbol == qqq_symbol):
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
    sig = pd.DataFrame({"signal": s, "spread": spread, "loading": loading}, index=common)
    has = np.isfinite(spread)
    sig["z"] = np.nan
    if has.sum() > 1:
        sig.loc[has, "z"] = (spread[has] - spread[has].mean()) / spread[has].std()
    return out, sig


CONFIG_FILE = "allocator.toml"
"""File of a resampled planted-signal directory: the settings that run the pipeline on it."""
PRICES_DIR = "prices"
"""Folder of a resampled planted-signal directory holding the resampled legs' price files."""


def synth_step3(
    source: str | Path,
    out: str | Path,
    calendar: pd.DatetimeIndex,
    ic: float,
    horizon: int = 20,
    seed: int = 0,
    symbols: Mapping[str, str] | None = None,
    informative: InformativeLegs = "both",
    condition: Condition = "none",
    resample_block: float | None = None,
) -> dict[str, Any]:
    """Write the planted-signal copy of the Step 3 directory ``source`` to ``out``.

    The source is read and validated by ``read_step3_dir`` (against the session ``calendar``). With
    ``resample_block`` (mean block, sessions) the legs are first replaced by a stationary block
    bootstrap of their rows (:func:`~allocator_pipeline.core.inputs.synthetic_legs.resample_legs`,
    seeded by ``seed``) under new symbols, whose price files go to ``out/prices`` and whose settings
    (``data.step3_dir``, ``data.prices_dir``, ``data.qqq_symbol``, ``data.spy_symbol``, absolute
    paths) to ``out/allocator.toml``: run it with ``allocator --config out/allocator.toml run``.
    The legs with the planted confidence columns (:func:`plant_signal`), the fold summary and the
    events (none for resampled legs: they describe the real path) are written by
    ``write_step3_dir`` (validated first, atomic files), then ``signal.parquet`` and, last,
    ``synthetic.json``. Returns the content of ``synthetic.json``: the parameters and the achieved
    correlations of the signal (and of its trailing ``H``-session mean) with the spread.
    """
    roles = dict(symbols or {"qqq": "QQQ", "spy": "SPY"})
    data = read_step3_dir(source, roles, calendar, require_confidence=False)
    legs = {roles[role]: frame for role, frame in data.legs.items()}
    events = {roles[role]: frame for role, frame in data.events.items()}
    summary = data.summary
    out = Path(out)
    if resample_block is not None:
        legs, prices = resample_legs(legs, resample_block, seed)
        roles = {role: resampled_symbol(symbol) for role, symbol in roles.items()}
        summary = summary.assign(symbol=summary["symbol"].map(resampled_symbol))
        events = {}
        write_price_files(prices, out / PRICES_DIR)
    planted, signal = plant_signal(
        legs,
        ic,
        horizon,
        seed,
        qqq_symbol=roles["qqq"],
        spy_symbol=roles["spy"],
        informative=informative,
        condition=condition,
    )
    write_step3_dir(out, planted, summary, events, calendar=calendar)
    read_step3_dir(out, roles, calendar)  # the project's own validator accepts it
    write_parquet(signal.reset_index(), out / SIGNAL_FILE)
    if resample_block is not None:
        root = out.resolve()
        (out / CONFIG_FILE).write_text(
            "# written by allocator synth-step3 --resample: the resampled legs and their prices\n[data]\n"
            f'step3_dir = "{root}"\nprices_dir = "{root / PRICES_DIR}"\n'
            f'qqq_symbol = "{roles["qqq"]}"\nspy_symbol = "{roles["spy"]}"\n'
        )
    has = signal["spread"].notna()
    mean = signal["signal"].rolling(horizon, min_periods=horizon).mean()
    both = has & mean.notna()
    manifest = {
        "generator": "allocator synth-step3",
        "source": str(Path(source).resolve()),
        "ic": ic,
        "horizon": horizon,
        "seed": seed,
        "informative": informative,
        "condition": condition,
        "resample_block": resample_block,
        "symbols": roles,
        "sessions": int(len(signal)),
        "achieved_ic": float(np.corrcoef(signal.loc[has, "signal"], signal.loc[has, "spread"])[0, 1]),
        "achieved_ic_trailing_mean": float(np.corrcoef(mean[both], signal.loc[both, "spread"])[0, 1]),
        "planted": "s = c * ic * z + sqrt(1 - (c ic)^2) * eps on the standardised next-H-session leg spread, c the "
        "condition's loading; QQQ prob_up = logistic(0.5 s), SPY prob_up = logistic(-0.5 s) on the informative "
        "legs (noise on the others); quantiles around it with an uninformative band",
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
