"""Blend, calibration and metrics: hand-checked numbers, calibration that fixes over-confidence,
exact JSON round trips."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from allocator_pipeline.core.allocation.fold_model import FoldModel, assemble_fold
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import N_CLASSES, OUT_OF_RANGE_COLUMN, UTILITY_COLUMNS
from allocator_pipeline.core.common.storage import to_json_text
from allocator_pipeline.core.ensemble.blend import (
    Ensemble,
    blend,
    blend_weights,
    fit_ensemble,
    load_ensemble,
    save_ensemble,
)
from allocator_pipeline.core.ensemble.calibration import (
    ISOTONIC_FLOOR,
    calibrator_from_dict,
    classification_metrics,
    fit_isotonic,
    fit_temperature,
    log_loss,
    reliability_table,
)
from allocator_pipeline.core.models.members import fit_members, load_members
from allocator_pipeline.settings import EnsembleSettings
from allocator_pipeline_tests.test_models import quick_settings, synthetic_fold

pytestmark = pytest.mark.filterwarnings("error")


def draw_process(n: int, seed: int, sharpen: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True probabilities p (softmax of random logits), labels y ~ p, and reported p**sharpen."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.2, size=(n, N_CLASSES)) + np.linspace(-0.5, 0.5, N_CLASSES)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n)
    y = np.minimum((p.cumsum(axis=1) < u[:, None]).sum(axis=1), N_CLASSES - 1)
    reported = p**sharpen
    return p, y, reported / reported.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------ metrics


def test_metrics_on_a_hand_made_three_row_example():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    y = np.array([0, 2, 0])
    m = classification_metrics(proba, y, bins=10)
    assert m["log_loss"] == pytest.approx(-(math.log(0.7) + math.log(0.6) + math.log(0.2)) / 3, abs=1e-15)
    # Brier rows: (.3^2+.2^2+.1^2) + (.1^2+.3^2+.4^2) + (.8^2+.5^2+.3^2) = .14 + .26 + .98
    assert m["brier"] == pytest.approx((0.14 + 0.26 + 0.98) / 3, abs=1e-15)
    assert m["accuracy"] == pytest.approx(2 / 3)  # argmax 0, 2, 1
    assert m["top2_accuracy"] == pytest.approx(2 / 3)  # row 3's top two are {1, 2}
    # confidences .7, .6, .5 land in three bins with accuracy 1, 1, 0
    assert m["ece"] == pytest.approx((0.3 + 0.4 + 0.5) / 3, abs=1e-12)
    assert m["n"] == 3


def test_log_loss_clips_a_zero_probability_at_1e_15():
    proba = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert log_loss(proba, np.array([1, 0])) == pytest.approx((-math.log(1e-15) - math.log(0.5)) / 2)


def test_reliability_table_counts_rows_and_marks_empty_bins():
    proba = np.array([[0.95, 0.05], [0.9, 0.1], [0.55, 0.45], [0.45, 0.55]])
    table = reliability_table(proba, np.array([0, 1, 0, 1]), bins=5)
    assert table["count"] == [0, 0, 2, 0, 2]
    assert table["bin_mid"] == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    assert table["confidence"][4] == pytest.approx(0.925) and table["accuracy"][4] == 0.5
    assert table["accuracy"][2] == 1.0 and math.isnan(table["confidence"][0])


def test_metrics_refuse_bad_labels():
    with pytest.raises(InputDataError, match="outside 0..2"):
        classification_metrics(np.full((2, 3), 1 / 3), np.array([0, 3]))


# -------------------------------------------------------------------------------- calibration


def test_temperature_scaling_fixes_an_overconfident_model():
    _, y_fit, sharp_fit = draw_process(3000, seed=1, sharpen=4.0)
    _, y_new, sharp_new = draw_process(3000, seed=2, sharpen=4.0)
    cal = fit_temperature(sharp_fit, y_fit)
    assert 3.4 < cal.temperature < 4.6
    before = classification_metrics(sharp_new, y_new)
    after = classification_metrics(cal.apply(sharp_new), y_new)
    assert after["log_loss"] < 0.8 * before["log_loss"]
    assert after["ece"] < 0.4 * before["ece"]
    assert after["brier"] < before["brier"]


def test_ensemble_auto_calibration_fixes_overconfidence_on_new_data():
    _, y_val, sharp_val = draw_process(2000, seed=5, sharpen=4.0)
    _, y_new, sharp_new = draw_process(2000, seed=6, sharpen=4.0)
    ens = fit_ensemble({"sharp": sharp_val}, y_val, EnsembleSettings())
    assert ens.calibrator.kind in ("temperature", "isotonic")
    held = ens.selection["heldout_log_loss"]
    assert held[ens.calibrator.kind] < held["none"]
    before = classification_metrics(sharp_new, y_new)
    after = classification_metrics(ens.predict({"sharp": sharp_new}), y_new)
    assert after["log_loss"] < 0.8 * before["log_loss"] and after["ece"] < 0.5 * before["ece"]


@pytest.mark.parametrize("sharpen", [0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_auto_calibration_never_worsens_validation_log_loss(sharpen, seed):
    _, y, reported = draw_process(300, seed=seed, sharpen=sharpen)
    ens = fit_ensemble({"m": reported}, y, EnsembleSettings(calibration="auto"))
    assert ens.metrics_after["log_loss"] <= ens.metrics_before["log_loss"]
    held = ens.selection["heldout_log_loss"]
    assert held[ens.calibrator.kind] <= held["none"]
    assert ens.selection["n_fit"] == 150 and ens.selection["n_score"] == 150


def test_isotonic_breakpoints_reproduce_sklearn_then_floor():
    _, y, reported = draw_process(400, seed=3, sharpen=2.0)
    cal = fit_isotonic(reported, y)
    for k in (0, 5, 10):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(reported[:, k], y == k)
        probe = np.linspace(-0.1, 1.1, 57)
        np.testing.assert_allclose(
            np.interp(probe, cal.x_thresholds[k], cal.y_thresholds[k]), iso.predict(probe), atol=1e-12
        )
    out = cal.apply(reported)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    assert out.min() >= ISOTONIC_FLOOR / N_CLASSES  # every one-vs-rest score is <= 1 before renormalising


def test_named_calibration_is_used_and_small_validation_falls_back_to_none():
    _, y, reported = draw_process(300, seed=4, sharpen=3.0)
    assert fit_ensemble({"m": reported}, y, EnsembleSettings(calibration="isotonic")).calibrator.kind == "isotonic"
    assert fit_ensemble({"m": reported}, y, EnsembleSettings(calibration="none")).calibrator.kind == "none"
    tiny = fit_ensemble({"m": reported[:30]}, y[:30], EnsembleSettings(calibration="auto"))
    assert tiny.calibrator.kind == "none" and "fewer than" in tiny.notes["calibration"]


# ------------------------------------------------------------------------------------- blend


def test_blend_weights_are_a_softmax_of_minus_log_loss_over_tau():
    w = blend_weights({"a": 1.00, "b": 1.02, "c": 1.00}, 0.02)
    assert w["a"] == pytest.approx(1 / (2 + math.exp(-1))) and w["a"] == w["c"]
    assert w["b"] == pytest.approx(math.exp(-1) / (2 + math.exp(-1)))
    assert list(w) == ["a", "b", "c"]


def test_blend_favours_the_better_member_and_needs_every_member():
    true_p, y, _ = draw_process(600, seed=8)
    noise = np.full_like(true_p, 1 / N_CLASSES)
    settings = EnsembleSettings(calibration="none")
    ens = fit_ensemble({"good": true_p, "flat": noise}, y, settings)
    gap = ens.member_log_loss["flat"] - ens.member_log_loss["good"]  # nats per validation row
    assert gap > 0.5 and ens.weight_of["good"] == pytest.approx(1 / (1 + math.exp(-gap / settings.blend_temperature)))
    assert ens.weight_of["good"] > 0.85  # the default temperature 0.3: 0.62 nats better, 0.89 of the weight
    sharp = EnsembleSettings(calibration="none", blend_temperature=0.02)
    assert fit_ensemble({"good": true_p, "flat": noise}, y, sharp).weight_of["good"] > 0.99
    np.testing.assert_allclose(ens.predict({"good": true_p, "flat": noise}).sum(axis=1), 1.0, atol=1e-12)
    with pytest.raises(InputDataError, match="missing for \\['flat'\\]"):
        ens.predict({"good": true_p})
    with pytest.raises(InputDataError, match="shape"):
        blend({"good": true_p[:, :5]}, {"good": 1.0})


@pytest.mark.parametrize("calibration", ["none", "temperature", "isotonic", "auto"])
def test_ensemble_json_round_trip_is_exact(calibration, tmp_path):
    _, y, a = draw_process(400, seed=10, sharpen=3.0)
    _, _, b = draw_process(400, seed=11, sharpen=0.7)
    ens = fit_ensemble({"a": a, "b": b}, y, EnsembleSettings(calibration=calibration))
    path = save_ensemble(ens, tmp_path / "ensemble.json")
    loaded = load_ensemble(path)
    _, _, a_new = draw_process(250, seed=12, sharpen=3.0)
    _, _, b_new = draw_process(250, seed=13, sharpen=0.7)
    for probs in ({"a": a, "b": b}, {"a": a_new, "b": b_new}):
        assert np.array_equal(ens.predict(probs), loaded.predict(probs))
    assert loaded.to_dict()["calibrator"] == ens.to_dict()["calibrator"]
    assert save_ensemble(loaded, tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_fit_ensemble_is_deterministic():
    _, y, a = draw_process(300, seed=20, sharpen=2.0)
    first = fit_ensemble({"a": a, "b": a**0.5}, y, EnsembleSettings())
    second = fit_ensemble({"a": a, "b": a**0.5}, y, EnsembleSettings())
    assert to_json_text(first.to_dict()) == to_json_text(second.to_dict())  # NaN-safe comparison
    assert np.array_equal(first.predict({"a": a, "b": a**0.5}), second.predict({"a": a, "b": a**0.5}))


def test_malformed_ensemble_description_is_refused():
    with pytest.raises(InputDataError, match="not an ensemble"):
        Ensemble.from_dict({"format": "other"})
    with pytest.raises(InputDataError, match="unknown calibrator kind"):
        calibrator_from_dict({"kind": "platt"})


def test_members_and_ensemble_reload_to_identical_predictions(tmp_path):
    """The fold artifact set: three member files + ensemble.json reproduce test predictions."""
    x_train, y_train, x_val, y_val = synthetic_fold(n_train=400, n_val=160, seed=31)
    x_test = synthetic_fold(n_train=50, n_val=120, seed=32)[2]
    settings = quick_settings()
    members = fit_members(x_train, y_train, x_val, y_val, settings)
    ens = fit_ensemble({n: m.predict_proba(x_val) for n, m in members.items()}, y_val, EnsembleSettings())
    for member in members.values():
        member.save(tmp_path)
    save_ensemble(ens, tmp_path / "ensemble.json")
    loaded = load_members(tmp_path, settings.members)
    loaded_ens = load_ensemble(tmp_path / "ensemble.json")
    fresh = ens.predict({n: m.predict_proba(x_test) for n, m in members.items()})
    again = loaded_ens.predict({n: m.predict_proba(x_test) for n, m in loaded.items()})
    assert fresh.shape == (len(x_test), N_CLASSES) and np.array_equal(fresh, again)
    assert ens.metrics_after["log_loss"] <= ens.metrics_before["log_loss"]
    assert set(ens.metrics_before) == {"log_loss", "brier", "ece", "accuracy", "top2_accuracy", "n"}


def test_fold_model_input_ranges_come_from_train_and_validation_rows_and_flag_the_rest(tmp_path):
    """FoldModel.input_ranges: each input's (min, max) over the fold's train and validation rows
    only (changing every test row leaves them as they are: no look-ahead); decision_frame flags a
    row with any input outside them; the ranges survive save/load exactly."""
    x_train, y_train, x_val, y_val = synthetic_fold(n_train=300, n_val=120, seed=41)
    x_test = synthetic_fold(n_train=50, n_val=60, seed=42)[2]
    parts = [x.assign(split=name, label_class=y) for x, name, y in ((x_train, "train", y_train), (x_val, "val", y_val))]
    parts.append(x_test.assign(split="test", label_class=np.zeros(len(x_test), dtype=np.int64)))
    frame = pd.concat(parts, ignore_index=True)
    frame.index = pd.date_range("2010-01-04", periods=len(frame), freq="B", tz="UTC", name="decision_ts")
    rng = np.random.default_rng(5)
    utilities = pd.DataFrame(rng.normal(scale=0.01, size=(len(frame), len(UTILITY_COLUMNS))), index=frame.index)
    utilities.columns = UTILITY_COLUMNS
    settings = quick_settings(members=["linear"])
    members = fit_members(x_train, y_train, x_val, y_val, settings)
    ens = fit_ensemble({n: m.predict_proba(x_val) for n, m in members.items()}, y_val, EnsembleSettings())
    model = assemble_fold(frame, members, ens, utilities)

    seen = frame[frame["split"] != "test"]
    assert model.input_ranges == {c: (seen[c].min(), seen[c].max()) for c in x_train.columns}
    moved = frame.copy()
    moved.loc[moved["split"] == "test", x_train.columns] *= 100.0
    assert assemble_fold(moved, members, ens, utilities).input_ranges == model.input_ranges

    test = frame.loc[frame["split"] == "test", list(x_train.columns)].copy()
    inside = ((test >= seen[test.columns].min()) & (test <= seen[test.columns].max())).all(axis=1)
    decided = model.decision_frame(test)
    assert decided[OUT_OF_RANGE_COLUMN].tolist() == (~inside).tolist() and inside.any()
    test.loc[test.index[np.flatnonzero(inside)[0]], "feat_03"] = seen["feat_03"].max() + 1.0
    assert decided[OUT_OF_RANGE_COLUMN].sum() + 1 == model.decision_frame(test)[OUT_OF_RANGE_COLUMN].sum()

    # the class prior (the sizing's centre): each class's share of the train and validation rows, by hand
    counts = np.bincount(seen["label_class"].astype(int), minlength=11)
    assert model.prior is not None and np.array_equal(model.prior, counts / counts.sum())

    model.save(tmp_path)
    again = FoldModel.load(tmp_path)
    assert again.input_ranges == model.input_ranges
    assert again.prior is not None and np.array_equal(again.prior, model.prior)
    pd.testing.assert_frame_equal(again.decision_frame(test), model.decision_frame(test), check_exact=True)
