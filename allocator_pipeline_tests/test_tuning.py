"""Nested walk-forward tuning: search space, objective, inner-split isolation, resumable studies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from allocator_pipeline.core.allocation.fold_model import fit_fold, fold_path, predict_split
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.common.storage import read_parquet
from allocator_pipeline.core.evaluation.backtest import RETURN_COLUMNS, run_backtest
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.folds.checks import usable_sessions
from allocator_pipeline.core.folds.plan import FoldPlanError, plan_folds
from allocator_pipeline.core.labels.utility import utility_labels
from allocator_pipeline.core.tuning import study as tuning_module
from allocator_pipeline.core.tuning.objective import (
    OBJECTIVE_FORMULA,
    evaluate_params,
    objective_terms,
    robust_objective,
)
from allocator_pipeline.core.tuning.result import export_ledger, export_trial_returns
from allocator_pipeline.core.tuning.space import (
    GROUPS,
    SEARCH_PARAMETERS,
    default_params,
    refits_members,
    resolve_groups,
    search_space,
)
from allocator_pipeline.core.tuning.study import inner_fold_frames, model_stage, run_study
from allocator_pipeline.settings import (
    PolicySettings,
    Settings,
    SettingsError,
    TuningSettings,
    load_settings,
    tuned_settings,
)
from allocator_pipeline_tests.support.leakage import perturb_after

FOLD = "2013"


def make_settings(home: Path, **sections) -> Settings:
    tree = {
        "home": str(home),
        "labels": {"horizon": 5},
        "folds": {
            "min_train_years": 1,
            "validation_sessions": 63,
            "inner_test_sessions": 63,
            "n_inner_folds": 2,
            "embargo_sessions": 5,
            "required_oos_years": [],
        },
        "models": {"members": ["linear"], "linear": {"max_iter": 60}},
        "tuning": {"enabled": True, "n_trials": 4, "timeout_seconds": 600.0, "pruning": False},
    }
    for name, values in sections.items():
        tree[name] = {**tree.get(name, {}), **values}
    return Settings.model_validate(tree)


def synthetic_panel(seed: int = 3, drift: float = 0.0004, vol: float = 0.012, years: int = 4) -> pd.DataFrame:
    """Two legs with independent noise, a T-bill return; sessions 2010-01-04 onwards (weekdays)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-04", periods=252 * years)
    index = decision_ts_from_dates(dates)
    common = rng.normal(drift, vol, len(index))
    return pd.DataFrame(
        {
            "qqq_leg_return": common + rng.normal(0.0002, vol * 0.8, len(index)),
            "spy_leg_return": common * 0.8 + rng.normal(0.0, vol * 0.4, len(index)),
            "cash_return": np.full(len(index), 0.00005),
        },
        index=index,
    )


def synthetic_features(panel: pd.DataFrame) -> pd.DataFrame:
    """Causal features: trailing means and volatility of the legs (row d uses rows <= d)."""
    q, s = panel["qqq_leg_return"], panel["spy_leg_return"]
    return pd.DataFrame(
        {
            "spread_5": (q - s).rolling(5).mean(),
            "spread_21": (q - s).rolling(21).mean(),
            "qqq_vol_21": q.rolling(21).std(),
            "spy_vol_21": s.rolling(21).std(),
        },
        index=panel.index,
    )


def build(panel: pd.DataFrame, settings: Settings):
    features = synthetic_features(panel)
    labels, utilities = utility_labels(panel, settings.labels, CostModel.from_settings(settings.costs))
    plan = plan_folds(features.index, usable_sessions(features, labels), settings)
    return features, labels, utilities, plan, inner_fold_frames(features, labels, plan, FOLD)


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("home"))
    panel = synthetic_panel()
    _features, _labels, utilities, plan, frames = build(panel, settings)
    return settings, panel, utilities, plan, frames


# --- tuned_settings and the search space ---------------------------------------------------------


