"""The verdict's evidence: bootstrap intervals, deflated Sharpe, PBO, return attribution, ablations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from allocator_pipeline.core.allocation.path import Segment, run_segments
from allocator_pipeline.core.common.grid import PROBA_COLUMNS
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.evaluation.ablations import ABLATIONS, ablation_decisions, envelope_path
from allocator_pipeline.core.evaluation.attribution import ATTRIBUTION_TERMS, attribution_summary, daily_attribution
from allocator_pipeline.core.evaluation.bootstrap import month_starts, paired_bootstrap, path_metrics
from allocator_pipeline.core.evaluation.gates import evaluate_gates
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.evaluation.overfitting import (
    deflated_sharpe,
    overfitting_statistics,
    pbo_cscv,
    pooled_sharpe_variance,
    research_trials,
)
from allocator_pipeline.core.evaluation.walk_forward import assemble_walk_forward
from allocator_pipeline.report.page import render_report
from allocator_pipeline.report.tables import fmt_interval
from allocator_pipeline.settings import BootstrapSettings, Settings

SETTINGS = Settings()
"""The defaults: every envelope stage on."""


def _frame(ts: pd.DatetimeIndex, ret: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"realized_ts": ts, "ret": ret, "r_cash": 0.0, "traded": 0.0, "cost": 0.0})


# --- bootstrap -----------------------------------------------------------------------------------


def test_resampled_path_metrics_are_the_project_metrics():
    rng = np.random.default_rng(1)
    ts = decision_ts_from_dates(pd.bdate_range("2020-01-02", periods=300))
    paths = rng.normal(0.0003, 0.012, (3, 300))
    got = path_metrics(paths, month_starts(ts))
    for b in range(3):
        m = performance_metrics(_frame(ts, paths[b]), 1.0)
        assert got["calmar"][b] == pytest.approx(m["calmar"], rel=1e-12)
        assert got["avg_monthly_pnl"][b] == pytest.approx(m["avg_monthly_pnl"], rel=1e-12, abs=1e-15)
        assert got["max_drawdown"][b] == pytest.approx(m["max_drawdown"], rel=1e-12)


def test_bootstrap_point_is_the_metrics_difference_and_is_deterministic():
    rng = np.random.default_rng(2)
    ts = decision_ts_from_dates(pd.bdate_range("2015-01-02", periods=800))
    b = rng.normal(0.0004, 0.012, 800)
    a = 0.6 * b + rng.normal(0.0002, 0.005, 800)
    s = BootstrapSettings(resamples=300, block_length=20, seed=4)
    out = paired_bootstrap(a, b, ts, s)
    ma, mb = performance_metrics(_frame(ts, a), 1.0), performance_metrics(_frame(ts, b), 1.0)
    assert out["calmar"]["point"] == pytest.approx(ma["calmar"] - mb["calmar"], rel=1e-12)
    assert out["avg_monthly_pnl"]["point"] == pytest.approx(ma["avg_monthly_pnl"] - mb["avg_monthly_pnl"], rel=1e-12)
    for m in ("calmar", "avg_monthly_pnl"):
        assert out[m]["lower"] < out[m]["point"] < out[m]["upper"]
    assert paired_bootstrap(a, b, ts, s) == out
    assert paired_bootstrap(a, b, ts, s.model_copy(update={"seed": 5})) != out


def test_bootstrap_covers_a_known_difference_at_the_stated_rate():
    """Independent daily returns with means mu_a, mu_b: a month of m sessions has expected
    compounded return (1 + mu)^m - 1, so the expected difference of average monthly PnL over the
    sample's calendar is known exactly; the 90% interval must cover it in about 90% of samples."""
    n, reps, confidence = 378, 150, 0.90
    ts = decision_ts_from_dates(pd.bdate_range("2021-01-04", periods=n))
    sizes = np.diff(np.r_[month_starts(ts), n])
    mu_a, mu_b = 0.0008, 0.0003
    truth = float(np.mean((1 + mu_a) ** sizes - (1 + mu_b) ** sizes))
    s = BootstrapSettings(resamples=400, block_length=5, confidence=confidence)
    covered = 0
    for seed in range(reps):
        rng = np.random.default_rng(1000 + seed)
        common = rng.normal(0.0, 0.01, n)
        a = mu_a + common + rng.normal(0.0, 0.006, n)
        b = mu_b + 0.8 * common + rng.normal(0.0, 0.004, n)
        out = paired_bootstrap(a, b, ts, s.model_copy(update={"seed": seed}))["avg_monthly_pnl"]
        covered += out["lower"] <= truth <= out["upper"]
    assert 0.82 <= covered / reps <= 0.97, covered / reps


