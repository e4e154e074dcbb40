"""Tests of the walk-forward HTML report, its tables, charts and the screenshot script."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_from_dates, session_dates
from allocator_pipeline.report.charts import equity_and_drawdown, sample_rows
from allocator_pipeline.report.diagnostics import (
    importance_matrix,
    mean_pairwise_spearman,
    parameter_stability,
    pooled_reliability,
    tuning_table,
)
from allocator_pipeline.report.page import format_headline, headline_figure_png, headline_table, render_report
from allocator_pipeline.report.tables import STRATEGIES, headline_cells

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "screenshot_report.py"
CHROMIUM = Path("/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FEATURES = [f"{leg}_{kind}_{w}" for leg in ("qqq", "spy") for kind in ("ret", "vol", "dd") for w in (5, 21, 63)]
FEATURES += ["vix_level", "vix_change_5", "tbill_yield", "qqq_prob_up", "spy_prob_up", "qqq_drift_psi"]


def synthetic_oos_daily(start: str = "2018-01-01", end: str = "2021-12-31", seed: int = 3) -> pd.DataFrame:
    """A realistic out-of-sample path: legs with fat-ish tails, a smoothed weight, envelope cuts."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end)
    decision = decision_ts_from_dates(dates)
    n = len(decision)
    market = rng.standard_t(4, n) * 0.007
    qqq = 0.0009 + 1.2 * market + rng.normal(0, 0.004, n)
    spy = 0.0006 + market + rng.normal(0, 0.002, n)
    cash = np.full(n, 0.02 / 252)
    w_raw = np.clip(np.round(0.5 + 0.4 * np.sin(np.arange(n) / 40) + rng.normal(0, 0.2, n), 1), 0, 1)
    w_smoothed = np.empty(n)
    prev = 0.5
    for i in range(n):
        prev = prev + np.clip(0.5 * (w_raw[i] - prev), -0.1, 0.1)
        w_smoothed[i] = prev
    trailing_vol = pd.Series(qqq).rolling(21, min_periods=1).std().fillna(0.01).to_numpy() * np.sqrt(252)
    exposure = np.clip(0.22 / (trailing_vol + 1e-9), 0.4, 1.0)
    w_final = np.where(exposure < 0.6, 0.5 + 0.5 * (w_smoothed - 0.5), w_smoothed)

    def nxt(a):  # the weight of row d earns row d+1's leg returns
        return np.r_[a[1:], a[-1]]

    q1, s1, c1 = nxt(qqq), nxt(spy), nxt(cash)
    traded = np.abs(np.diff(np.r_[0.5, w_final])) * 2
    cost = traded * 3e-4
    frame = pd.DataFrame(
        {
            "realized_ts": decision_ts_from_dates(dates + pd.offsets.BDay(1)),
            "fold": [str(d.year) for d in dates],
            "w_raw": w_raw,
            "w_smoothed": w_smoothed,
            "w_final": w_final,
            "exposure": exposure,
            "qqq_leg_return": q1,
            "spy_leg_return": s1,
            "cash_return": c1,
            "traded": traded,
            "cost": cost,
            "ret_allocator": exposure * (w_final * q1 + (1 - w_final) * s1) + (1 - exposure) * c1 - cost,
            "ret_baseline": 0.5 * q1 + 0.5 * s1,
            "ret_qqq_only": q1,
            "ret_spy_only": s1,
            "ret_inverse_vol": 0.4 * q1 + 0.6 * s1,
            "ret_oracle": np.maximum(q1, s1),
        },
        index=decision,
    )
    weights = {"baseline": 0.5, "qqq_only": 1.0, "spy_only": 0.0, "inverse_vol": 0.4, "oracle": None}
    for name, w in weights.items():  # each baseline's own weight and trades, as evaluation writes them
        w_b = np.full(n, w) if w is not None else (q1 > s1).astype(float)
        traded_b = np.abs(np.diff(np.r_[0.5, w_b])) * 2 + (0.0 if w in (0.0, 1.0) else 0.004)
        frame[f"w_{name}"], frame[f"traded_{name}"], frame[f"cost_{name}"] = w_b, traded_b, traded_b * 3e-4
    return frame