def test_tuned_settings_applies_dotted_params(tmp_path):
    base = make_settings(tmp_path)
    params = {
        "models.lightgbm.num_leaves": 31,
        "policy.alpha": 0.2,
        "envelope.dd_soft": 0.08,
        "ensemble.calibration": "isotonic",
        "labels.lambda_dd": 2.5,
    }
    tuned = tuned_settings(base, params)
    assert tuned.models.lightgbm.num_leaves == 31 and tuned.policy.alpha == 0.2
    assert tuned.envelope.dd_soft == 0.08 and tuned.ensemble.calibration == "isotonic"
    assert tuned.labels.lambda_dd == 2.5 and tuned.labels.horizon == base.labels.horizon
    assert tuned.models.lightgbm.max_depth == base.models.lightgbm.max_depth
    assert base.policy.alpha == PolicySettings().alpha != 0.2  # the original (the default) is untouched
    assert tuned_settings(base, {}) is base


@pytest.mark.parametrize(
    "params, words",
    [
        ({"policy.alpha": 1.5}, ["policy.alpha", "1.5"]),
        ({"models.lightgbm.num_leaves": 1}, ["models.lightgbm.num_leaves", "ge 2"]),
        ({"envelope.dd_soft": 0.3}, ["dd_hard", "dd_soft"]),
        ({"policy.alpah": 0.1}, ["policy.alpah"]),
        ({"policy.alpha.x": 0.1}, ["policy.alpha.x"]),
    ],
)
def test_tuned_settings_refuses_bad_params(tmp_path, params, words):
    with pytest.raises(SettingsError) as info:
        tuned_settings(make_settings(tmp_path), params)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_search_space_per_profile(tmp_path):
    full = make_settings(
        tmp_path,
        models={"members": ["lightgbm", "linear", "catboost"]},
        envelope={"dd_guard": True, "vol_scaling": True},
    )
    full = full.model_copy(update={"profile": "full"})
    space = search_space(full)
    # the full profile searches everything the run's sizing uses (the argmax's lambda is not)
    assert list(space) == [p.name for p in SEARCH_PARAMETERS if p.name != "policy.turnover_penalty"]
    argmax = full.model_copy(update={"policy": full.policy.model_copy(update={"sizing": "argmax"})})
    assert set(space) ^ set(search_space(argmax)) == {"policy.turnover_penalty", "policy.sizing_gain"}
    # a parameter of a stage that is switched off is not searched
    off = Settings().envelope.model_copy(update={"dd_guard": False, "vol_scaling": False})
    unswitched = search_space(full.model_copy(update={"envelope": off}))
    assert set(space) - set(unswitched) == {"envelope.dd_soft", "envelope.dd_hard", "envelope.vol_target_scale"}
    assert {p.group for p in SEARCH_PARAMETERS} == set(GROUPS)
    default = search_space(full.model_copy(update={"profile": "default"}))
    assert set(default) == {p.name for p in SEARCH_PARAMETERS if p.group in ("ensemble", "policy")} - {
        "policy.turnover_penalty"
    }
    linear_only = search_space(make_settings(tmp_path).model_copy(update={"profile": "full"}))
    assert not any(n.startswith(("models.lightgbm", "models.catboost")) for n in linear_only)
    # dd_soft and dd_hard ranges are disjoint: any sample is a valid envelope
    assert space["envelope.dd_soft"].high < space["envelope.dd_hard"].low
    # ranges widen to hold the run's own values; the defaults lie inside
    odd = tuned_settings(full, {"policy.alpha": 0.98, "models.catboost.iterations": 1000})
    odd_space = search_space(odd)
    assert odd_space["policy.alpha"].high == 0.98 and odd_space["models.catboost.iterations"].high == 1000
    for name, value in default_params(odd, odd_space).items():
        internal = odd_space[name].to_internal_repr(value)
        assert odd_space[name]._contains(internal), name