def test_beats_the_baseline_gates_pass_on_the_lower_bound():
    overall = {
        "allocator": {"avg_monthly_pnl": 0.011, "calmar": 0.5, "max_drawdown": -0.2, "turnover": 1.0, "cagr": 0.1},
        "baseline": {"avg_monthly_pnl": 0.010, "calmar": 0.4, "max_drawdown": -0.2, "turnover": 0.1, "cagr": 0.1},
    }
    boot = {
        "confidence": 0.9,
        "block_length": 63,
        "resamples": 2000,
        "avg_monthly_pnl": {"point": 0.001, "lower": -0.0005, "upper": 0.002, "share_positive": 0.8},
        "calmar": {"point": 0.1, "lower": 0.01, "upper": 0.2, "share_positive": 0.97},
    }
    gates = evaluate_gates(overall, {}, pd.DataFrame(), {}, SETTINGS.gates, bootstrap=boot)
    by = {g["name"]: g for g in gates}
    pnl, calmar = by["avg_monthly_pnl_vs_baseline"], by["calmar_vs_baseline"]
    assert pnl["value"] == pytest.approx(0.001) and pnl["interval"] == [-0.0005, 0.002] and not pnl["passed"]
    assert calmar["interval"] == [0.01, 0.2] and calmar["passed"]


# --- deflated Sharpe and PBO ---------------------------------------------------------------------


