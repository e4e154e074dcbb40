"""Acceptance gates on hand-made metric dicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.evaluation.gates import (
    accepted,
    evaluate_gates,
    importance_stability,
    monotonic_response,
    not_evaluated,
)
from allocator_pipeline.settings import GateSettings

SETTINGS = GateSettings(
    max_dd_tolerance=0.02,
    turnover_cap=12.0,
    max_negative_fold_rate=0.35,
    min_p25_fold_calmar=0.0,
    min_importance_stability=0.3,
    monotonic_features=("qqq_vol_21", "qqq_dd_63"),
)


def _m(**kw) -> dict:
    base = {"avg_monthly_pnl": 0.008, "calmar": 0.9, "max_drawdown": -0.20, "turnover": 6.0, "cagr": 0.10}
    return {**base, **kw}


def _inputs():
    overall = {"allocator": _m(), "baseline": _m(avg_monthly_pnl=0.006, calmar=0.6, max_drawdown=-0.19)}
    folds = {
        "2019": {"allocator": _m(cagr=0.12, calmar=1.5)},
        "2020": {"allocator": _m(cagr=-0.03, calmar=-0.2)},
        "2021": {"allocator": _m(cagr=0.20, calmar=2.0)},
        "2022": {"allocator": _m(cagr=0.05, calmar=0.4)},
    }
    importance = pd.DataFrame(
        [[0.5, 0.3, 0.2, 0.0], [0.4, 0.35, 0.15, 0.1], [0.45, 0.25, 0.2, 0.1]],
        index=["2019", "2020", "2021"],
        columns=["a", "b", "c", "d"],
    )
    monotonic = {"qqq_vol_21": -0.04, "qqq_dd_63": 0.0}
    return overall, folds, importance, monotonic


def _by_name(gates):
    return {g["name"]: g for g in gates}


def test_all_gates_pass_on_a_good_allocator():
    gates = evaluate_gates(*_inputs(), SETTINGS)
    g = _by_name(gates)
    assert list(g) == [
        "avg_monthly_pnl_vs_baseline",
        "calmar_vs_baseline",
        "max_drawdown_vs_baseline",
        "turnover",
        "negative_fold_rate",
        "p25_fold_calmar",
        "importance_stability",
        "monotonic_sanity",
    ]
    assert all(set(x) == {"name", "value", "threshold", "passed", "evaluated", "detail", "interval"} for x in gates)
    assert g["avg_monthly_pnl_vs_baseline"]["value"] == pytest.approx(0.002)
    assert g["calmar_vs_baseline"]["value"] == pytest.approx(0.3)
    assert g["max_drawdown_vs_baseline"]["value"] == pytest.approx(0.01)
    assert g["negative_fold_rate"]["value"] == pytest.approx(0.25)
    # fold Calmar sorted: -0.2, 0.4, 1.5, 2.0; p25 at position 0.75 -> -0.2 + 0.75*0.6 = 0.25
    assert g["p25_fold_calmar"]["value"] == pytest.approx(0.25)
    assert g["p25_fold_calmar"]["value"] == pytest.approx(np.percentile([-0.2, 0.4, 1.5, 2.0], 25))
    assert g["monotonic_sanity"]["value"] == 0.0
    assert all(x["passed"] for x in gates) and accepted(gates)


@pytest.mark.parametrize(
    "change, failing",
    [
        (lambda o, f, i, m: o["allocator"].update(avg_monthly_pnl=0.005), "avg_monthly_pnl_vs_baseline"),
        (lambda o, f, i, m: o["allocator"].update(calmar=0.6), "calmar_vs_baseline"),  # equal is no beat
        (lambda o, f, i, m: o["allocator"].update(max_drawdown=-0.2101), "max_drawdown_vs_baseline"),
        (lambda o, f, i, m: o["allocator"].update(turnover=12.5), "turnover"),
        (lambda o, f, i, m: f["2022"]["allocator"].update(cagr=-0.01), "negative_fold_rate"),
        (lambda o, f, i, m: f["2022"]["allocator"].update(calmar=-0.5), "p25_fold_calmar"),
        (lambda o, f, i, m: i.loc.__setitem__("2021", [0.0, 0.1, 0.3, 0.6]), "importance_stability"),
        (lambda o, f, i, m: m.update(qqq_dd_63=0.0101), "monotonic_sanity"),
    ],
)
def test_each_gate_fails_on_its_own_and_rejects(change, failing):
    overall, folds, importance, monotonic = _inputs()
    change(overall, folds, importance, monotonic)
    gates = evaluate_gates(overall, folds, importance, monotonic, SETTINGS)
    failed = [g["name"] for g in gates if not g["passed"]]
    assert failed == [failing]
    assert not accepted(gates)


def test_undefined_inputs_fail_clearly():
    overall, folds, importance, _ = _inputs()
    overall["allocator"]["calmar"] = None
    folds["2020"]["allocator"]["calmar"] = None  # a fold without drawdown counts as +inf Calmar
    gates = _by_name(evaluate_gates(overall, folds, importance.iloc[:1], {}, SETTINGS))
    assert not gates["calmar_vs_baseline"]["passed"] and gates["calmar_vs_baseline"]["value"] is None
    assert not gates["importance_stability"]["passed"]  # one fold: stability is undefined
    assert not gates["monotonic_sanity"]["passed"] and "qqq_vol_21" in gates["monotonic_sanity"]["detail"]
    # fold Calmar sorted: 0.4, 1.5, 2.0, inf -> p25 at position 0.75 -> 0.4 + 0.75*1.1
    assert gates["p25_fold_calmar"]["value"] == pytest.approx(1.225)
    assert not accepted([])


def test_importance_stability_hand_values():
    same = pd.DataFrame([[0.4, 0.3, 0.2, 0.1], [0.5, 0.25, 0.15, 0.1]])
    assert importance_stability(same) == (pytest.approx(1.0), 1)
    reversed_ = pd.DataFrame([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    value, pairs = importance_stability(reversed_)
    assert pairs == 3 and value == pytest.approx((-1.0 - 1.0 + 1.0) / 3)


def test_monotonic_tolerance_is_the_gates_boundary():
    """A leg's weight rising by at most ``monotonic_tolerance`` per +1 std counts as no rise (the
    default 0.01: one percentage point of capital); just above it fails; at 0 any rise fails."""
    overall, folds, importance, _ = _inputs()

    def gate(value: float, settings: GateSettings = SETTINGS) -> dict:
        gates = evaluate_gates(overall, folds, importance, {"qqq_vol_63": value, "spy_dd_63": -0.2}, settings)
        return {g["name"]: g for g in gates}["monotonic_sanity"]

    assert SETTINGS.monotonic_tolerance == 0.01
    assert gate(0.01)["passed"] is True and gate(0.01)["threshold"] == 0.01
    assert gate(0.0101)["passed"] is False and gate(0.0101)["value"] == 0.0101
    strict = SETTINGS.model_copy(update={"monotonic_tolerance": 0.0})
    assert gate(1e-6, strict)["passed"] is False and gate(0.0, strict)["passed"] is True


def test_monotonic_response_of_a_linear_predictor():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"qqq_vol_21": rng.normal(0.2, 0.05, 200), "other": rng.normal(size=200)})

    def predict_w(frame: pd.DataFrame) -> np.ndarray:
        return np.clip(0.5 - 0.4 * (frame["qqq_vol_21"] - 0.2) + 0.01 * frame["other"], 0, 1).to_numpy()

    std = X["qqq_vol_21"].std(ddof=1)
    assert monotonic_response(predict_w, X, "qqq_vol_21") == pytest.approx(-0.4 * std, rel=1e-6)
    assert monotonic_response(predict_w, X, "other", bump_std=2.0) == pytest.approx(
        0.01 * 2.0 * X["other"].std(ddof=1), rel=1e-6
    )
    X["flat"] = 1.0
    assert math.isnan(monotonic_response(predict_w, X, "flat"))


# ----------------------------------------------------------------------------- every gate's dict, by hand


def _expect(name, value, threshold, passed, detail, interval=None) -> dict:
    """A gate as the verdict stores it: ``evaluated`` is false only for a gate not evaluated."""
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "passed": passed,
        "evaluated": passed is not None,
        "detail": detail,
        "interval": interval,
    }


NO_INTERVAL = "; no bootstrap interval: passes on the point estimate"
MONOTONIC = (
    "change of the mean weight of the feature's own leg (w_qqq for qqq_*, 1 - w_qqq for spy_*) per "
    "+1 std (the leg's other risk inputs moving with it), at the raw choice"
)


def test_each_gates_value_threshold_and_detail_on_the_good_allocator():
    """The default inputs, by hand: pnl 0.008 vs 0.006, Calmar 0.9 vs 0.6, |mdd| 0.20 vs 0.19,
    turnover 6, one negative fold of four, fold Calmar listed to 4 decimals (1.23456 -> 1.2346),
    three fold pairs of identical importance ranks but one."""
    overall, folds, importance, monotonic = _inputs()
    folds["2019"]["allocator"]["calmar"] = 1.23456
    g = _by_name(evaluate_gates(overall, folds, importance, monotonic, SETTINGS))
    pnl = g["avg_monthly_pnl_vs_baseline"]
    assert pnl["threshold"] == 0.0 and pnl["interval"] is None
    assert pnl["detail"] == "allocator 0.008000 vs baseline 0.006000 per month (fraction)" + NO_INTERVAL
    assert g["calmar_vs_baseline"]["detail"] == "allocator 0.9000 vs baseline 0.6000" + NO_INTERVAL
    assert g["calmar_vs_baseline"]["threshold"] == 0.0
    assert g["max_drawdown_vs_baseline"]["detail"] == "|allocator mdd| 0.2000 - |baseline mdd| 0.1900"
    assert g["turnover"] == _expect(
        "turnover", 6.0, 12.0, True, "annualised sum over legs of |target - drifted| weight"
    )
    assert g["negative_fold_rate"]["detail"] == "1 of 4 folds negative: ['2020']"
    assert g["p25_fold_calmar"]["detail"] == "fold Calmar: {'2019': 1.2346, '2020': -0.2, '2021': 2.0, '2022': 0.4}"
    assert g["importance_stability"]["detail"] == "mean Spearman over 3 fold pairs of 3 folds"
    assert g["monotonic_sanity"]["detail"] == MONOTONIC + ": qqq_vol_21: -0.04000, qqq_dd_63: +0.00000"


def test_undefined_metrics_fail_with_their_reason():
    """Either side undefined (None, or not finite) fails the comparison, with no value."""
    overall, folds, importance, monotonic = _inputs()
    overall["baseline"]["avg_monthly_pnl"] = None
    overall["allocator"]["calmar"] = None
    overall["allocator"]["max_drawdown"] = float("nan")
    overall["allocator"]["turnover"] = None
    g = _by_name(evaluate_gates(overall, folds, importance, monotonic, SETTINGS))
    assert g["avg_monthly_pnl_vs_baseline"] == _expect(
        "avg_monthly_pnl_vs_baseline", None, 0.0, False, "avg_monthly_pnl undefined"
    )
    assert g["calmar_vs_baseline"] == _expect(
        "calmar_vs_baseline", None, 0.0, False, "Calmar undefined (allocator None, baseline 0.6)"
    )
    assert g["max_drawdown_vs_baseline"] == _expect(
        "max_drawdown_vs_baseline", None, 0.02, False, "max drawdown undefined"
    )
    assert g["turnover"]["passed"] is False and g["turnover"]["value"] is None
    with pytest.raises(InputDataError, match=r"^column 'avg_monthly_pnl': no metrics for strategy 'baseline'$"):
        evaluate_gates({"allocator": _m()}, folds, importance, monotonic, SETTINGS)


def test_no_folds_or_an_undefined_fold_cagr_fail_the_fold_gates():
    overall, folds, importance, monotonic = _inputs()
    g = _by_name(evaluate_gates(overall, {}, importance, monotonic, SETTINGS))
    assert g["negative_fold_rate"] == _expect(
        "negative_fold_rate", None, 0.35, False, "no folds or undefined fold CAGR"
    )
    assert g["p25_fold_calmar"] == _expect("p25_fold_calmar", None, 0.0, False, "no folds")
    folds["2021"]["allocator"]["cagr"] = None
    g = _by_name(evaluate_gates(overall, folds, importance, monotonic, SETTINGS))
    assert g["negative_fold_rate"] == _expect(
        "negative_fold_rate", None, 0.35, False, "no folds or undefined fold CAGR"
    )


def test_every_threshold_is_inclusive_and_a_flat_fold_is_not_negative():
    """At the threshold exactly each gate passes: excess |mdd| 0.5 - 0.25 = 0.25, turnover 12,
    1 of 4 folds negative (a fold CAGR of exactly 0 is not), fold Calmar all 0.5, stability 1.0
    (identical ranks), deflated Sharpe 0.95, PBO 0.2."""
    overall, folds, _, monotonic = _inputs()
    overall["allocator"].update(max_drawdown=-0.5, turnover=12.0)
    overall["baseline"].update(max_drawdown=-0.25)
    folds["2019"]["allocator"]["cagr"] = 0.0
    for f in folds.values():
        f["allocator"]["calmar"] = 0.5
    same = pd.DataFrame([[0.4, 0.3, 0.2, 0.1]] * 3, index=["2019", "2020", "2021"], columns=list("abcd"))
    at = SETTINGS.model_copy(
        update={
            "max_dd_tolerance": 0.25,
            "max_negative_fold_rate": 0.25,
            "min_p25_fold_calmar": 0.5,
            "min_importance_stability": 1.0,
            "min_deflated_sharpe": 0.95,
            "max_pbo": 0.2,
        }
    )
    over = {"deflated_sharpe": _dsr(0.95), "pbo": {"value": 0.2, "n_blocks": 16, "folds": {}}, "tuned_folds": 1}
    g = _by_name(evaluate_gates(overall, folds, same, monotonic, at, overfitting=over))
    assert [
        g[n]["value"] for n in ("max_drawdown_vs_baseline", "turnover", "negative_fold_rate", "p25_fold_calmar")
    ] == [0.25, 12.0, 0.25, 0.5]
    assert g["importance_stability"]["value"] == 1.0
    assert all(gate["passed"] is True for gate in g.values()), [n for n, gate in g.items() if not gate["passed"]]


def test_a_bootstrap_interval_decides_the_beats_the_baseline_gates():
    """Point estimates 0.002 and 0.3 both > 0; the pnl interval's lower bound 0.0005 > 0 passes,
    the Calmar interval's -0.1 fails; the interval and its provenance are in the gate."""
    overall, folds, importance, monotonic = _inputs()
    bootstrap = {
        "confidence": 0.9,
        "block_length": 20,
        "resamples": 1000,
        "avg_monthly_pnl": {"lower": 0.0005, "upper": 0.0035, "share_positive": 0.97},
        "calmar": {"lower": -0.1, "upper": 0.7, "share_positive": 0.8},
    }
    g = _by_name(evaluate_gates(overall, folds, importance, monotonic, SETTINGS, bootstrap=bootstrap))
    pnl, calmar = g["avg_monthly_pnl_vs_baseline"], g["calmar_vs_baseline"]
    assert pnl["passed"] is True and pnl["interval"] == [0.0005, 0.0035] and pnl["threshold"] == 0.0
    assert pnl["detail"] == (
        "allocator 0.008000 vs baseline 0.006000 per month (fraction); 90% block-bootstrap interval "
        "[0.0005, 0.0035] (mean block 20 sessions, 1000 resamples, 97% of them positive); passes when the lower bound > 0"
    )
    assert calmar["passed"] is False and calmar["interval"] == [-0.1, 0.7] and calmar["threshold"] == 0.0
    assert calmar["value"] == pytest.approx(0.3)
    # a unit without an interval, or with one bound missing, falls back to the point estimate
    partial = {**bootstrap, "calmar": {"lower": -0.1, "upper": None, "share_positive": 0.8}}
    del partial["avg_monthly_pnl"]
    g = _by_name(evaluate_gates(overall, folds, importance, monotonic, SETTINGS, bootstrap=partial))
    for name in ("avg_monthly_pnl_vs_baseline", "calmar_vs_baseline"):
        assert g[name]["passed"] is True and g[name]["interval"] is None and g[name]["detail"].endswith(NO_INTERVAL)