def test_tuning_groups_setting_chooses_the_searched_groups(tmp_path):
    base = make_settings(tmp_path, tuning={"groups": ["policy"]})
    assert resolve_groups(base) == ("policy",)
    assert {n.split(".")[0] for n in search_space(base)} == {"policy"}
    assert resolve_groups(base, ["ensemble"]) == ("ensemble",)  # an explicit argument wins
    with pytest.raises(SettingsError) as info:
        load_settings(home=tmp_path, overrides={"tuning": {"groups": ["policy", "envelop"]}})
    assert "tuning.groups" in str(info.value) and "envelop" in str(info.value), str(info.value)


# --- the objective on a hand-made example --------------------------------------------------------


def test_robust_objective_by_hand():
    weights = TuningSettings(
        w_calmar=1.0,
        w_monthly_pnl=50.0,
        w_dd_penalty=5.0,
        dd_cap=0.25,
        w_turnover_penalty=0.05,
        turnover_cap=12.0,
        w_tail_penalty=0.5,
    )
    inner = [
        {"cagr": 0.20, "max_drawdown": -0.10, "avg_monthly_pnl": 0.015, "turnover": 10.0},  # C = 2.0
        {"cagr": 0.06, "max_drawdown": -0.30, "avg_monthly_pnl": 0.005, "turnover": 16.0},  # C = 0.2
        {"cagr": 0.02, "max_drawdown": -0.004, "avg_monthly_pnl": 0.002, "turnover": 12.0},  # C = 0.02/0.01 = 2.0
    ]
    # median C = 2.0, min C = 0.2
    # monthly: 50 * (0.015 + 0.005 + 0.002) / 3 = 0.3666667
    # drawdown over cap 0.25: (0 + 0.05 + 0) / 3 * 5 = 0.0833333
    # turnover over cap 12: (0 + 4 + 0) / 3 * 0.05 = 0.0666667
    # tail: 0.5 * (2.0 - 0.2) = 0.9
    expected = 2.0 + 0.3666667 - 0.0833333 - 0.0666667 - 0.9  # = 1.3166667
    assert robust_objective(inner, weights) == pytest.approx(expected, abs=1e-6)
    terms = objective_terms(inner, weights)
    assert terms["tail_penalty"] == pytest.approx(-0.9) and terms["dd_penalty"] == pytest.approx(-0.25 / 3)
    # a block without drawdown (performance_metrics' calmar is None) uses the 1% floor, not 0
    flat = [{"cagr": 0.03, "max_drawdown": 0.0, "avg_monthly_pnl": 0.0025, "turnover": 0.0, "calmar": None}]
    assert robust_objective(flat, weights) == pytest.approx(3.0 + 50 * 0.0025)
    with pytest.raises(ValueError, match="cagr"):
        robust_objective([{"max_drawdown": -0.1, "avg_monthly_pnl": 0.0, "turnover": 0.0}], weights)
    assert "median" in OBJECTIVE_FORMULA and "0.01" in OBJECTIVE_FORMULA