def test_deflated_sharpe_matches_a_hand_computation_of_the_formula():
    rng = np.random.default_rng(7)
    x = rng.standard_t(5, 2000) * 0.01 + 0.0006  # fat tails
    n_trials, variance = 37, 0.0009
    out = deflated_sharpe(x, n_trials, variance)
    sr = x.mean() / x.std(ddof=1)
    g3, g4 = stats.skew(x), stats.kurtosis(x, fisher=False)
    gamma = 0.5772156649015329
    sr0 = math.sqrt(variance) * (
        (1 - gamma) * stats.norm.ppf(1 - 1 / n_trials) + gamma * stats.norm.ppf(1 - 1 / (n_trials * math.e))
    )
    dsr = stats.norm.cdf((sr - sr0) * math.sqrt(len(x) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert out["sharpe"] == pytest.approx(sr, rel=1e-12)
    assert out["skewness"] == pytest.approx(g3, rel=1e-9) and out["kurtosis"] == pytest.approx(g4, rel=1e-9)
    assert out["sr0"] == pytest.approx(sr0, rel=1e-9)
    assert out["dsr"] == pytest.approx(dsr, rel=1e-9)
    assert deflated_sharpe(x, 1, variance)["sr0"] == 0.0  # one trial: nothing to deflate for


def test_pbo_is_near_zero_when_one_trial_dominates_and_near_half_for_noise():
    rng = np.random.default_rng(11)
    noise = [pbo_cscv(rng.normal(0.0, 0.01, (640, 10)), 16)["pbo"] for _ in range(16)]
    assert 0.4 <= float(np.mean(noise)) <= 0.6, noise
    dominated = rng.normal(0.0, 0.01, (640, 10))
    dominated[:, 4] += 0.006  # trial 4 is the best in every block
    out = pbo_cscv(dominated, 16)
    assert out["pbo"] <= 0.02 and out["n_combinations"] == 12870 and out["block_sessions"] == 40


def test_overfitting_statistics_from_trial_ledgers():
    rng = np.random.default_rng(5)
    ledgers = {}
    for fold in ("2019", "2020"):
        n = 320
        frame = pd.DataFrame({"inner": np.repeat([0, 1], n // 2), "cash_return": np.full(n, 1e-4)})
        for k in range(5):
            frame[f"trial_{k}"] = rng.normal(0.0003, 0.01, n)
            frame[f"active_{k}"] = rng.normal(0.0001 * k, 0.003, n)  # the weight choice over the baseline
        frame.loc[n // 2 :, ["trial_4", "active_4"]] = np.nan  # pruned after the first block: not complete
        ledgers[fold] = frame
    excess = rng.normal(0.0005, 0.01, 1000)
    out = overfitting_statistics(excess, ledgers, n_trials=10, n_blocks=8)
    # V: the complete trials' Sharpe ratios of the same subject as the deflated Sharpe's
    sharpes = {
        f: np.array([lg[f"active_{k}"].mean() / lg[f"active_{k}"].std(ddof=1) for k in range(4)])
        for f, lg in ledgers.items()
    }
    variance, dof = pooled_sharpe_variance(sharpes)
    assert dof == 6 and out["deflated_sharpe"]["trial_sharpe_variance"] == pytest.approx(variance, rel=1e-9)
    # N: the studies' trials plus the research ledger's variants (overfitting module docstring)
    assert out["deflated_sharpe"]["n_trials"] == 10 + research_trials()
    assert out["deflated_sharpe"]["n_study_trials"] == 10 and out["deflated_sharpe"]["variance_source"] == "trials"
    assert set(out["pbo"]["folds"]) == {"2019", "2020"} and out["pbo"]["folds"]["2019"]["n_trials"] == 4
    assert out["pbo"]["value"] == pytest.approx(np.mean([f["pbo"] for f in out["pbo"]["folds"].values()]))


def test_the_trials_variance_is_of_their_weight_choice_over_the_baseline():
    """V is pooled from each complete trial's ``active_<n>`` column (its weight choice over the
    baseline), not from its traded returns over cash; a trial stored without it is left out of V
    (the floor 1/T then applies) while PBO still ranks every complete trial over cash."""
    rng = np.random.default_rng(9)
    n = 240
    legs = rng.normal(4e-4, 0.011, n)  # the book both trials hold, plus a tilt of their own
    frame = pd.DataFrame({"inner": np.repeat([0, 1], n // 2), "cash_return": np.full(n, 1e-4)})
    for k in range(4):
        tilt = rng.normal(2e-4 * k, 0.003, n)
        frame[f"trial_{k}"] = legs + tilt
        frame[f"active_{k}"] = tilt
    subject = rng.normal(0, 0.01, 1000)
    out = overfitting_statistics(subject, {"2019": frame}, 4, 8, research_trials_count=0)["deflated_sharpe"]
    sr = np.array([frame[f"active_{k}"].mean() / frame[f"active_{k}"].std(ddof=1) for k in range(4)])
    by_hand = float(((sr - sr.mean()) ** 2).sum() / 3)
    assert out["trial_sharpe_variance_pooled"] == pytest.approx(by_hand, rel=1e-12)
    assert out["variance_source"] == "trials" and out["trial_sharpe_variance"] == pytest.approx(by_hand, rel=1e-12)
    # over cash the legs' common spread hides the tilts: a far smaller variance
    over_cash = np.array([(frame[f"trial_{k}"] - 1e-4).mean() / frame[f"trial_{k}"].std(ddof=1) for k in range(4)])
    assert float(np.var(over_cash, ddof=1)) < by_hand / 5
    # a ledger from before the subject was recorded: V at its floor, PBO unchanged
    old = frame.drop(columns=[f"active_{k}" for k in range(4)])
    before = overfitting_statistics(subject, {"2019": old}, 4, 8, research_trials_count=0)
    assert before["deflated_sharpe"]["variance_source"] == "null"
    assert before["deflated_sharpe"]["trial_sharpe_variance_pooled"] is None
    with_active = overfitting_statistics(subject, {"2019": frame}, 4, 8, research_trials_count=0)
    assert before["pbo"] == with_active["pbo"]


# --- ablations and attribution on one continuous path ---------------------------------------------


def _world(n: int = 330, seed: int = 3):
    rng = np.random.default_rng(seed)
    idx = decision_ts_from_dates(pd.bdate_range("2019-06-03", periods=n))
    context = pd.DataFrame(
        {
            "qqq_leg_return": rng.normal(0.0004, 0.022, n),
            "spy_leg_return": rng.normal(0.0003, 0.014, n),
            "cash_return": np.full(n, 0.00008),
            "qqq_drift_psi": rng.gamma(1.0, 0.3, n),
            "spy_drift_psi": rng.gamma(1.0, 0.3, n),
            "qqq_prob_up": rng.uniform(0.3, 0.7, n),
            "spy_prob_up": rng.uniform(0.3, 0.7, n),
        },
        index=idx,
    )
    labels = pd.DataFrame({"best_weight": np.round(rng.integers(0, 21, n) * 0.05, 2)}, index=idx)
    settings_of = {
        "2019": SETTINGS.model_copy(
            update={"envelope": SETTINGS.envelope.model_copy(update={"vol_target": 0.15, "dd_soft": 0.05})}
        ),
        "2020": SETTINGS.model_copy(
            update={"envelope": SETTINGS.envelope.model_copy(update={"vol_target": 0.25, "dd_hard": 0.18})}
        ),
    }
    segments = []
    for fold, (a, b) in {"2019": (60, 190), "2020": (190, 330)}.items():
        proba = pd.DataFrame(rng.dirichlet(np.ones(11) * 0.4, b - a), index=idx[a:b], columns=PROBA_COLUMNS)
        m, prior = rng.normal(0.0, 0.01, (11, 11)), rng.dirichlet(np.ones(11))
        segments.append(Segment(f"fold:{fold}", proba, m, settings_of[fold], prior))
    path, _ = run_segments(segments, context)
    path.insert(0, "fold", path["model_id"].str.removeprefix("fold:"))
    return context, labels, path, settings_of


def test_the_ablation_envelope_is_the_allocator_path_code():
    context, _, path, settings_of = _world()
    replayed = envelope_path(path["w_smoothed"], path["fold"], settings_of, context)
    np.testing.assert_array_equal(replayed["w_final"].to_numpy(), path["w_final"].to_numpy())
    np.testing.assert_array_equal(replayed["exposure"].to_numpy(), path["exposure"].to_numpy())
    assert (path["exposure"] < 1).any() and path["drift_throttled"].any()  # the envelope did act
    ablations = ablation_decisions(path, settings_of, context)
    model = ablations["model_only"]
    np.testing.assert_array_equal(model["w"].to_numpy(), path["w_smoothed"].to_numpy())
    assert (model["exposure"] == 1.0).all()
    envelope = ablations["envelope_only"]
    assert (envelope["exposure"] < 1).any() and not envelope["exposure"].equals(path["exposure"])
    assert set(envelope["w"]) == {0.5}  # the drift throttle moves toward the baseline weight: it stays there


@pytest.mark.parametrize("lag", [0, 1])
def test_attribution_terms_add_up_to_the_return_difference(lag):
    context, labels, path, settings_of = _world()
    s = SETTINGS.model_copy(update={"backtest": SETTINGS.backtest.model_copy(update={"execution_lag": lag})})
    fold_paths = {f: rows for f, rows in path.groupby("fold", sort=False)}
    oos, metrics = assemble_walk_forward(
        fold_paths, context, labels, s, ablations=ablation_decisions(path, settings_of, context)
    )
    assert set(ABLATIONS) <= set(metrics["strategies"]) and set(ABLATIONS) <= set(metrics["folds"]["2020"])
    for name in ABLATIONS:
        assert {f"ret_{name}", f"w_{name}", f"exposure_{name}", f"cost_{name}"} <= set(oos.columns)
    daily = daily_attribution(oos)
    diff = (oos["ret_allocator"] - oos["ret_baseline"]).to_numpy()
    assert np.abs(daily[list(ATTRIBUTION_TERMS)].sum(axis=1).to_numpy() - diff).max() <= 1e-12
    summary = attribution_summary(oos)
    for part in [summary["overall"], *summary["folds"].values()]:
        assert abs(sum(part[t] for t in ATTRIBUTION_TERMS) - part["difference"]) <= 1e-12
        assert abs(sum(part["annualised"][t] for t in ATTRIBUTION_TERMS) - part["annualised"]["difference"]) <= 1e-12
    assert summary["overall"]["difference"] == pytest.approx(diff.sum(), abs=1e-14)
    assert all(abs(summary["overall"][t]) > 0 for t in ATTRIBUTION_TERMS)


def test_report_shows_the_evidence_the_ablations_and_the_gate_intervals():
    context, labels, path, settings_of = _world()
    fold_paths = {f: rows for f, rows in path.groupby("fold", sort=False)}
    oos, metrics = assemble_walk_forward(
        fold_paths, context, labels, SETTINGS, ablations=ablation_decisions(path, settings_of, context)
    )
    boot = paired_bootstrap(
        oos["ret_allocator"], oos["ret_baseline"], oos["realized_ts"], BootstrapSettings(resamples=200)
    )
    rng = np.random.default_rng(3)
    ledger = pd.DataFrame({"inner": 0, "cash_return": np.full(200, 1e-4)})
    for k in range(4):
        ledger[f"trial_{k}"] = rng.normal(0.0, 0.01, 200)
    active = (oos["ret_model_only"] - oos["ret_baseline"]).to_numpy()
    over = overfitting_statistics(active, {"2019": ledger}, n_trials=4, n_blocks=8)
    gates = evaluate_gates(
        metrics["strategies"],
        metrics["folds"],
        pd.DataFrame(),
        {},
        SETTINGS.gates,
        bootstrap=boot,
        overfitting={**over, "tuned_folds": 1},
    )
    metrics.update(
        gates=gates,
        accepted=False,
        bootstrap=boot,
        deflated_sharpe=over["deflated_sharpe"],
        pbo=over["pbo"],
        attribution=attribution_summary(oos),
        settings=SETTINGS.model_dump(mode="json"),
    )
    html = render_report(oos, metrics)
    for anchor in ('id="evidence"', 'id="attribution"', 'id="ablations"', "Deflated Sharpe ratio", "PBO per fold"):
        assert anchor in html, anchor
    assert "Envelope only (baseline w + envelope)" in html and "Model only (allocator w, no envelope)" in html
    calmar = next(g for g in gates if g["name"] == "calmar_vs_baseline")
    assert (
        fmt_interval(calmar["interval"], calmar["name"]) in html
        and calmar["interval"][0] < calmar["value"] < calmar["interval"][1]
    )
    assert {g["name"] for g in gates} >= {"deflated_sharpe", "pbo"}
    assert render_report(oos, metrics) == html  # deterministic


# --- three-way verdict ---------------------------------------------------------------------------


def test_three_way_verdict_tells_the_envelope_from_the_model():
    """Hand-built returns with known answers: the envelope only is the baseline plus noise (it earns
    nothing), the allocator is the envelope only plus 5 bp a day (it adds), the confidence rule is
    absent (not evaluated)."""
    from allocator_pipeline.core.evaluation.comparisons import model_found_skill, three_way_verdict
    from allocator_pipeline.report.comparisons import comparison_lines

    rng = np.random.default_rng(8)
    n = 1500
    idx = decision_ts_from_dates(pd.bdate_range("2015-01-02", periods=n))
    base = rng.normal(0.0003, 0.01, n)
    envelope_only = base + rng.normal(0.0, 0.002, n)
    oos = pd.DataFrame({"realized_ts": idx, "ret_baseline": base, "ret_envelope_only": envelope_only}, index=idx)
    oos["ret_allocator"] = envelope_only + 0.0005
    s = BootstrapSettings(resamples=400)
    out = three_way_verdict(oos, seed_accepted=True, settings=s, max_exposure=1.0)
    assert out["model_increment"]["passed"] and out["model_increment"]["sentence"] == "the model adds to the envelope"
    assert out["model_increment"]["avg_monthly_pnl"]["lower"] > 0
    assert not out["envelope"]["passed"] and out["envelope"]["calmar"]["lower"] < 0 < out["envelope"]["calmar"]["upper"]
    assert out["confidence_rule"] is None and "confidence rule not evaluated" in out["summary"]
    assert out["borrowing"] == "gross exposure up to 1: no borrowing"
    assert model_found_skill(out)
    assert not model_found_skill({**out, "seed": {"accepted": False}})
    lines = comparison_lines({"comparisons": out})
    assert lines[0].startswith("[FAIL] Envelope earns") and lines[1].startswith("[pass] Model's increment")
    assert lines[2] == "Against the confidence rule (allocator - confidence rule): not evaluated"
    # the allocator equal to the envelope only: every resample's difference is 0, so no interval
    # lies above 0 and the model adds nothing
    same = three_way_verdict(oos.assign(ret_allocator=envelope_only), True, s, 1.5)
    assert not same["model_increment"]["passed"] and same["model_increment"]["calmar"]["lower"] == 0.0
    assert not model_found_skill(same)
    assert "borrowed at the T-bill rate" in same["borrowing"]
