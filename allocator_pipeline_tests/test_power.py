"""Power and size of the method on planted-signal fixtures (quick settings, seconds).

The fixtures: the embedded prices' passive (buy-and-hold) legs, whose confidence columns carry a
signal planted by ``synth-step3`` with correlation IC to the next 20 sessions' leg spread. The
allocator is fitted walk-forward (folds 2016..2025, quick models, no tuning) and its traded weight
``w_final`` is correlated with that future spread over the ~2,400 out-of-sample sessions.

Threshold: the spreads of consecutive sessions overlap over H = 20 sessions, so a correlation
estimated on n sessions has about n / H independent observations; a zero correlation then has a
standard error of sqrt(H / n) (about 0.09 here). A signal is *learned* when the correlation
exceeds three such standard errors; pure noise is *not learned* when its correlation stays within
them.
"""

import tempfile

import numpy as np
import pytest

from allocator_pipeline.core.allocation import fit_fold, predict_split, run_segments
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.evaluation.retention import signal_retention
from allocator_pipeline.core.features import build_features
from allocator_pipeline.core.folds import fold_dataset, plan_folds, usable_sessions
from allocator_pipeline.core.inputs import load_market, read_legs, read_step3_dir, run_reference_engine
from allocator_pipeline.core.inputs.synthetic import read_planted, synth_step3
from allocator_pipeline.core.labels import utility_labels
from allocator_pipeline.settings import load_settings

HORIZON = 20


@pytest.fixture(scope="module")
def passive_legs():
    settings = load_settings(profile="quick", environ={}, overrides={"data": {"step3_mode": "passive"}})
    market = load_market(settings)
    source = tempfile.mkdtemp(prefix="passive-legs-")
    run_reference_engine(market, settings, source)
    return market, source


def walk_forward_path(market, source, ic: float, tmp_path, horizon: int = HORIZON, condition: str = "none"):
    """The walk-forward path (folds 2016..2025, quick models, no tuning) on a planted fixture, and
    its planted signal (``signal``, ``spread``, ``loading`` by ``decision_ts``)."""
    out = tmp_path / f"planted-{ic}-{horizon}-{condition}"
    manifest = synth_step3(source, out, market.index, ic=ic, horizon=horizon, seed=0, condition=condition)
    if condition == "none":  # under a condition the IC holds on the loaded sessions only
        assert abs(manifest["achieved_ic"] - ic) < 0.05
    read_step3_dir(out, {"qqq": "QQQ", "spy": "SPY"}, market.index)  # the project's own validator accepts it
    s = load_settings(
        profile="quick",
        environ={},
        step3=out,
        overrides={
            "tuning": {"enabled": False},
            "folds": {"first_test_year": 2016, "required_oos_years": []},
            "features": {"blocks": ["returns", "volatility", "confidence", "regime"]},
        },
    )
    panel = read_legs(s, market)
    features = build_features(panel, s.features)
    labels, utilities = utility_labels(panel, s.labels, CostModel.from_settings(s.costs))
    plan = plan_folds(features.index, usable_sessions(features, labels), s)
    segments = []
    for fold in sorted(plan.loc[plan["inner"] == -1, "fold"]):
        frame = fold_dataset(features, labels, plan, fold)
        model = fit_fold(frame, utilities, s)
        segments.append(model.segment(fold, predict_split(model, frame), s))
    path, _ = run_segments(segments, panel)
    _, signal = read_planted(out)
    return path, signal


def walk_forward_retention(market, source, ic: float, tmp_path, horizon: int = HORIZON) -> dict:
    path, signal = walk_forward_path(market, source, ic, tmp_path, horizon)
    return signal_retention(path, signal, horizon)


def three_standard_errors(sessions: int, horizon: int = HORIZON) -> float:
    return 3.0 * np.sqrt(horizon / sessions)


