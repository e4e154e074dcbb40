"""Per-fold members: 11 bucket columns, exact save/load, determinism, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import N_CLASSES
from allocator_pipeline.core.features.risk import risk_features
from allocator_pipeline.core.models.members import (
    PROBABILITY_FLOOR,
    LinearMember,
    fit_member,
    fit_members,
    lightgbm_gain_importance,
    load_members,
    member_files,
)
from allocator_pipeline.core.models.training import screen_features
from allocator_pipeline.settings import ModelSettings

pytestmark = pytest.mark.filterwarnings("error")

MEMBERS = ("lightgbm", "linear", "catboost")
ABSENT = (0, 1, 9, 10)


def quick_settings(**over: object) -> ModelSettings:
    tree = {
        "lightgbm": {"num_boost_round": 30, "early_stopping_rounds": 10, "min_data_in_leaf": 20},
        "linear": {"max_iter": 200},
        "catboost": {"iterations": 30, "early_stopping_rounds": 10},
    }
    tree.update(over)
    return ModelSettings.model_validate(tree)


def synthetic_fold(
    n_train: int = 500, n_val: int = 200, n_features: int = 8, seed: int = 3
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    """Labels driven by two features; training labels lack buckets 0, 1, 9, 10, validation has all."""
    rng = np.random.default_rng(seed)
    names = [f"feat_{i:02d}" for i in range(n_features)]

    def draw(n: int) -> tuple[pd.DataFrame, np.ndarray]:
        x = pd.DataFrame(rng.normal(size=(n, n_features)), columns=names)
        latent = 5.0 + 2.2 * x["feat_00"].to_numpy() - 1.0 * x["feat_01"].to_numpy() + rng.normal(size=n)
        return x, np.clip(np.round(latent), 0, 10).astype(np.int64)

    x_train, y_train = draw(n_train * 2)
    keep = ~np.isin(y_train, ABSENT)
    x_train, y_train = x_train[keep].iloc[:n_train].reset_index(drop=True), y_train[keep][:n_train]
    x_val, y_val = draw(n_val)
    return x_train, y_train, x_val, y_val


@pytest.fixture(scope="module")
def fold() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    return synthetic_fold()


@pytest.fixture(scope="module")
def fitted(fold):
    x_train, y_train, x_val, y_val = fold
    return fit_members(x_train, y_train, x_val, y_val, quick_settings())


def test_training_labels_lack_the_absent_buckets(fold):
    _, y_train, _, y_val = fold
    assert not np.isin(y_train, ABSENT).any()
    assert np.isin(y_val, ABSENT).any()


@pytest.mark.parametrize("name", MEMBERS)
def test_eleven_bucket_columns_even_for_absent_classes(fitted, fold, name):
    _, _, x_val, _ = fold
    proba = fitted[name].predict_proba(x_val)
    assert proba.shape == (len(x_val), N_CLASSES) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert proba.min() >= PROBABILITY_FLOOR / 1.01
    absent = proba[:, list(ABSENT)]
    assert absent.max() < 1.01 * PROBABILITY_FLOOR
    seen = proba[:, 2:9]
    assert seen.max() > 0.3  # the model learned something about the seen buckets


@pytest.mark.parametrize("name", MEMBERS)
def test_save_load_reproduces_probabilities_exactly(fitted, fold, name, tmp_path):
    _, _, x_val, _ = fold
    member = fitted[name]
    path = member.save(tmp_path)
    assert path == tmp_path / member_files([name])[name]
    loaded = load_members(tmp_path, [name])[name]
    x_new = synthetic_fold(seed=99)[2]
    for frame in (x_val, x_new):
        assert np.array_equal(member.predict_proba(frame), loaded.predict_proba(frame))
    assert loaded.feature_names == member.feature_names
    text = path.read_text()
    if path.suffix == ".json":
        json.loads(text)  # a JSON document, not a binary blob
    else:
        assert text.startswith("tree")  # LightGBM's text format
    # a second save writes the same bytes (deterministic artifacts)
    loaded.save(tmp_path / "again")
    assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("name", MEMBERS)
def test_two_fits_with_the_same_seed_are_identical(fold, name, tmp_path):
    x_train, y_train, x_val, y_val = fold
    first = fit_member(name, x_train, y_train, x_val, y_val, quick_settings())
    second = fit_member(name, x_train, y_train, x_val, y_val, quick_settings())
    assert np.array_equal(first.predict_proba(x_val), second.predict_proba(x_val))
    # byte-identical files (CatBoost's random model GUID and finish time are blanked)
    assert first.save(tmp_path / "a").read_bytes() == second.save(tmp_path / "b").read_bytes()


@pytest.mark.parametrize("name", MEMBERS)
def test_columns_are_selected_by_name_and_a_missing_one_is_named(fitted, fold, name):
    _, _, x_val, _ = fold
    member = fitted[name]
    shuffled = x_val[list(reversed(x_val.columns))].assign(unused_extra=1.0)
    assert np.array_equal(member.predict_proba(shuffled), member.predict_proba(x_val))
    with pytest.raises(InputDataError, match="feat_03") as err:
        member.predict_proba(x_val.drop(columns=["feat_03"]))
    assert "missing" in str(err.value) and err.value.column == "feat_03"


def test_nan_in_training_features_is_refused_with_its_location(fold):
    x_train, y_train, x_val, y_val = fold
    bad = x_train.copy()
    bad.loc[7, "feat_02"] = np.nan
    for name in MEMBERS:
        with pytest.raises(InputDataError, match="NaN in the training features") as err:
            fit_member(name, bad, y_train, x_val, y_val, quick_settings())
        assert err.value.column == "feat_02" and err.value.row == 7


def test_frames_indexed_by_decision_ts_with_int64_labels(fold):
    """The fold dataset's shape: decision_ts index, nullable Int64 label_class."""
    x_train, y_train, x_val, y_val = fold
    index = pd.date_range("2005-01-03 21:00", periods=len(x_train), freq="B", tz="UTC", name="decision_ts")
    x_ts = x_train.set_axis(index)
    y_ts = pd.Series(y_train, index=index, dtype="Int64", name="label_class")
    member = fit_member("linear", x_ts, y_ts, x_val, y_val, quick_settings())
    assert member.predict_proba(x_val).shape == (len(x_val), N_CLASSES)
    y_missing = y_ts.copy()
    y_missing.iloc[3] = pd.NA
    with pytest.raises(InputDataError, match="missing class label") as err:
        fit_member("linear", x_ts, y_missing, x_val, y_val, quick_settings())
    assert err.value.row == index[3]