def test_the_monotonic_gate_lists_what_it_measured_and_what_it_could_not():
    overall, folds, importance, _ = _inputs()
    measured = {"qqq_vol_21": -0.04, "qqq_vol_21@traded": -0.01, "spy_dd_63": float("nan")}
    gate = _by_name(evaluate_gates(overall, folds, importance, measured, SETTINGS))["monotonic_sanity"]
    assert gate["value"] == -0.01 and gate["passed"] is True
    assert gate["detail"] == (
        MONOTONIC + " and (@traded) the traded weight: qqq_vol_21: -0.04000, qqq_vol_21@traded: -0.01000; "
        "configured, not used by any fold: ['qqq_dd_63']; no spread: ['spy_dd_63']"
    )
    none = _by_name(evaluate_gates(overall, folds, importance, {"spy_dd_63": float("nan")}, SETTINGS))
    assert none["monotonic_sanity"] == _expect(
        "monotonic_sanity",
        None,
        0.01,
        False,
        "no risk feature measured (configured, not measured: ['qqq_vol_21', 'qqq_dd_63']; no spread: ['spy_dd_63'])",
    )


def test_importance_stability_needs_two_folds_and_is_measured_on_two():
    overall, folds, importance, monotonic = _inputs()
    two = _by_name(evaluate_gates(overall, folds, importance.iloc[:2], monotonic, SETTINGS))["importance_stability"]
    # both rows rank a > b > c > d: Spearman 1
    assert two["value"] == pytest.approx(1.0) and two["detail"] == "mean Spearman over 1 fold pairs of 2 folds"
    one = _by_name(evaluate_gates(overall, folds, importance.iloc[:1], monotonic, SETTINGS))["importance_stability"]
    assert one == _expect(
        "importance_stability", None, 0.3, False, "needs >= 2 folds with varying importance (1 folds)"
    )


