"""The `allocator` command: option handling, fold selection, the seed plan's script aliases."""

from __future__ import annotations

import sys

import click
import pytest
from click.testing import CliRunner

from allocator_pipeline import cli
from allocator_pipeline.defs.execution import select_folds

FOLDS = [str(y) for y in range(2008, 2026)]


def test_fold_selection_forms():
    assert select_folds(None, FOLDS) == FOLDS
    assert select_folds("2008,2010", FOLDS) == ["2008", "2010"]
    assert select_folds("2020..2022", FOLDS) == ["2020", "2021", "2022"]
    assert select_folds("2024..2030,2008", FOLDS) == ["2008", "2024", "2025"]
    with pytest.raises(ValueError, match=r"unknown fold\(s\) \['1999'\]"):
        select_folds("1999", FOLDS)
    with pytest.raises(ValueError, match="build-dataset"):
        select_folds(None, [])


def test_invalid_settings_are_refused_before_any_work(tmp_path):
    (tmp_path / "allocator.toml").write_text("[policy]\nalpha = 1.5\n")
    result = CliRunner().invoke(cli.main, ["--home", str(tmp_path), "build-dataset"])
    assert result.exit_code == 2
    assert "policy.alpha = 1.5" in result.output
    assert not (tmp_path / "step3_out").exists()


def test_every_command_is_documented():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "build-dataset", "train", "optimize", "backtest", "rebalance", "replay", "backfill", "ui"):
        assert command in result.output


@pytest.mark.parametrize(
    ("alias", "command_help"),
    [
        (cli.build_dataset_alias, "Prices, Step 3 legs"),
        (cli.train_alias, "Per-fold datasets"),
        (cli.optimize_alias, "Nested walk-forward tuning"),
        (cli.backtest_alias, "The continuous walk-forward allocator path"),
    ],
)
def test_seed_plan_script_names_are_aliases(alias, command_help, monkeypatch, capsys, tmp_path):
    # global options may come anywhere in an alias's arguments
    monkeypatch.setattr(sys, "argv", ["step3b_alias", "--help", "--profile", "quick", "--home", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        alias()
    assert exit_.value.code == 0
    assert command_help in capsys.readouterr().out


def test_fold_progress_names_every_failed_fold_and_its_run():
    from allocator_pipeline.cli.context import fold_progress

    with fold_progress(["2023", "2024"], "folds", "; see the runs") as done:  # all ok: no error
        done("2024", True, "run-b")
        done("2023", True, "run-a")
    failing = fold_progress(["2023", "2024", "2025"], "folds", "; see the runs")
    with pytest.raises(click.ClickException) as info, failing as done:
        done("2025", False, "run-c")
        done("2023", True, "run-a")
        done("2024", False, "run-b")
    assert info.value.message == "folds failed for fold(s): 2024 (run run-b), 2025 (run run-c); see the runs"