def test_bad_labels_and_single_class_are_refused(fold):
    x_train, y_train, x_val, y_val = fold
    wrong = y_train.copy()
    wrong[4] = 11
    with pytest.raises(InputDataError, match="integers 0..10"):
        fit_member("lightgbm", x_train, wrong, x_val, y_val, quick_settings())
    with pytest.raises(InputDataError, match="single class"):
        fit_member("linear", x_train, np.full(len(x_train), 5), x_val, y_val, quick_settings())
    with pytest.raises(InputDataError, match="rows but labels"):
        fit_member("catboost", x_train, y_train[:-1], x_val, y_val, quick_settings())
    with pytest.raises(ValueError, match="unknown ensemble member"):
        fit_member("xgboost", x_train, y_train, x_val, y_val, quick_settings())


def test_validation_missing_a_training_column_is_refused(fold):
    x_train, y_train, x_val, y_val = fold
    with pytest.raises(InputDataError, match="feat_05"):
        fit_member("catboost", x_train, y_train, x_val.drop(columns=["feat_05"]), y_val, quick_settings())


@pytest.mark.parametrize("bad_name", ["feat 00", 'feat"00', "feat:00"])
def test_lightgbm_refuses_feature_names_it_would_rewrite(fold, bad_name):
    x_train, y_train, x_val, y_val = fold
    rename = {"feat_00": bad_name}
    with pytest.raises(InputDataError, match="feature names may not contain") as err:
        fit_member(
            "lightgbm", x_train.rename(columns=rename), y_train, x_val.rename(columns=rename), y_val, quick_settings()
        )
    assert err.value.column == bad_name


def test_gain_importance_sums_to_one_and_finds_the_driver(fitted, fold):
    gain = lightgbm_gain_importance(fitted["lightgbm"])
    assert list(gain.index) == list(fold[0].columns)
    assert gain.sum() == pytest.approx(1.0, abs=1e-12) and (gain >= 0).all()
    assert gain.idxmax() == "feat_00"
    with pytest.raises(TypeError):
        lightgbm_gain_importance(fitted["linear"])


