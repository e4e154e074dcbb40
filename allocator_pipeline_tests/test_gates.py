"""Acceptance gates on hand-made metric dicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.evaluation.gates import accepted, evaluate_gates, importance_stability, monotonic_response
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