def _figures(r: np.ndarray, months: np.ndarray) -> dict:
    eq = np.cumprod(1 + r)
    mdd = float((eq / np.maximum.accumulate(np.maximum(eq, 1.0)) - 1).min())
    cagr = float(eq[-1] ** (252 / len(r)) - 1)
    monthly = pd.Series(1 + r).groupby(months).prod() - 1
    return {
        "cagr": cagr,
        "max_drawdown": mdd,
        "calmar": cagr / abs(mdd) if mdd < 0 else None,
        "avg_monthly_pnl": float(monthly.mean()),
        "avg_monthly_pnl_ccy": float(monthly.mean()) * 1e6,
        "sharpe": float(r.mean() / r.std() * np.sqrt(252)),
        "volatility": float(r.std() * np.sqrt(252)),
        "monthly_hit_rate": float((monthly > 0).mean()),
        "worst_month": float(monthly.min()),
        "cvar_95": float(np.sort(r)[: max(1, len(r) // 20)].mean()),
        "turnover": 3.2,
        "cost_drag": 0.0011,
        "n_sessions": len(r),
        "start": "2018-01-02",
        "end": "2022-01-03",
    }


def synthetic_metrics(oos: pd.DataFrame, *, accepted: bool = True, tuning: bool = True, seed: int = 5) -> dict:
    """A metrics dict with the shape of metrics.json, its figures computed from ``oos``."""
    rng = np.random.default_rng(seed)
    months = session_dates(pd.DatetimeIndex(oos["realized_ts"])).to_period("M").astype(str).to_numpy()
    strategies = {s: _figures(oos[f"ret_{s}"].to_numpy(), months) for s in STRATEGIES}
    folds = {}
    for fold, part in oos.groupby("fold"):
        fm = months[oos["fold"].to_numpy() == fold]
        folds[str(fold)] = {s: _figures(part[f"ret_{s}"].to_numpy(), fm) for s in ("allocator", "baseline")}
    mids = [round(0.05 + 0.1 * k, 2) for k in range(10)]
    calibration = {}
    for fold in folds:
        counts = [0, 0, 5, 40, 120, 90, 30, 10, 4, 1]
        conf = [None if c == 0 else m + 0.01 for m, c in zip(mids, counts)]
        calibration[fold] = {
            "chosen": "temperature" if fold != "2019" else "isotonic",
            "before": {
                "log_loss": 1.95 + rng.random() * 0.1,
                "brier": 0.83,
                "ece": 0.08,
                "accuracy": 0.31,
                "top2_accuracy": 0.52,
            },
            "after": {
                "log_loss": 1.90 + rng.random() * 0.05,
                "brier": 0.81,
                "ece": 0.03,
                "accuracy": 0.31,
                "top2_accuracy": 0.52,
            },
            "reliability": {
                "before": {
                    "bin_mid": mids,
                    "confidence": conf,
                    "count": counts,
                    "accuracy": [None if c is None else max(c - 0.12, 0.0) for c in conf],
                },
                "after": {
                    "bin_mid": mids,
                    "confidence": conf,
                    "count": counts,
                    "accuracy": [None if c is None else max(c - 0.02, 0.0) for c in conf],
                },
            },
        }
    base = rng.dirichlet(np.ones(len(FEATURES)) * 2)
    importance = {f: dict(zip(FEATURES, rng.dirichlet(base * 200 + 0.1).round(6).tolist())) for f in folds}
    gates = [
        {
            "name": "avg_monthly_pnl_vs_baseline",
            "value": 0.0061,
            "threshold": 0.0055,
            "passed": True,
            "detail": "allocator avg monthly PnL must exceed the baseline's",
        },
        {
            "name": "calmar_vs_baseline",
            "value": 0.41,
            "threshold": 0.48,
            "passed": accepted,
            "detail": "allocator Calmar must exceed the baseline's",
        },
        {
            "name": "max_drawdown_tolerance",
            "value": 0.031,
            "threshold": 0.02,
            "passed": accepted,
            "detail": "|MaxDD| excess over the baseline",
        },
        {"name": "turnover_cap", "value": 3.2, "threshold": 12.0, "passed": True, "detail": "annualised"},
        {"name": "importance_stability", "value": 0.62, "threshold": 0.3, "passed": True, "detail": None},
    ]
    metrics = {
        "accepted": accepted,
        "strategies": strategies,
        "folds": folds,
        "gates": gates,
        "calibration": calibration,
        "importance": importance,
        "settings": {
            "labels": {"baseline_weight": 0.5},
            "report": {"currency": "USD", "notional": 1e6},
            "gates": {"min_importance_stability": 0.3},
        },
    }
    if tuning:
        metrics["tuning"] = {
            fold: {
                "best_params": {
                    "num_leaves": int(rng.integers(7, 31)),
                    "learning_rate": float(rng.uniform(0.02, 0.1)),
                    "alpha": float(rng.uniform(0.3, 0.7)),
                    "calibration": ["temperature", "isotonic"][k % 2],
                },
                "n_trials": 12,
                "best_value": float(rng.normal(0.8, 0.2)),
                "duration_s": float(rng.uniform(20, 80)),
            }
            for k, fold in enumerate(folds)
        }
    return metrics


def hand_metrics() -> dict:
    """Hand-made headline figures with known formatted strings."""

    def m(cagr, mdd, calmar, pnl, ccy, sharpe, vol, turnover, drag):
        return {
            "cagr": cagr,
            "max_drawdown": mdd,
            "calmar": calmar,
            "avg_monthly_pnl": pnl,
            "avg_monthly_pnl_ccy": ccy,
            "sharpe": sharpe,
            "volatility": vol,
            "turnover": turnover,
            "cost_drag": drag,
            "n_sessions": 1000,
        }

    return {
        "accepted": True,
        "strategies": {
            "oracle": m(0.5, -0.05, 10.0, 0.035, 35000.0, 4.0, 0.1, 40.0, 0.01),
            "baseline": m(0.081, -0.3012, 0.2689, 0.0066, 6600.4, 0.61, 0.18, 0.5, 0.0001),
            "allocator": m(0.123449, -0.234567, 0.5263, 0.008765, 8765.4, 0.7791, 0.15551, 4.214, 0.00213),
            "spy_only": m(0.07, -0.33, 0.2121, 0.006, 6000.0, 0.55, 0.19, 0.0, 0.0),
            "qqq_only": m(0.11, -0.5, 0.22, None, None, 0.6, 0.25, 0.0, 0.0),
        },
        "gates": [],
    }


@pytest.fixture(scope="module")
def oos() -> pd.DataFrame:
    return synthetic_oos_daily()


@pytest.fixture(scope="module")
def accepted(oos: pd.DataFrame) -> tuple[dict, str]:
    """An accepted run with tuning data; its headline figures are the hand-made ones."""
    metrics = synthetic_metrics(oos, accepted=True, tuning=True)
    metrics["strategies"].update(copy.deepcopy(hand_metrics()["strategies"]))
    return metrics, render_report(oos, metrics)


@pytest.fixture(scope="module")
def rejected(oos: pd.DataFrame) -> tuple[dict, str]:
    """A rejected run (two failed gates) without tuning data."""
    metrics = synthetic_metrics(oos, accepted=False, tuning=False)
    return metrics, render_report(oos, metrics)


def test_headline_table_orders_labels_and_keeps_raw_numbers() -> None:
    table = headline_table(hand_metrics())
    assert list(table.index) == ["allocator", "baseline", "qqq_only", "spy_only", "oracle"]
    assert "hindsight label path" in table.loc["oracle", "Strategy"].lower()
    assert table.loc["allocator", "CAGR"] == pytest.approx(0.123449)
    assert table.loc["allocator", "MaxDD"] == pytest.approx(-0.234567)
    assert np.isnan(table.loc["qqq_only", "AvgMonthlyPnL"])
    assert np.isnan(table.loc["qqq_only", "AvgMonthlyPnLCcy"])
    assert table.attrs["currency"] == "USD"
    with pytest.raises(InputDataError, match="allocator"):
        headline_table({"strategies": {"baseline": {}}})
    with pytest.raises(InputDataError, match="strategies"):
        headline_table({"accepted": False})


def test_format_headline_rounds_and_aligns() -> None:
    text = format_headline(headline_table(hand_metrics()))
    lines = text.rstrip("\n").split("\n")
    allocator = next(line for line in lines if line.startswith("Allocator"))
    for expected in ("12.34%", "-23.46%", "0.53", "0.88%", "8,765", "0.78", "15.55%", "4.21", "0.21%"):
        assert expected in allocator.split(), (expected, allocator)
    assert "n/a" in next(line for line in lines if line.startswith("QQQ leg only"))
    assert set(lines[1]) <= {"-", " "}
    # right-aligned figures: every row ends its last column at the same position
    assert len({len(line) for line in lines}) == 1
    cagr_end = lines[0].index("CAGR") + len("CAGR")
    assert all(line[cagr_end - 1] == "%" for line in lines[2:])


@pytest.mark.parametrize("run", ["accepted", "rejected"])
def test_report_is_self_contained(run: str, request: pytest.FixtureRequest) -> None:
    _, html = request.getfixturevalue(run)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"<script", html, re.I)
    assert not re.search(r"<link[^>]*stylesheet", html, re.I)
    assert not re.search(r"@import|url\(|@font-face", html, re.I)
    assert html.count('src="data:image/png;base64,') == 5
    assert len(html.encode()) < 600_000, len(html.encode())


def test_report_shows_headline_values_as_formatted(accepted: tuple[dict, str]) -> None:
    metrics, html = accepted
    headline = html[html.index('id="headline"') : html.index('id="equity"')]
    cells = headline_cells(headline_table(metrics))
    for strategy, row in cells.iterrows():
        for value in row:
            assert f">{value}<" in headline, (strategy, value)
    for expected in (
        "12.34%",
        "-23.46%",
        "8,765",
        "4.21",
        "Hindsight label path (penalised labels, not an upper bound)",
    ):
        assert f">{expected}<" in headline
    assert "ACCEPTED" in html and "REJECTED" not in html


def test_rejected_report_names_each_failed_gate(rejected: tuple[dict, str]) -> None:
    metrics, html = rejected
    verdict = html[html.index('id="verdict"') : html.index('id="headline"')]
    assert "REJECTED" in verdict and "ACCEPTED" not in verdict
    failed = [g for g in metrics["gates"] if not g["passed"]]
    assert len(failed) == 2 and "2 of 5" in verdict
    for gate in failed:
        assert gate["name"] in verdict
    assert "missed by 0.07" in verdict and "missed by 0.011" in verdict
    assert "turnover_cap" not in verdict and "turnover_cap" in html  # passed gates only in the gate table
    assert html.count(">FAIL<") == 2 and html.count(">PASS<") == 3


def test_tuning_section_only_with_tuning_data(accepted: tuple[dict, str], rejected: tuple[dict, str]) -> None:
    metrics, html = accepted
    assert 'id="tuning"' in html and "Parameter stability" in html
    for params in metrics["tuning"].values():
        assert f">{params['best_params']['num_leaves']}<" in html
    assert "learning_rate" in html and ">isotonic (50%)<" in html
    absent, html = rejected
    assert "tuning" not in absent
    assert 'id="tuning"' not in html and "learning_rate" not in html and "Best parameters" not in html


def test_sparse_metrics_render_with_clear_notes() -> None:
    """Only headline figures, empty tuning: every section says what is missing, nothing breaks."""
    short = synthetic_oos_daily("2021-01-01", "2021-03-31")
    sparse = {**hand_metrics(), "accepted": False, "tuning": {}}
    html = render_report(short, sparse)
    assert 'id="tuning"' not in html and "Best parameters" not in html
    for note in (
        "No per-fold metrics recorded",
        "No calibration diagnostics recorded",
        "No feature importance recorded",
        "No gate results recorded",
        "no failed gate recorded",
    ):
        assert note in html, note
    assert "REJECTED" in html and ">12.34%<" in html


def test_report_and_figure_are_deterministic(oos: pd.DataFrame, rejected: tuple[dict, str]) -> None:
    metrics, html = rejected
    assert render_report(oos.copy(), copy.deepcopy(metrics)) == html
    png = headline_figure_png(oos)
    assert png.startswith(PNG_SIGNATURE) and png == headline_figure_png(oos.copy())
    assert b"Software" not in png and b"matplotlib" not in png.lower() and b"tEXt" not in png


def test_equity_uses_realized_sessions_and_only_past_returns(oos: pd.DataFrame) -> None:
    dates, equity, drawdown = equity_and_drawdown(oos)
    expected_dates = session_dates(pd.DatetimeIndex(oos["realized_ts"])).to_numpy(dtype="datetime64[ns]")
    np.testing.assert_array_equal(dates, expected_dates)
    r = oos["ret_allocator"].to_numpy()
    np.testing.assert_allclose(equity["allocator"], np.cumprod(1 + r), rtol=1e-12)
    assert np.all(drawdown["allocator"] <= 0)
    # changing returns after row k leaves the curves up to row k unchanged (no forward look)
    k = 300
    shocked = oos.copy()
    shocked.iloc[k + 1 :, shocked.columns.get_loc("ret_allocator")] = -0.05
    _, eq2, dd2 = equity_and_drawdown(shocked)
    np.testing.assert_array_equal(eq2["allocator"][: k + 1], equity["allocator"][: k + 1])
    np.testing.assert_array_equal(dd2["allocator"][: k + 1], drawdown["allocator"][: k + 1])


def test_bad_oos_daily_is_refused(oos: pd.DataFrame) -> None:
    metrics = synthetic_metrics(oos)
    with pytest.raises(InputDataError, match="w_final"):
        render_report(oos.drop(columns=["w_final"]), metrics)
    with pytest.raises(InputDataError, match="tz-aware"):
        render_report(oos.tz_localize(None), metrics)
    with pytest.raises(InputDataError, match="empty"):
        headline_figure_png(oos.iloc[:0])


def test_sample_rows_keeps_ends_and_caps_points() -> None:
    rows = sample_rows(6000, 2000)
    assert len(rows) <= 2000 and rows[0] == 0 and rows[-1] == 5999 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(sample_rows(50, 2000), np.arange(50))


def test_pooled_reliability_weights_bins_by_count() -> None:
    calibration = {
        "2019": {
            "reliability": {
                "after": {"bin_mid": [0.25, 0.75], "confidence": [0.2, 0.7], "accuracy": [0.1, 0.8], "count": [10, 30]}
            }
        },
        "2020": {
            "reliability": {
                "after": {"bin_mid": [0.25, 0.75], "confidence": [0.3, None], "accuracy": [0.4, None], "count": [30, 0]}
            }
        },
    }
    curve = pooled_reliability(calibration, "after").set_index("bin_mid")
    assert curve.loc[0.25, "confidence"] == pytest.approx((0.2 * 10 + 0.3 * 30) / 40)
    assert curve.loc[0.25, "accuracy"] == pytest.approx((0.1 * 10 + 0.4 * 30) / 40)
    assert curve.loc[0.75, "confidence"] == pytest.approx(0.7) and curve.loc[0.75, "count"] == 30
    assert pooled_reliability(calibration, "before").empty


def test_importance_stability_and_parameter_stability() -> None:
    same = {"2019": {"a": 0.5, "b": 0.3, "c": 0.2}, "2020": {"a": 0.6, "b": 0.3, "c": 0.1}}
    matrix = importance_matrix(same)
    assert list(matrix.index) == ["a", "b", "c"]
    assert mean_pairwise_spearman(matrix) == pytest.approx(1.0)
    flipped = {**same, "2021": {"a": 0.1, "b": 0.3, "c": 0.6}}
    assert mean_pairwise_spearman(importance_matrix(flipped)) == pytest.approx((1.0 - 1.0 - 1.0) / 3)
    assert importance_matrix({"2019": {"a": 1.0}, "2020": {"b": 1.0}}).loc["a", "2020"] == 0.0
    tuning = {
        f: {
            "best_params": {"lr": lr, "kind": k},
            "n_trials": 5,
            "best_value": 1.0,
            "duration_s": 2.0,
            "selection": {"chosen_trial": chosen, "chosen_role": role},
        }
        # 2021: a study resumed after a killed run enqueued its defaults again as trial 13
        for f, lr, k, chosen, role in (
            ("2019", 0.02, "x", 0, "defaults"),
            ("2020", 0.04, "y", 3, "tpe"),
            ("2021", 0.06, "x", 13, "defaults"),
        )
    }
    table = tuning_table(tuning)
    assert table["traded"].tolist() == ["defaults", "trial 3", "defaults"]
    stability = parameter_stability(table)
    assert sorted(stability.index) == ["kind", "lr"]  # the table's head columns are not parameters
    assert stability.loc["lr", "cv"] == pytest.approx(np.std([0.02, 0.04, 0.06]) / 0.04)
    assert stability.loc["lr", "range"] == pytest.approx(0.04)
    assert stability.loc["kind", "mode"] == "x" and stability.loc["kind", "mode_share"] == pytest.approx(2 / 3)


def test_screenshot_script_writes_png(rejected: tuple[dict, str], tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    report = tmp_path / "report.html"
    report.write_text(rejected[1])
    out = tmp_path / "shot" / "report.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(report), str(out), "--window-size", "1000,1400"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert "wrote" in done.stdout


def test_screenshot_script_explains_missing_chromium(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    env = {"PATH": "/usr/bin:/bin", "CHROMIUM": str(tmp_path / "no-such-browser")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(report), str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "apt-get install -y chromium" in done.stderr and "no-such-browser" in done.stderr
    assert not (tmp_path / "o.png").exists()


def test_report_reads_the_evaluation_metrics_contract(oos: pd.DataFrame) -> None:
    """metrics from core/evaluation/walk_forward.py render as-is, and the charts' drawdowns agree with them."""
    from allocator_pipeline.core.evaluation.walk_forward import walk_forward_metrics

    metrics = {"accepted": True, "gates": [], **walk_forward_metrics(oos, 1_000_000.0)}
    _, equity, drawdown = equity_and_drawdown(oos)
    for strategy, m in metrics["strategies"].items():
        assert float(np.nanmin(drawdown[strategy])) == pytest.approx(m["max_drawdown"], abs=1e-12)
        years = m["n_sessions"] / 252
        assert equity[strategy][-1] ** (1 / years) - 1 == pytest.approx(m["cagr"], rel=1e-9)
    short = oos.loc[oos["fold"] == "2021"]
    metrics = {"accepted": True, "gates": [], **walk_forward_metrics(short, 1_000_000.0)}
    html = render_report(short, metrics)
    for value in headline_cells(headline_table(metrics)).to_numpy().ravel():
        assert f">{value}<" in html


def test_gate_figures_read_the_same_in_the_terminal_and_the_page_in_the_headline_units(oos: pd.DataFrame) -> None:
    """A monthly-PnL gate in percent a month and a Calmar gate at +inf (a zero drawdown): the
    terminal's gate line and the page's gate table and verdict print the same strings."""
    from allocator_pipeline.report.tables import gate_line

    metrics = synthetic_metrics(oos, accepted=False, tuning=False)
    metrics["gates"] = [
        {
            "name": "avg_monthly_pnl_vs_baseline",
            "value": 0.0003872,
            "threshold": 0.0,
            "passed": False,
            "detail": "on the lower bound",
            "interval": [-0.0003524, 0.001161],
        },
        {"name": "calmar_vs_baseline", "value": float("inf"), "threshold": 0.0, "passed": True, "detail": ""},
        {"name": "max_drawdown_vs_baseline", "value": 0.0, "threshold": 0.02, "passed": True, "detail": ""},
    ]
    html = render_report(oos, metrics)
    lines = [gate_line(g) for g in metrics["gates"]]
    assert lines[0] == "[FAIL] avg_monthly_pnl_vs_baseline: value 0.04% [-0.04%, 0.12%] vs threshold 0.00%"
    assert lines[1] == "[pass] calmar_vs_baseline: value +inf vs threshold 0.00"
    assert lines[2] == "[pass] max_drawdown_vs_baseline: value 0.00% vs threshold 2.00%"
    for text in (">0.04%<", ">[-0.04%, 0.12%]<", ">+inf<", ">2.00%<"):
        assert text in html, text
    verdict = html[html.index('id="verdict"') : html.index('id="headline"')]
    assert "value 0.04% [-0.04%, 0.12%] vs threshold 0.00%, missed by 0.04%" in verdict
    assert "inf<" not in html.replace(">+inf<", "")  # no other spelling of infinity


def test_labels_follow_the_configured_leg_symbols(oos: pd.DataFrame) -> None:
    """A run on TLT against SPY (data.qqq_symbol = TLT): the title and the single-leg rows name TLT."""
    metrics = synthetic_metrics(oos, accepted=True, tuning=False)
    metrics["settings"]["data"] = {"qqq_symbol": "TLT", "spy_symbol": "SPY"}
    html = render_report(oos, metrics)
    assert "<title>TLT/SPY allocator: walk-forward report</title>" in html
    table = headline_table(metrics)
    assert table.loc["qqq_only", "Strategy"] == "TLT leg only"
    assert table.loc["spy_only", "Strategy"] == "SPY leg only"
    headline = html[html.index('id="headline"') : html.index('id="equity"')]
    assert ">TLT leg only<" in headline and "QQQ" not in headline


def test_the_weights_chart_names_the_configured_growth_leg(oos: pd.DataFrame, monkeypatch) -> None:
    """The weights chart's title and axis follow data.qqq_symbol (the figure's texts, read before it
    is rendered to PNG)."""
    from allocator_pipeline.report import charts

    texts: list[str] = []
    real_png = charts._png

    def capture(fig, *args, **kwargs):
        texts.extend(t.get_text() for t in fig.findobj(match=lambda o: hasattr(o, "get_text")))
        return real_png(fig, *args, **kwargs)

    monkeypatch.setattr(charts, "_png", capture)
    charts.weights_png(oos, "TLT")
    assert "TLT weight through the policy and the risk envelope" in texts
    assert "w_qqq (share of TLT leg)" in texts and not any("QQQ" in t for t in texts)


def test_the_page_templates_ship_as_package_data():
    """A non-editable install has the templates: every file of report/templates is matched by a
    package-data pattern of pyproject.toml (globbed as setuptools does: ``*`` stays in its folder)."""
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = root / "allocator_pipeline"
    shipped = {p for pattern in patterns["allocator_pipeline"] for p in package.glob(pattern)}
    templates = {p for p in (package / "report" / "templates").rglob("*") if p.is_file()}
    assert templates and templates <= shipped, sorted(str(p.relative_to(package)) for p in templates - shipped)
