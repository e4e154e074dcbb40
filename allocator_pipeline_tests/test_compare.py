"""`allocator compare A B`: two homes run on two Step 3 directories (the reference engine's passive
legs, and a planted signal written from them by `synth-step3`), compared on their common sessions.

The two runs (quick profile, folds 2024..2025, about 35 s each) are recorded in one persistent
instance, so a run of the history can stand for its home. The comparison's figures are checked
against the runs' own: the point estimates against the differences of the two metrics.json
(both runs hold the same sessions) and against the returns of the two oos_daily files, computed
here by hand; the allocator's difference against the verdict's own bootstrap.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from allocator_pipeline import cli
from allocator_pipeline.core.common.storage import read_json
from allocator_pipeline.core.evaluation import paired_bootstrap
from allocator_pipeline.defs.execution import INSTANCE_FILE
from allocator_pipeline.settings import BootstrapSettings
from allocator_pipeline_tests.support.homes import QUICK_PASSIVE_TOML

pytestmark = pytest.mark.slow

BACKTEST = Path("step3_out/allocator/backtest")
PLANTED_TOML = QUICK_PASSIVE_TOML.replace('blocks = ["returns"', 'blocks = ["confidence", "returns"')


def invoke(instance: Path, *args: str):
    env = {"DAGSTER_HOME": str(instance), "ALLOCATOR_HOME": "", "ALLOCATOR_PRICES": ""}
    env |= {"ALLOCATOR_STEP3": "", "ALLOCATOR_PROFILE": "", "ALLOCATOR_CONFIG": ""}
    return CliRunner().invoke(cli.main, ["--instance", str(instance), *args], env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def homes(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Home A on the reference engine's passive legs, home B on a planted signal (IC 0.3) over the
    same legs with the confidence features on; both run in full, in one instance."""
    root = tmp_path_factory.mktemp("compare")
    instance = root / "instance"
    instance.mkdir()
    (instance / "dagster.yaml").write_text(INSTANCE_FILE)
    a, b = root / "a", root / "b"
    for home, toml in ((a, QUICK_PASSIVE_TOML), (b, PLANTED_TOML)):
        home.mkdir()
        (home / "allocator.toml").write_text(toml)
    with pytest.MonkeyPatch.context() as mp:  # the CLI points DAGSTER_HOME at its instance
        mp.setenv("DAGSTER_HOME", str(instance))
        mp.chdir(root)  # homes named as a user does, relative to the working directory
        result = invoke(instance, "--home", "a", "run")
        assert result.exit_code == 0, result.output
        args = ("synth-step3", "step3_planted", "--ic", "0.3", "--source", "a/step3_out")
        result = invoke(instance, "--home", "b", *args)
        assert result.exit_code == 0, result.output
        result = invoke(instance, "--home", "b", "--step3", "step3_planted", "run")
        assert result.exit_code == 0, result.output
    return a, b, instance


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def avg_monthly_pnl(returns: pd.Series, realized_ts: pd.Series) -> float:
    """Mean of calendar-month (New York) compounded returns, by hand."""
    months = pd.DatetimeIndex(realized_ts).tz_convert("America/New_York").strftime("%Y-%m")
    return float(((1.0 + pd.Series(returns.to_numpy(), index=months)).groupby(level=0).prod() - 1.0).mean())