# --- inner splits never see the outer test window ------------------------------------------------


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    years=st.integers(4, 7),
    validation=st.integers(63, 150),
    horizon=st.integers(1, 30),
    extra_purge=st.integers(0, 20),
    n_inner=st.integers(1, 4),
    block=st.integers(63, 200),
    scheme=st.sampled_from(["walk_forward", "purged_kfold"]),
    window=st.sampled_from(["expanding", "rolling"]),
    embargo=st.integers(0, 30),
    skip=st.integers(0, 300),
)
def test_inner_splits_never_reach_the_outer_test_window(
    years, validation, horizon, extra_purge, n_inner, block, scheme, window, embargo, skip
):
    purge = horizon + extra_purge
    settings = Settings.model_validate(
        {
            "labels": {"horizon": horizon},
            "folds": {
                "min_train_years": 1,
                "validation_sessions": validation,
                "purge_sessions": purge,
                "n_inner_folds": n_inner,
                "inner_test_sessions": block,
                "inner_scheme": scheme,
                "window": window,
                "rolling_years": 2,
                "embargo_sessions": embargo,
                "required_oos_years": [],
            },
        }
    )
    sessions = decision_ts_from_dates(pd.bdate_range("2001-01-02", periods=252 * years + skip))
    usable = pd.Series(np.arange(len(sessions)) < len(sessions) - horizon, index=sessions)
    try:
        plan = plan_folds(sessions, usable, settings)
    except FoldPlanError:
        assume(False)
    pos = {ts: i for i, ts in enumerate(sessions)}
    for fold, rows in plan.groupby("fold"):
        outer = rows[rows["inner"] == -1].iloc[0]
        # the first session of the purge before the outer validation tail: inner splits (tuning)
        # never reach the rows that early-stop, blend, calibrate and estimate M, nor the test window
        limit = pos[outer["val_start"]] - purge
        inner = rows[rows["inner"] >= 0]
        assert 1 <= len(inner) <= n_inner  # an early fold with a short region tunes on fewer splits
        for _, row in inner.iterrows():
            for column in (
                "train_start",
                "train_end",
                "train2_start",
                "train2_end",
                "val_start",
                "val_end",
                "test_start",
                "test_end",
            ):
                if pd.notna(row[column]):
                    assert pos[row[column]] < limit, (fold, row["inner"], column)


def test_tuning_reads_nothing_of_the_outer_test_window(problem):
    """Perturb every input from the outer test window on: the inner evaluation stays bit-for-bit."""
    settings, panel, utilities, plan, frames = problem
    outer = plan[(plan["fold"] == FOLD) & (plan["inner"] == -1)].iloc[0]
    cutoff = panel.index[panel.index.get_indexer([outer["test_start"]])[0] - 1]
    changed = perturb_after(panel, cutoff, seed=5)
    assert not changed.loc[outer["test_start"] :].equals(panel.loc[outer["test_start"] :])
    *_, utilities2, _plan2, frames2 = build(changed, settings)
    params = {"labels.lambda_dd": 2.0, "policy.alpha": 0.2, "ensemble.calibration": "temperature"}
    before = evaluate_params(params, frames, utilities, panel, settings)
    after = evaluate_params(params, frames2, utilities2, changed, settings)
    blocks_before, blocks_after = before.pop("returns"), after.pop("returns")
    assert before == after
    for a, b in zip(blocks_before, blocks_after, strict=True):  # the inner blocks' daily returns too
        pd.testing.assert_frame_equal(a, b)
    assert all(f.index.max() < outer["test_start"] for f in frames2)


# --- evaluation = the fold pipeline; pruning -----------------------------------------------------


def test_evaluation_matches_the_fold_pipeline(problem):
    settings, panel, utilities, _, frames = problem
    out = evaluate_params({}, frames, utilities, panel, settings)
    frame = frames[0]
    model = fit_fold(frame, utilities, settings)
    path = fold_path(predict_split(model, frame, "test"), model.m, panel, settings, model.prior)
    decisions = path[["w_final", "exposure"]].rename(columns={"w_final": "w"})
    metrics = performance_metrics(
        run_backtest(
            decisions,
            panel.loc[path.index[0] :, list(RETURN_COLUMNS)],
            CostModel.from_settings(settings.costs),
            initial_book=(0.5, 0.5),  # a fresh block starts from the baseline book (baseline weight 0.5)
        ),
        settings.report.notional,
    )
    assert out["inner"][0]["calmar"] == metrics["calmar"]
    assert out["inner"][0]["avg_monthly_pnl"] == metrics["avg_monthly_pnl"]
    assert out["objective"] == robust_objective(out["inner"], settings.tuning)


