"""The ``allocator`` command: a thin layer over the Dagster definitions.

``context`` declares the group and its global options, ``pipeline`` the pipeline commands,
``submitted`` their ``--submit`` path through the instance's queue and ``daemon``, ``live`` rebalance
and replay, ``history`` the recorded runs, ``comparison`` two runs side by side. The seed plan's script names are aliases of four commands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from allocator_pipeline.cli.comparison import compare
from allocator_pipeline.cli.context import GLOBAL_OPTIONS, main
from allocator_pipeline.cli.history import runs
from allocator_pipeline.cli.instruments import synth_step3
from allocator_pipeline.cli.live import rebalance, replay
from allocator_pipeline.cli.pipeline import backfill, backtest, build_dataset, optimize, run, train, ui
from allocator_pipeline.cli.submitted import daemon

GLOBAL_FLAGS = {option["flag"] for option in GLOBAL_OPTIONS.values()}


def _alias(command: click.Command) -> Callable[[], None]:
    """A console script that runs ``allocator <command>``; global options may appear anywhere."""

    def entry() -> None:
        argv, leading, rest = sys.argv[1:], [], []
        i = 0
        while i < len(argv):
            token = argv[i]
            name = token.split("=", 1)[0]
            if name in GLOBAL_FLAGS:
                leading.append(token)
                if "=" not in token and i + 1 < len(argv):
                    leading.append(argv[i + 1])
                    i += 1
            else:
                rest.append(token)
            i += 1
        main.main(args=[*leading, str(command.name), *rest], prog_name=Path(sys.argv[0]).name)

    return entry


build_dataset_alias = _alias(build_dataset)
train_alias = _alias(train)
optimize_alias = _alias(optimize)
backtest_alias = _alias(backtest)


__all__ = [
    "backfill",
    "backtest",
    "backtest_alias",
    "build_dataset",
    "build_dataset_alias",
    "compare",
    "daemon",
    "main",
    "optimize",
    "optimize_alias",
    "rebalance",
    "replay",
    "run",
    "runs",
    "synth_step3",
    "train",
    "train_alias",
    "ui",
]