def test_compare_two_homes_checks_against_the_runs_own_figures(homes, tmp_path, monkeypatch):
    a, b, instance = homes
    monkeypatch.setenv("DAGSTER_HOME", str(instance))
    out = tmp_path / "out"
    result = invoke(instance, "--home", str(tmp_path), "compare", str(a), str(b), "--out", str(out))
    assert result.exit_code == 0, result.output
    comparison = read_json(out / "comparison.json")
    oos_a, oos_b = (
        pd.read_parquet(a / BACKTEST / "oos_daily.parquet"),
        pd.read_parquet(b / BACKTEST / "oos_daily.parquet"),
    )
    common = oos_a.index.intersection(oos_b.index)
    assert comparison["common"]["n_sessions"] == len(common) == len(oos_a) == len(oos_b) > 252
    assert f"Common out-of-sample sessions: {len(common)} " in result.output

    # the point estimates are the differences of the runs' own figures (metrics.json: same sessions)
    metrics_a, metrics_b = read_json(a / BACKTEST / "metrics.json"), read_json(b / BACKTEST / "metrics.json")
    diff = comparison["differences"]
    for strategy in ("allocator", "baseline"):
        own_a, own_b = metrics_a["strategies"][strategy], metrics_b["strategies"][strategy]
        for figure in ("avg_monthly_pnl", "calmar"):
            assert diff[strategy][figure]["point"] == pytest.approx(own_b[figure] - own_a[figure], abs=1e-12)
    # ... and of the two oos_daily files, by hand
    ra, rb, ts = oos_a.loc[common], oos_b.loc[common], oos_b.loc[common, "realized_ts"]
    assert diff["allocator"]["mean_daily"] == pytest.approx(
        (rb["ret_allocator"] - ra["ret_allocator"]).mean(), abs=1e-15
    )
    increment = {
        run: avg_monthly_pnl(r["ret_allocator"], ts) - avg_monthly_pnl(r["ret_envelope_only"], ts)
        for run, r in (("a", ra), ("b", rb))
    }
    assert diff["model_increment"]["avg_monthly_pnl"]["point"] == pytest.approx(
        increment["b"] - increment["a"], abs=1e-12
    )
    assert diff["allocator"]["avg_monthly_pnl"]["point"] == pytest.approx(
        avg_monthly_pnl(rb["ret_allocator"], ts) - avg_monthly_pnl(ra["ret_allocator"], ts), abs=1e-12
    )
    # the interval is the verdict's own bootstrap (B's recorded settings) of B minus A
    settings = BootstrapSettings.model_validate(metrics_b["settings"]["bootstrap"])
    boot = paired_bootstrap(rb["ret_allocator"], ra["ret_allocator"], ts, settings)
    for figure in ("calmar", "avg_monthly_pnl"):
        assert diff["allocator"][figure] == {k: boot[figure][k] for k in ("point", "lower", "upper", "share_positive")}
    assert comparison["bootstrap"]["block_length"] == settings.block_length
    # the same legs: the baseline is the same in both runs; the planted engine differs in what B reads
    assert diff["baseline"]["outcome"] == "same" and diff["baseline"]["mean_daily"] == 0.0
    assert diff["allocator"]["outcome"] in ("A", "B", "neither")
    differs = comparison["what_differs"]
    assert [c["key"] for c in differs["settings"]] == ["features.blocks"]
    assert "fingerprint" in [c["key"] for c in differs["step3"]] and differs["data_range"] == []
    for key, metrics in (("a", metrics_a), ("b", metrics_b)):
        assert comparison["runs"][key]["verdict"] == ("ACCEPTED" if metrics["accepted"] else "REJECTED")
        headline = comparison["runs"][key]["headline"]["allocator"]
        assert headline["cagr"] == pytest.approx(metrics["strategies"]["allocator"]["cagr"], abs=1e-12)
    page = (out / "compare.html").read_text()
    assert "Two allocator runs compared" in page and 'id="differences"' in page
    assert result.output.strip().splitlines()[-2] == f"Page: {out / 'compare.html'}"

    # deterministic, and a run of the history (`allocator runs`) stands for its home, from any
    # working directory (the history records the home's absolute path)
    history = invoke(instance, "--home", str(tmp_path), "runs")
    listed = history.output.splitlines()
    assert any(line.endswith(f"home {a}") for line in listed) and any(line.endswith(f"home {b}") for line in listed)
    run_a = next(
        line.split(" run ")[1].split()[0] for line in history.output.splitlines() if line.endswith(f"home {a}")
    )
    again = tmp_path / "again"
    result = invoke(instance, "--home", str(tmp_path), "compare", run_a, str(b), "--out", str(again))
    assert result.exit_code == 0, result.output
    assert (again / "compare.html").read_bytes() == page.encode()  # the same run, the same page
    assert read_json(again / "comparison.json")["differences"] == diff


def test_too_few_common_sessions_are_refused_and_nothing_is_written(homes, tmp_path, monkeypatch):
    a, b, instance = homes
    monkeypatch.setenv("DAGSTER_HOME", str(instance))
    short = tmp_path / "short"
    shutil.copytree(a / "step3_out", short / "step3_out")
    oos = pd.read_parquet(short / BACKTEST / "oos_daily.parquet")
    oos.tail(100).to_parquet(short / BACKTEST / "oos_daily.parquet")
    before = {home: digest(home) for home in (short, b)}
    out = tmp_path / "out"
    result = invoke(instance, "--home", str(tmp_path), "compare", str(short), str(b), "--out", str(out))
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert "share 100 out-of-sample sessions" in last and "needs at least 252" in last, last
    assert not out.exists()
    assert {home: digest(home) for home in (short, b)} == before

    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(instance, "--home", str(tmp_path), "compare", str(empty), str(b), "--out", str(out))
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert f"file {empty / BACKTEST / 'metrics.json'}" in last and "has no completed run" in last, last
    path = short / BACKTEST / "oos_daily.parquet"
    path.write_bytes(path.read_bytes()[:300])  # a truncated artifact
    result = invoke(instance, "--home", str(tmp_path), "compare", str(short), str(b), "--out", str(out))
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert f"file {path}: cannot read it" in last and "Parquet magic bytes not found" in last, last
    assert f"`allocator --home {short} run`" in last
    result = invoke(instance, "--home", str(tmp_path), "compare", "no-such-run", str(b), "--out", str(out))
    assert result.exit_code == 2 and "neither a home folder nor a run recorded" in result.output
    assert not out.exists() and not list(empty.iterdir())