class _PruningTrial:
    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []
        self.attrs: dict = {}

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return True

    def set_user_attr(self, key: str, value) -> None:
        self.attrs[key] = value


def test_pruning_stops_after_the_first_inner_split(problem):
    settings, panel, utilities, _, frames = problem
    trial = _PruningTrial()
    with pytest.raises(optuna.TrialPruned):
        evaluate_params({"policy.alpha": 0.3}, frames, utilities, panel, settings, trial=trial)
    assert [step for step, _ in trial.reports] == [0] and len(trial.attrs["inner_metrics"]) == 1


# --- studies: resume, interruption, ledger -------------------------------------------------------


def with_budget(settings: Settings, home: Path, **tuning) -> Settings:
    return settings.model_copy(update={"home": home, "tuning": settings.tuning.model_copy(update=tuning)})


def _finished(result) -> pd.DataFrame:
    ledger = result.ledger
    return ledger[ledger["state"].isin(["COMPLETE", "PRUNED"])].reset_index(drop=True)


def _params(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if c.startswith("param.") or c == "objective"]]


def test_study_resumes_with_its_finished_trials(problem, tmp_path):
    settings, panel, utilities, _, frames = problem
    s2 = with_budget(settings, tmp_path / "a", n_trials=2)
    first = run_study(FOLD, frames, utilities, panel, s2)
    assert first.n_complete == 2 and (tmp_path / "a/step3_out/allocator/optuna" / f"{FOLD}.journal").is_file()
    assert first.ledger.loc[0, "role"] == "defaults"
    assert set(first.ledger["mode"]) == {"sequential"} and first.to_dict()["mode"] == "sequential"
    s4 = s2.model_copy(update={"tuning": s2.tuning.model_copy(update={"n_trials": 4})})
    resumed = run_study(FOLD, frames, utilities, panel, s4)
    assert resumed.n_complete == 4 and resumed.n_new == 2
    pd.testing.assert_frame_equal(_params(first.ledger), _params(resumed.ledger.iloc[:2]))
    assert list(resumed.ledger["duration_s"].iloc[:2]) == list(first.ledger["duration_s"])  # not redone
    again = run_study(FOLD, frames, utilities, panel, s4)  # budget spent: nothing new
    assert again.n_new == 0 and again.best_params == resumed.best_params
    # the same proposals as one uninterrupted study of 4 trials
    straight = run_study(FOLD, frames, utilities, panel, s4.model_copy(update={"home": tmp_path / "b"}))
    pd.testing.assert_frame_equal(_params(straight.ledger), _params(resumed.ledger))
    assert resumed.best_value >= resumed.default_value
    json.dumps(resumed.to_dict())
    path = export_ledger(resumed, tmp_path / "ledger.parquet")
    stored = read_parquet(path)
    assert len(stored) == 4 and {
        "trial",
        "state",
        "objective",
        "duration_s",
        "inner1.calmar",
        "param.policy.alpha",
        "term.tail_penalty",
    } <= set(stored.columns)
    # the per-trial daily returns of the inner blocks (the overfitting statistics' input), earlier
    # trials of the resumed study included, are the returns the objective measured
    returns = read_parquet(export_trial_returns(resumed, tmp_path / "trial_returns.parquet"))
    assert [c for c in returns.columns if c.startswith("trial_")] == [f"trial_{k}" for k in range(4)]
    assert list(returns["inner"].unique()) == [0, 1] and returns["realized_ts"].is_monotonic_increasing
    out = evaluate_params({}, frames, utilities, panel, s4)
    expected = pd.concat(out["returns"], ignore_index=True)
    np.testing.assert_array_equal(returns["trial_0"].to_numpy(), expected["ret"].to_numpy())
    np.testing.assert_array_equal(returns["cash_return"].to_numpy(), expected["r_cash"].to_numpy())
    assert (returns["realized_ts"] == expected["realized_ts"]).all()
    for k in range(4):  # each trial's inner-split Calmar in the ledger comes from these returns
        block = returns[returns["inner"] == 1]
        equity = np.cumprod(1.0 + block[f"trial_{k}"].to_numpy())
        assert stored.loc[k, "inner1.cagr"] == pytest.approx(equity[-1] ** (252 / len(block)) - 1.0, rel=1e-9)