def test_linear_numpy_path_matches_sklearn(fitted, fold):
    """The stored-parameter prediction is the same model as scikit-learn's own predict_proba."""
    x_train, y_train, x_val, _ = fold
    member = fitted["linear"]
    no_floor = LinearMember.from_dict({**member.to_dict(), "probability_floor": 0.0})
    settings = quick_settings().linear
    scaler = StandardScaler().fit(x_train.to_numpy())
    reference = LogisticRegression(
        C=settings.C, l1_ratio=settings.l1_ratio, solver="saga", max_iter=settings.max_iter, random_state=7
    ).fit(scaler.transform(x_train.to_numpy()), y_train)
    expected = reference.predict_proba(scaler.transform(x_val.to_numpy()))
    got = no_floor.predict_proba(x_val)
    np.testing.assert_allclose(got[:, reference.classes_], expected, rtol=0, atol=1e-12)
    assert np.all(got[:, list(ABSENT)] == 0.0)
    assert member.describe()["converged"] is True


def test_linear_parameters_have_the_layout_a_reload_gives(fitted):
    """A fitted linear member holds C-ordered arrays, as ``from_dict`` builds them, so the matrix
    product runs the same BLAS kernel before and after a reload (sklearn's ``coef_`` is
    Fortran-ordered; on some processors the two layouts differ in the last bit)."""
    member = fitted["linear"]
    reloaded = type(member).from_dict(json.loads(json.dumps(member.to_dict())))
    for name in ("mean", "scale", "coef", "intercept"):
        assert getattr(member, name).flags.c_contiguous == getattr(reloaded, name).flags.c_contiguous
        assert getattr(member, name).flags.c_contiguous


def test_linear_member_handles_two_seen_classes(fold, tmp_path):
    x_train, _, x_val, y_val = fold
    y_two = np.where(x_train["feat_00"].to_numpy() > 0, 7, 3)
    member = fit_member("linear", x_train, y_two, x_val, y_val, quick_settings())
    proba = member.predict_proba(x_val)
    assert proba.shape == (len(x_val), N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    high = x_val["feat_00"].to_numpy() > 1
    assert np.all(proba[high, 7] > proba[high, 3])
    member.save(tmp_path)
    assert np.array_equal(LinearMember.load(tmp_path).predict_proba(x_val), proba)


def test_fit_members_follows_the_settings_and_load_refuses_missing_files(fold, tmp_path):
    x_train, y_train, x_val, y_val = fold
    members = fit_members(x_train, y_train, x_val, y_val, quick_settings(members=("linear", "lightgbm")))
    assert list(members) == ["linear", "lightgbm"]
    members["linear"].save(tmp_path)
    with pytest.raises(InputDataError, match="lightgbm model file not found"):
        load_members(tmp_path, ["linear", "lightgbm"])


def test_catboost_early_stops_on_validation(fold):
    x_train, y_train, x_val, y_val = fold
    settings = quick_settings(catboost={"iterations": 400, "early_stopping_rounds": 5, "learning_rate": 0.5})
    member = fit_member("catboost", x_train, y_train, x_val, y_val, settings)
    assert member.describe()["trees"] < 400
    assert member.describe()["seen_classes"] == [2, 3, 4, 5, 6, 7, 8]


def test_screen_drops_a_risk_feature_whose_rise_raises_its_own_legs_weight():
    """Each column carries the gap with a chosen sign: the screen keeps every stable one except a
    leg's risk feature whose rise raises its own leg's weight (a QQQ one rising with the QQQ-minus-
    SPY gap, an SPY one falling with it), whatever its strength; a non-risk column of the same
    sign and a risk column of the sane sign stay, and noise goes."""
    rng = np.random.default_rng(3)
    gap = rng.normal(size=1200)

    def carrying(sign: float) -> np.ndarray:
        return sign * gap + rng.normal(size=gap.size)

    x = pd.DataFrame(
        {
            "prob_up_mean_21": carrying(+1),  # not a risk feature: either sign is allowed
            "qqq_vol_63": carrying(+1),  # QQQ's risk up, QQQ preferred: dropped
            "qqq_dd_63": carrying(-1),  # QQQ's risk up, SPY preferred: sane
            "spy_downvol_21": carrying(-1),  # SPY's risk up, SPY preferred: dropped
            "spy_vol_21": carrying(+1),  # SPY's risk up, QQQ preferred: sane
            "noise": rng.normal(size=gap.size),
        }
    )
    signed = risk_features(x.columns)
    assert screen_features(x, gap, blocks=6, min_t=3.0, min_keep=1, signed=signed) == [
        "prob_up_mean_21",
        "qqq_dd_63",
        "spy_vol_21",
    ]
    # without the signs every carrying column is stable and kept
    assert screen_features(x, gap, blocks=6, min_t=3.0, min_keep=1) == list(x.columns[:5])
