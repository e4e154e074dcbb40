"""Overfitting statistics (core/evaluation/overfitting.py) on hand-made inputs: CSCV against a
naive reference written from the paper's definition, the deflated Sharpe's edge cases, the pooled
variance by hand, the research ledger's errors and the per-fold bookkeeping."""

from __future__ import annotations

import math
import statistics
import warnings
from itertools import combinations
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.evaluation.overfitting import (
    EULER_GAMMA,
    deflated_sharpe,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    load_trial_returns,
    overfitting_statistics,
    pbo_cscv,
    pooled_sharpe_variance,
    research_ledger,
    sharpe_per_session,
    trial_excess,
)


def _reference_logits(m: np.ndarray, n_blocks: int) -> list[float]:
    """CSCV by its definition (Bailey, Borwein, Lopez de Prado and Zhu), one combination at a time:
    drop the oldest ``T mod S`` rows, cut ``S`` blocks, and for each half ``J`` take the in-sample
    best trial by ``mean / stdev`` (a trial without spread is never best: -inf), rank its
    out-of-sample Sharpe among all trials (1 = worst, ties averaged), ``logit(rank / (N + 1))``."""
    t, n = m.shape
    length = t // n_blocks
    rows = m[t - length * n_blocks :]
    blocks = [rows[b * length : (b + 1) * length] for b in range(n_blocks)]

    def sr(x: np.ndarray) -> float:
        values = [float(v) for v in x]
        sd = statistics.stdev(values)
        return statistics.mean(values) / sd if sd > 0 else -math.inf

    logits = []
    for chosen in combinations(range(n_blocks), n_blocks // 2):
        ins = np.vstack([blocks[b] for b in chosen])
        outs = np.vstack([blocks[b] for b in range(n_blocks) if b not in chosen])
        train = [sr(ins[:, j]) for j in range(n)]
        test = [sr(outs[:, j]) for j in range(n)]
        best = max(range(n), key=lambda j: (train[j], -j))  # the first of equal in-sample Sharpes
        perf = test[best]
        rank = 1 + sum(v < perf for v in test) + (sum(v == perf for v in test) - 1) / 2
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return logits


def test_pbo_matches_the_definition_with_ties_a_flat_trial_and_a_median_winner():
    """Four trials over 4 blocks of 3 sessions (two oldest rows dropped): trial 3 repeats trial 1
    (ties, averaged ranks), trial 2 is flat (no spread: never the in-sample winner, the worst out of
    sample). Some in-sample winner lands exactly at the out-of-sample median (logit 0), which
    counts as overfit."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.001, 0.01, 14), rng.normal(0.0, 0.01, 14)
    m = np.column_stack([a, b, np.zeros(14), b])
    expected = _reference_logits(m, 4)
    assert any(v == 0.0 for v in expected) and len(set(expected)) > 1  # the cases the test is for
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the flat trial's 0 / 0 is handled, not warned about
        out = pbo_cscv(m, 4)
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-9, atol=1e-12)
    assert out["pbo"] == pytest.approx(sum(v <= 0 for v in expected) / len(expected))
    assert (out["n_combinations"], out["n_trials"], out["n_sessions"], out["block_sessions"]) == (6, 4, 12, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pbo_matches_the_definition_on_random_trials(seed):
    rng = np.random.default_rng(seed)
    m = rng.normal(0.0005, 0.01, (37, 5)) + rng.normal(0, 0.002, 5)
    out = pbo_cscv(m, 6)
    expected = _reference_logits(m, 6)
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-9, atol=1e-12)
    assert out["pbo"] == pytest.approx(sum(v <= 0 for v in expected) / len(expected))


@pytest.mark.parametrize("seed", [3, 4])
def test_pbo_matches_the_definition_when_means_are_large_against_the_spread(seed):
    """Trials whose mean return is of the order of their spread: the variance's mean term
    (``sum x^2 - n mean^2``) then decides the ranking, so a wrong term or divisor shows."""
    rng = np.random.default_rng(seed)
    n = 6
    m = rng.normal(rng.uniform(-1.0, 1.0, n), rng.uniform(0.2, 1.0, n), (40, n))
    for blocks in (2, 4):
        out = pbo_cscv(m, blocks)
        np.testing.assert_allclose(out["logits"], _reference_logits(m, blocks), rtol=1e-9, atol=1e-12)


def test_a_flat_trial_of_non_zero_return_is_handled_without_a_warning():
    """0.5 every session: zero variance with a non-zero mean (a division by zero, not warned
    about); the trial is never the in-sample winner."""
    rng = np.random.default_rng(8)
    m = np.column_stack([rng.normal(0.001, 0.01, 16), rng.normal(0.0, 0.01, 16), np.full(16, 0.5)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = pbo_cscv(m, 4)
    np.testing.assert_allclose(out["logits"], _reference_logits(m, 4), rtol=1e-9, atol=1e-12)


def test_the_smallest_cscv_is_accepted_and_smaller_ones_are_refused_with_the_reason():
    """Two trials, two blocks of two sessions: the smallest CSCV (one trial better in each half:
    the in-sample winner is the out-of-sample loser twice, PBO 1)."""
    m = np.array([[0.01, 0.0], [0.03, 0.01], [-0.01, 0.02], [0.01, 0.04]])
    out = pbo_cscv(m, 2)
    assert out["pbo"] == 1.0 and out["n_sessions"] == 4 and out["n_combinations"] == 2
    # the first trial better in both halves (Sharpes sqrt 2 and 3 / sqrt 2 against their negatives): the
    # in-sample winner ranks 2 of 2 out of sample twice, logit(2/3) = log 2, PBO 0
    better = np.array([[0.01, -0.01], [0.03, -0.03], [0.02, -0.02], [0.04, -0.01]])
    out = pbo_cscv(better, 2)
    assert out["pbo"] == 0.0
    np.testing.assert_allclose(out["logits"], [math.log(2.0)] * 2, rtol=1e-12)
    with pytest.raises(
        InputDataError, match=r"^CSCV needs a \(T, N >= 2\) matrix of trial returns, got shape \(4, 1\)$"
    ):
        pbo_cscv(m[:, :1], 2)
    with pytest.raises(InputDataError, match=r"CSCV needs a \(T, N >= 2\) matrix"):
        pbo_cscv(m[:, 0], 2)
    for blocks in (0, 3):
        with pytest.raises(InputDataError, match=rf"^value {blocks}: CSCV needs an even number of blocks >= 2$"):
            pbo_cscv(m, blocks)
    with pytest.raises(InputDataError, match=r"^CSCV with 4 blocks needs at least 8 sessions, got 7$"):
        pbo_cscv(np.ones((7, 2)), 4)
    bad = m.copy()
    bad[1, 1] = np.nan
    with pytest.raises(InputDataError, match=r"^CSCV trial returns must be finite$"):
        pbo_cscv(bad, 2)


def test_sharpe_per_session_needs_two_values_and_a_spread():
    assert sharpe_per_session(np.array([0.01, 0.03])) == pytest.approx(0.02 / statistics.stdev([0.01, 0.03]))
    assert math.isnan(sharpe_per_session(np.array([0.01])))
    assert math.isnan(sharpe_per_session(np.array([0.01, 0.01, 0.01])))


def test_expected_max_sharpe_from_two_trials_and_none_without_variance():
    """N = 2: Z^-1(1 - 1/2) = 0, so SR0 = sqrt(V) * gamma * Z^-1(1 - 1 / (2 e))."""
    z2 = NormalDist().inv_cdf(1 - 1 / (2 * math.e))
    assert expected_max_sharpe(2, 0.04) == pytest.approx(0.2 * EULER_GAMMA * z2, rel=1e-12)
    assert expected_max_sharpe(1, 0.04) == 0.0 and expected_max_sharpe(5, 0.0) == 0.0


def test_deflated_sharpe_ratio_is_undefined_without_two_sessions_or_a_positive_denominator():
    """T = 2 is the fewest sessions; with SR 1, skew 1 and kurtosis 1 the variance term
    1 - 1 + 0 = 0 leaves it undefined; so do a single session and a NaN input."""
    dsr, z = deflated_sharpe_ratio(0.1, 2, 0.0, 3.0, 0.0)
    assert z == pytest.approx(0.1 / math.sqrt(1 + 0.5 * 0.01)) and dsr == pytest.approx(NormalDist().cdf(z))
    for args in ((1.0, 100, 1.0, 1.0, 0.0), (0.1, 1, 0.0, 3.0, 0.0), (math.nan, 100, 0.0, 3.0, 0.0)):
        assert all(math.isnan(v) for v in deflated_sharpe_ratio(*args)), args


def test_deflated_sharpe_reports_its_inputs_and_none_where_undefined():
    x = np.array([0.01, -0.02, 0.015, 0.0, 0.005, -0.01])
    out = deflated_sharpe(x, 10, 1e-3)
    sr0 = expected_max_sharpe(10, 1e-3)
    assert out["sr0"] == sr0 and out["sr0_annualised"] == pytest.approx(sr0 * math.sqrt(252))
    assert out["sharpe"] == pytest.approx(statistics.mean(x) / statistics.stdev(x))
    assert out["z"] is not None and out["dsr"] == pytest.approx(NormalDist().cdf(out["z"]))
    flat = deflated_sharpe(np.full(5, 0.001), 10, 1e-3)  # no spread: no moments, no Sharpe
    assert flat["sharpe"] is None and flat["skewness"] is None and flat["kurtosis"] is None
    assert flat["dsr"] is None and flat["z"] is None and flat["sharpe_annualised"] is None


def test_pooled_sharpe_variance_by_hand():
    """Within-study squares: (0.1, 0.3) -> 0.02 on 1 dof; (0.2, 0.2, 0.5) -> 0.06 on 2; a study
    with one finite value adds nothing: 0.08 / 3."""
    v, dof = pooled_sharpe_variance({"a": np.array([0.1, 0.3]), "b": np.array([0.2, 0.2, 0.5]), "c": [np.nan, 0.4]})
    assert dof == 3 and v == pytest.approx(0.08 / 3)
    v, dof = pooled_sharpe_variance({"c": [0.4]})
    assert dof == 0 and math.isnan(v)


def _ledger(n: int, trials: dict[str, np.ndarray]) -> pd.DataFrame:
    """A trial-returns ledger; each trial's weight choice over the baseline (``active_<n>``, the
    deflated Sharpe's V) is its return minus 3e-4, NaN where the trial's is."""
    frame = pd.DataFrame(trials)
    for name in trials:
        frame["active_" + name.removeprefix("trial_")] = frame[name] - 3e-4
    frame["cash_return"] = 1e-4
    return frame.iloc[:n]


def test_trial_excess_needs_the_cash_column():
    with pytest.raises(InputDataError, match=r"^column 'cash_return': trial-returns ledger lacks a column$"):
        trial_excess(pd.DataFrame({"trial_0": [0.01]}))


def test_overfitting_statistics_skips_a_fold_with_its_reason_and_goes_on():
    """Fold a: one complete trial (CSCV needs 2); fold b: too few sessions for 4 blocks; fold c:
    evaluated. The skipped folds do not stop the later ones; the deflated Sharpe counts every
    study and research trial."""
    rng = np.random.default_rng(3)
    long = {f"trial_{k}": rng.normal(0.0005, 0.01, 40) for k in range(3)}
    ledgers = {
        "c": _ledger(40, long),
        "a": _ledger(40, {"trial_0": long["trial_0"], "trial_1": np.r_[np.nan, long["trial_1"][1:]]}),
        "b": _ledger(7, long),
        "d": _ledger(40, {"trial_0": long["trial_0"], "trial_1": long["trial_1"]}),
    }
    out = overfitting_statistics(
        rng.normal(0.0003, 0.01, 500), ledgers, n_trials=9, n_blocks=4, research_trials_count=5
    )
    pbo = out["pbo"]
    assert pbo["skipped"] == {
        "a": "1 complete trial(s) with inner-block returns (CSCV needs 2)",
        "b": "CSCV with 4 blocks needs at least 8 sessions, got 7",
    }
    assert list(pbo["folds"]) == ["c", "d"] and pbo["n_blocks"] == 4  # d: exactly two trials suffice
    c = pbo_cscv(trial_excess(ledgers["c"]).to_numpy(), 4)
    d2 = pbo_cscv(trial_excess(ledgers["d"]).to_numpy(), 4)
    assert pbo["value"] == pytest.approx((c["pbo"] + d2["pbo"]) / 2) and pbo["folds"]["c"][
        "mean_logit"
    ] == pytest.approx(float(np.mean(c["logits"])))
    d = out["deflated_sharpe"]
    assert d["n_trials"] == 14 and d["n_study_trials"] == 9 and d["n_research_trials"] == 5
    # Sharpes per study: a 1 (its one complete trial), b 3, c 3, d 2: dof 0 + 2 + 2 + 1
    assert d["variance_dof"] == 5


def test_the_trials_variance_is_used_only_from_the_null_floor_up():
    """T = 4 sessions: the floor is 1/4. A pooled variance of 0.5 (above) is the trials'; 0.02
    (below) is raised to the floor; no trials: the floor."""
    excess = np.array([0.01, -0.02, 0.03, 0.0])

    def source(sharpes: list[float]) -> tuple[str, float]:
        # trials whose per-session Sharpes are the given ones: a zero-mean base shifted by s stdevs
        cols = {}
        for k, s in enumerate(sharpes):
            base = np.array([1.0, -1.0, 1.0, -1.0])  # stdev sqrt(4/3), mean 0
            cols[f"trial_{k}"] = base + s * statistics.stdev(base.tolist()) + 1e-4
            cols[f"active_{k}"] = base + s * statistics.stdev(base.tolist())  # V reads these
        frame = pd.DataFrame(cols).assign(cash_return=1e-4)
        d = overfitting_statistics(excess, {"f": frame}, 2, 2, research_trials_count=0)["deflated_sharpe"]
        return d["variance_source"], d["trial_sharpe_variance"]

    # Sharpes s and -s: pooled variance 2 s^2 on 1 dof
    assert source([0.5, -0.5]) == ("trials", pytest.approx(0.5))
    assert source([0.1, -0.1]) == ("null", 0.25)
    d = overfitting_statistics(excess, {}, 0, 2, research_trials_count=0)["deflated_sharpe"]
    assert d["variance_source"] == "null" and d["trial_sharpe_variance"] == 0.25 and d["variance_dof"] == 0
    # exactly at the floor, the trials' own: deviations with mean 0 and sum of squares 7 (stdev
    # 1) over T = 8, shifted by 0.5 and 0: Sharpes 0.5 and 0, pooled variance 0.125 = 1/8
    base = np.array([2.0, -1.0, -1.0, 0.5, -0.5, 0.5, -0.5, 0.0])
    frame = pd.DataFrame({"trial_0": base + 0.5, "active_0": base + 0.5, "trial_1": base, "active_1": base})
    at_floor = overfitting_statistics(base / 100, {"f": frame.assign(cash_return=0.0)}, 2, 2, research_trials_count=0)
    d = at_floor["deflated_sharpe"]
    assert (d["variance_source"], d["trial_sharpe_variance"], d["variance_dof"]) == ("trials", 0.125, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the moments of no return at all
        empty = overfitting_statistics(np.array([]), {}, 0, 2, research_trials_count=0)["deflated_sharpe"]
    assert empty["trial_sharpe_variance"] == 0.0 and empty["dsr"] is None and empty["n_sessions"] == 0


def test_research_ledger_errors_name_the_column_and_the_file_line(tmp_path):
    """The header is line 1, so data row k (0-based) is line k + 2; values are read as text."""
    good = "date,section,variant,outcome\n2026-01-02,8,1.5,kept\n2026-01-03,sizing,2,dropped\n"
    path = tmp_path / "ledger.csv"
    path.write_text(good)
    frame = research_ledger(path)  # a column of numbers stays text
    assert frame["section"].tolist() == ["8", "sizing"] and frame["variant"].tolist() == ["1.5", "2"]
    cases = {
        "date,section,variant\n2026-01-02,8,x\n": r"^column 'outcome': research ledger lacks columns \['outcome'\]$",
        good + "2026-01-04,s, ,kept\n": r"^column 'variant', row 4: research ledger has an empty cell$",
        good + "2026/01/04,s,v,kept\n": r"^column 'date', row 4: research ledger date is not YYYY-MM-DD$",
        # every date in another format (one a parser could guess) is still refused, at the first
        "date,section,variant,outcome\n2026/01/02,s,v,kept\n2026/01/03,s,v,kept\n": r"^column 'date', row 2: research",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(InputDataError, match=message):
            research_ledger(path)


def test_load_trial_returns_reads_the_ledgers_the_studies_recorded(tmp_path):
    """A fold whose summary records a ledger file is read; one without a path, or whose file is
    gone, is left out."""
    frame = pd.DataFrame({"trial_0": [0.01, 0.02], "cash_return": [1e-4, 1e-4]})
    path = tmp_path / "trials_2019.parquet"
    frame.to_parquet(path)
    loaded = load_trial_returns(
        {"2019": {"trial_returns": str(path)}, "2020": {}, "2021": {"trial_returns": str(tmp_path / "gone.parquet")}}
    )
    assert list(loaded) == ["2019"]
    pd.testing.assert_frame_equal(loaded["2019"], frame)