def test_interrupted_study_completes_the_remaining_trials(problem, tmp_path, monkeypatch):
    settings, panel, utilities, _, frames = problem
    s = with_budget(settings, tmp_path / "a", n_trials=5)

    def stop_after_trial_2(message: str) -> None:
        if "trial 2 " in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # interrupted between trials
        run_study(FOLD, frames, utilities, panel, s, progress=stop_after_trial_2)
    calls = {"n": 0}
    real = tuning_module.evaluate_params

    def interrupted_mid_trial(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning_module, "evaluate_params", interrupted_mid_trial)
    with pytest.raises(KeyboardInterrupt):  # interrupted inside trial 3: it is marked failed
        run_study(FOLD, frames, utilities, panel, s)
    monkeypatch.setattr(tuning_module, "evaluate_params", real)
    resumed = run_study(FOLD, frames, utilities, panel, s)
    assert resumed.n_complete == 5 and resumed.n_failed == 1 and resumed.n_new == 2
    assert list(resumed.ledger["state"]) == ["COMPLETE"] * 3 + ["FAIL"] + ["COMPLETE"] * 2
    straight = run_study(FOLD, frames, utilities, panel, s.model_copy(update={"home": tmp_path / "b"}))
    pd.testing.assert_frame_equal(_params(straight.ledger), _params(_finished(resumed)))


def test_journal_storage_and_changed_problem(problem, tmp_path):
    settings, panel, utilities, _, frames = problem
    journal = with_budget(settings, tmp_path, n_trials=2, storage="journal:optuna/studies.log")
    result = run_study(FOLD, frames, utilities, panel, journal)
    assert result.n_complete == 2 and (tmp_path / "optuna/studies.log").is_file()
    assert result.storage.startswith("journal:")
    chosen = result.to_dict()["selection"]
    assert chosen["rule"] == "beats_defaults" and chosen["chosen_trial"] == result.best_trial
    assert (
        result.best_params
        == result.ledger.set_index("trial")
        .loc[result.best_trial]
        .filter(like="param.")
        .rename(lambda c: c.removeprefix("param."))
        .to_dict()
    )
    # which finished trial trades is not part of the problem: the stored study is read, nothing is rerun
    highest = run_study(FOLD, frames, utilities, panel, with_budget(journal, tmp_path, selection="highest"))
    assert highest.n_new == 0 and highest.to_dict()["selection"]["rule"] == "highest"
    assert highest.best_value == result.ledger["objective"].max()
    other = with_budget(journal, tmp_path, w_calmar=2.0)
    with pytest.raises(tuning_module.StudyMismatchError, match="another problem"):
        run_study(FOLD, frames, utilities, panel, other)
    # in the default per-fold file a changed problem starts afresh
    local = with_budget(settings, tmp_path / "local", n_trials=2)
    run_study(FOLD, frames, utilities, panel, local)
    changed = with_budget(local, tmp_path / "local", w_calmar=2.0)
    messages: list[str] = []
    fresh = run_study(FOLD, frames, utilities, panel, changed, progress=messages.append)
    assert fresh.n_new == 2 and any("afresh" in m for m in messages)