@pytest.mark.slow
def test_a_strong_planted_signal_is_learned(passive_legs, tmp_path):
    market, source = passive_legs
    kept = walk_forward_retention(market, source, 0.5, tmp_path)
    assert kept["sessions"] > 2000
    assert kept["w_final"] > three_standard_errors(kept["sessions"]), kept


@pytest.mark.slow
def test_pure_noise_is_not_learned(passive_legs, tmp_path):
    market, source = passive_legs
    kept = walk_forward_retention(market, source, 0.0, tmp_path)
    assert abs(kept["signal"]) < three_standard_errors(kept["sessions"])  # the fixture itself is noise
    assert abs(kept["w_final"]) < three_standard_errors(kept["sessions"]), kept


@pytest.mark.slow
def test_a_short_horizon_signal_is_learned_and_noise_at_that_horizon_is_not(passive_legs, tmp_path):
    """A signal about the next 10 sessions (not the label horizon of 20): the model's own choice
    and the traded weight both correlate with the future 10-session spread beyond three standard
    errors of zero (sqrt(10 / n) each: 10-session spreads overlap); pure noise at that horizon stays
    within them. (The smoothing keeps about half of w_raw's correlation: docs/research.md.)"""
    market, source = passive_legs
    kept = walk_forward_retention(market, source, 0.5, tmp_path, horizon=10)
    bound = three_standard_errors(kept["sessions"], 10)
    assert kept["w_raw"] > bound and kept["w_final"] > bound, kept
    noise = walk_forward_retention(market, source, 0.0, tmp_path, horizon=10)
    assert abs(noise["w_raw"]) < bound and abs(noise["w_final"]) < bound, noise


def test_synth_step3_command_writes_a_valid_planted_directory(passive_legs, tmp_path):
    from click.testing import CliRunner

    from allocator_pipeline import cli

    market, source = passive_legs
    out = tmp_path / "synthetic"
    args = ["--home", str(tmp_path), "synth-step3", str(out), "--ic", "0.3", "--seed", "4", "--source", source]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert "planted IC 0.3" in result.output and "achieved" in result.output
    meta, _ = read_planted(out)
    assert (meta["ic"], meta["seed"], meta["horizon"]) == (0.3, 4, HORIZON)
    step3 = read_step3_dir(out, {"qqq": "QQQ", "spy": "SPY"}, market.index)
    assert step3.has_confidence
    qqq = step3.legs["qqq"]
    passive = read_step3_dir(source, {"qqq": "QQQ", "spy": "SPY"}, market.index, require_confidence=False)
    assert np.array_equal(qqq["leg_return"].to_numpy(), passive.legs["qqq"]["leg_return"].to_numpy())  # real legs
    again = CliRunner().invoke(cli.main, ["--home", str(tmp_path), "synth-step3", source, "--ic", "0.1"])
    assert again.exit_code != 0 and "not a synth-step3 directory" in again.output  # never overwrites other data


@pytest.mark.slow
def test_a_signal_present_only_in_rough_markets_is_learned_there(passive_legs, tmp_path):
    """The signal speaks only in sessions whose QQQ-leg volatility is above its expanding median
    (``condition = "high_vol"``, known at the close; IC 0.5 there, none in calm sessions): on the
    high-volatility sessions the model's own choice ``w_raw`` correlates with the future spread
    beyond three standard errors of zero (sqrt(H / n), n the high-volatility sessions compared:
    0.41 on 1,068 sessions; it reads 0.45). The traded weight keeps less of it (0.31 here, about
    2.3 standard errors): the smoothing's cost, measured on the family in docs/research.md."""
    market, source = passive_legs
    path, signal = walk_forward_path(market, source, 0.5, tmp_path, condition="high_vol")
    rough = signal.index[(signal["loading"] > 0) & signal["spread"].notna()].intersection(path.index)
    assert len(rough) > 800
    kept = float(np.corrcoef(path.loc[rough, "w_raw"], signal.loc[rough, "spread"])[0, 1])
    assert kept > three_standard_errors(len(rough)), kept