def test_importance_stability_counts_a_missing_importance_as_zero_and_skips_constant_rows():
    """A missing gain is 0 (so the two rows below rank alike: Spearman 1); a constant row has no
    rank correlation (skipped; none left: None); with two features, opposite orders give -1."""
    nan = float("nan")
    assert importance_stability(pd.DataFrame([[0.4, nan, 0.2, 0.1], [0.4, 0.0, 0.2, 0.1]])) == (pytest.approx(1.0), 1)
    assert importance_stability(pd.DataFrame([[0.25] * 4, [0.4, 0.3, 0.2, 0.1]])) == (None, 0)
    assert importance_stability(pd.DataFrame([[0.6, 0.4], [0.3, 0.7]])) == (pytest.approx(-1.0), 1)


def test_the_p25_of_folds_without_drawdown_is_infinite():
    """Every fold without drawdown: Calmar +inf for all, the 25th percentile between two
    infinities is +inf (kept, not NaN), a pass."""
    overall, folds, importance, monotonic = _inputs()
    for f in folds.values():
        f["allocator"]["calmar"] = None
    gate = _by_name(evaluate_gates(overall, folds, importance, monotonic, SETTINGS))["p25_fold_calmar"]
    assert gate["value"] == math.inf and gate["passed"] is True


def _dsr(dsr: float | None) -> dict:
    return {
        "dsr": dsr,
        "sharpe_annualised": 0.8,
        "sr0_annualised": 0.3,
        "n_trials": 151,
        "trial_sharpe_variance": None,
        "n_sessions": 4500,
        "skewness": -0.5,
        "kurtosis": 6.0,
    }