def test_parallel_workers_share_a_journal_study(problem, tmp_path):
    """Two worker processes on one fold's study in a journal file: together they stop at the
    budget, and the ledger records the parallel mode and each trial's worker."""
    settings, panel, utilities, _, frames = problem
    s = with_budget(settings, tmp_path, n_trials=4, storage="journal:optuna/studies.log", workers=2)
    result = run_study(FOLD, frames, utilities, panel, s)
    assert result.n_complete + result.n_pruned == 4 and result.n_new == len(result.ledger) >= 4
    assert set(result.ledger["mode"]) == {"parallel"} and set(result.ledger["worker"]) <= {0, 1}
    assert result.to_dict()["mode"] == "parallel" and result.to_dict()["workers"] == 2
    with pytest.raises(ValueError, match="tuning.workers = 2 needs a shared tuning.storage"):
        make_settings(tmp_path, tuning={"workers": 2})


def test_model_trials_then_cheap_trials_that_fit_nothing(problem, tmp_path):
    """tuning.model_trials = 5 of 8: the first five trials are those of the study without it (every
    parameter searched); the last three keep the linear member's parameters of the best of them
    (here not the last one), search the policy's, and fit no member (the inner fits are the five
    trials' two splits); a staged study resumed proposes what the straight one did. Every budget
    here gives the TPE the same 3 startup trials (max(3, n_trials // 3)), so the studies differ only
    by the split."""
    settings, panel, utilities, _, frames = problem
    space = search_space(settings, ["linear", "policy"])
    model = [name for name in space if name.startswith("models.")]
    assert model == ["models.linear.C", "models.linear.l1_ratio"]
    plain = run_study(
        FOLD, frames, utilities, panel, with_budget(settings, tmp_path / "plain", n_trials=5), space=space
    )
    best = plain.ledger.loc[plain.ledger["objective"].idxmax()]
    assert best["trial"] != 4  # a rule keeping the last model trial would fail below
    staged_settings = with_budget(settings, tmp_path / "staged", n_trials=8, model_trials=5)
    staged = run_study(FOLD, frames, utilities, panel, staged_settings, space=space)
    ledger = staged.ledger
    assert list(ledger["stage"]) == ["models"] * 5 + ["cheap"] * 3
    assert plain.ledger["stage"].isna().all()
    pd.testing.assert_frame_equal(_params(ledger.iloc[:5]), _params(plain.ledger))
    for name in model:
        assert (ledger[f"param.{name}"].iloc[5:] == best[f"param.{name}"]).all()
    assert ledger["param.policy.alpha"].iloc[5:].nunique() == 3  # the policy is still searched
    assert plain.fit_reuse["fitted"] == staged.fit_reuse["fitted"] == 5 * len(frames)
    assert staged.best_value >= plain.best_value
    first = with_budget(settings, tmp_path / "resumed", n_trials=6, model_trials=5)
    run_study(FOLD, frames, utilities, panel, first, space=space)
    resumed = run_study(FOLD, frames, utilities, panel, with_budget(first, first.home, n_trials=8), space=space)
    assert resumed.n_new == 2
    pd.testing.assert_frame_equal(_params(resumed.ledger), _params(ledger))
    # without model parameters in the space the setting changes nothing
    cheap_space = search_space(settings, ["policy"])
    alone = run_study(
        FOLD, frames, utilities, panel, with_budget(settings, tmp_path / "c1", n_trials=3), space=cheap_space
    )
    unstaged = with_budget(settings, tmp_path / "c2", n_trials=3, model_trials=1)
    same = run_study(FOLD, frames, utilities, panel, unstaged, space=cheap_space)
    pd.testing.assert_frame_equal(_params(alone.ledger), _params(same.ledger))
    assert same.ledger["stage"].isna().all()


def _trial(number: int, value: float | None, stage: str | None = "models", c: float = 1.0) -> FrozenTrial:
    state = TrialState.PRUNED if value is None else TrialState.COMPLETE
    trial = optuna.trial.create_trial(
        state=state,
        value=value,
        params={"models.linear.C": c, "policy.alpha": 0.5},
        distributions={
            "models.linear.C": FloatDistribution(0.001, 10, log=True),
            "policy.alpha": FloatDistribution(0, 0.9),
        },
        user_attrs={} if stage is None else {"stage": stage},
    )
    trial.number = number
    return trial


def test_the_model_stage_keeps_the_best_complete_model_trial(tmp_path):
    """The rule by itself: the threshold counts finished model trials (pruned ones included, cheap
    ones not), the kept parameters are the best complete model trial's (the earliest on a tie; a
    cheap trial's higher objective does not count), and a space or settings without a split give
    no stage."""
    settings = with_budget(make_settings(tmp_path), tmp_path, model_trials=3)
    space = dict(_trial(0, 1.0).distributions)
    trials = [_trial(0, 1.0, c=0.1), _trial(1, None, c=0.2), _trial(2, 3.0, c=0.3)]
    assert model_stage(trials[:2], space, settings) == ("models", None)
    assert model_stage(trials, space, settings) == ("cheap", {"models.linear.C": 0.3})
    tie = [*trials, _trial(3, 3.0, c=0.4), _trial(4, 9.0, "cheap", c=0.5)]
    assert model_stage(tie, space, settings) == ("cheap", {"models.linear.C": 0.3})
    # trials of an unsplit run (no stage) are model trials; cheap ones do not fill the stage
    unlabelled = [_trial(0, 1.0, None, c=0.1), _trial(1, 2.0, "cheap"), _trial(2, 2.0, "cheap")]
    assert model_stage(unlabelled, space, settings) == ("models", None)
    assert model_stage([_trial(k, None) for k in range(4)], space, settings) == ("models", None)
    assert model_stage(trials, {"policy.alpha": space["policy.alpha"]}, settings) == (None, None)
    assert model_stage(trials, space, with_budget(settings, tmp_path, model_trials=None)) == (None, None)
    assert refits_members("costs.fee_bps") and refits_members("labels.lambda_dd")
    assert not refits_members("envelope.dd_soft")


# --- tuning finds a known best -------------------------------------------------------------------


def test_tuning_finds_the_known_best_vol_target(tmp_path):
    """Legs whose every daily return is positive, cash at 0, zero costs, no turnover penalty: more
    exposure earns more on every session, so the objective never falls as vol_target rises, and its
    best is the plateau of full exposure: any vol_target at or above the largest trailing volatility
    (identical paths, identical objective). Lower targets cut exposure and earn less."""
    settings = make_settings(
        tmp_path,
        costs={"fee_bps": 0.0, "slippage_bps": 0.0, "impact_bps": 0.0},
        envelope={"dd_guard": False, "drift_throttle": False, "vol_scaling": True, "vol_target": 0.003},
        # the search is under test, not the selection: trade the highest objective
        tuning={"n_trials": 10, "pruning": False, "w_turnover_penalty": 0.0, "selection": "highest"},
    )
    rng = np.random.default_rng(8)
    panel = synthetic_panel()
    panel["qqq_leg_return"] = rng.uniform(0.0, 0.004, len(panel))  # about 1.8% annualised volatility
    panel["spy_leg_return"] = rng.uniform(0.0, 0.004, len(panel))
    panel["cash_return"] = 0.0
    *_, utilities, _, frames = build(panel, settings)
    space = {"envelope.vol_target": FloatDistribution(0.001, 0.5, log=True)}
    result = run_study(FOLD, frames, utilities, panel, settings, space=space)
    top = evaluate_params({"envelope.vol_target": 0.5}, frames, utilities, panel, settings)["objective"]
    assert result.best_value == top  # found the plateau of full exposure
    best = result.best_params["envelope.vol_target"]
    assert evaluate_params({"envelope.vol_target": best}, frames, utilities, panel, settings)["objective"] == top
    assert result.best_value > result.default_value  # the default 0.003 cuts exposure
    ledger = result.ledger.sort_values("param.envelope.vol_target")
    assert (np.diff(ledger["objective"].to_numpy()) >= 0.0).all()  # the known shape: never falls