def test_the_overfitting_gates_by_case():
    """Deflated Sharpe with its provenance (a variance not measured reads 0); undefined without a
    spread of returns. PBO evaluated (folds listed in order), not evaluated without tuning (neither
    pass nor failure), undefined with tuning but no ledger (a failure, with each fold's reason)."""
    overall, folds, importance, monotonic = _inputs()
    s = SETTINGS.model_copy(update={"min_deflated_sharpe": 0.9, "max_pbo": 0.5})

    def gates(over: dict) -> dict:
        return _by_name(evaluate_gates(overall, folds, importance, monotonic, s, overfitting=over))

    pbo = {"value": 0.2, "n_blocks": 16, "folds": {"2020": {"pbo": 0.3}, "2019": {"pbo": 0.1}}}
    g = gates({"deflated_sharpe": _dsr(0.95), "pbo": pbo, "tuned_folds": 2})
    assert g["deflated_sharpe"] == _expect(
        "deflated_sharpe",
        0.95,
        0.9,
        True,
        "annualised Sharpe of the weight choice over the baseline 0.800 vs SR0 0.300 expected from the best of "
        "N = 151 trials (variance of their per-session Sharpe 0); T = 4500 sessions, skew -0.50, kurtosis 6.00",
    )
    assert g["pbo"] == _expect("pbo", 0.2, 0.5, True, "CSCV, S = 16 blocks, mean over 2 folds (2019: 0.10, 2020: 0.30)")
    g = gates({"deflated_sharpe": {"dsr": None}, "pbo": {"value": None}, "tuned_folds": 0})
    assert g["deflated_sharpe"] == _expect(
        "deflated_sharpe",
        None,
        0.9,
        False,
        "undefined: the weight choice never leaves the baseline (no spread of its returns over it)",
    )
    not_run = _expect(
        "pbo",
        None,
        0.5,
        None,
        "not evaluated: no fold was tuned, so no trial ledger to run CSCV on (the research ledger's variants "
        "count in the deflated Sharpe's N only)",
    )
    assert g["pbo"] == not_run
    skipped = {"value": None, "skipped": {"2020": "one trial", "2019": "no inner blocks"}}
    g = gates({"deflated_sharpe": _dsr(0.95), "pbo": skipped, "tuned_folds": 2})
    assert g["pbo"] == _expect("pbo", None, 0.5, False, "undefined: 2019: no inner blocks; 2020: one trial")
    g = gates({"deflated_sharpe": _dsr(0.95), "pbo": {"value": None}, "tuned_folds": 2})
    assert g["pbo"] == _expect("pbo", None, 0.5, False, "undefined: no trial ledger")


def test_a_gate_without_the_evaluated_key_counts_as_evaluated():
    """Gates stored before ``evaluated`` existed were all evaluated: they decide the verdict."""
    assert accepted([{"name": "turnover", "passed": True}]) is True
    assert accepted([{"name": "turnover", "passed": False}]) is False
    assert not_evaluated([{"name": "turnover", "passed": True}]) == []
    assert not_evaluated([{"name": "pbo", "passed": None, "evaluated": False}]) == ["pbo"]
