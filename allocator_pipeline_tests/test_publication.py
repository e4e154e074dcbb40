"""Atomic writes follow the umask; a command's writes are one set (the rollback journal): a failure
puts the previous files back, a killed command's leftovers are undone by the next one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from allocator_pipeline.core.common import journal
from allocator_pipeline.core.common.storage import (
    preserve_in_place,
    publish_directory,
    remove,
    write_parquet,
    write_text,
)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    write_text("old report", root / "step3_out" / "allocator" / "backtest" / "report.html")
    write_parquet(pd.DataFrame({"x": [1.0, 2.0]}), root / "step3_out" / "allocator" / "dataset" / "features.parquet")
    write_text("v1", root / "final output" / "models" / "m1" / "model_card.md")
    (root / "optuna").mkdir()
    (root / "optuna" / "2024.db").write_bytes(b"study v1")
    return root


def test_artifacts_follow_the_umask(tmp_path: Path):
    previous = os.umask(0o022)
    try:
        path = write_text("x", tmp_path / "a" / "file.txt")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o027)
        path = write_text("y", tmp_path / "a" / "file.txt")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(previous)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_command_puts_every_file_back(home: Path):
    before = snapshot(home)
    with pytest.raises(RuntimeError), journal.open_journal(home):
        write_text("new report", home / "step3_out" / "allocator" / "backtest" / "report.html")
        write_parquet(pd.DataFrame({"x": [3.0]}), home / "step3_out" / "allocator" / "dataset" / "features.parquet")
        write_text("new", home / "step3_out" / "allocator" / "models" / "2025" / "ensemble.json")
        remove(home / "final output" / "models" / "m1")
        staging = home / "final output" / "models" / ".m2.staging.tmp"
        write_text("v2", staging / "model_card.md")
        publish_directory(staging, home / "final output" / "models" / "m2")
        (preserve_in_place(home / "optuna" / "2024.db")).write_bytes(b"study v2, changed in place")
        raise RuntimeError("a later stage failed")
    assert snapshot(home) == before
    assert not (home / "step3_out" / "allocator" / "models").exists()  # directories it created are gone
    assert not (home / journal.JOURNAL_DIR).exists()


def test_a_successful_command_keeps_its_writes(home: Path):
    with journal.open_journal(home):
        write_text("new report", home / "step3_out" / "allocator" / "backtest" / "report.html")
        remove(home / "final output" / "models" / "m1")
    assert (home / "step3_out" / "allocator" / "backtest" / "report.html").read_text() == "new report"
    assert not (home / "final output" / "models" / "m1").exists()
    assert not (home / journal.JOURNAL_DIR).exists()


KILLED = """
import os, sys
from pathlib import Path
from allocator_pipeline.core.common import journal
from allocator_pipeline.core.common.storage import write_text
home = Path(sys.argv[1])
with journal.open_journal(home):
    write_text("half-new report", home / "step3_out" / "allocator" / "backtest" / "report.html")
    (home / "step3_out" / "allocator" / "dataset" / ".features.parquet.0123456789ab.tmp").write_bytes(b"x" * 742)
    os._exit(9)  # killed mid-command: no rollback, no cleanup
"""


def test_a_killed_command_is_undone_by_the_next_one(home: Path):
    before = snapshot(home)
    subprocess.run([sys.executable, "-c", KILLED, str(home)], check=False)
    assert (home / journal.JOURNAL_DIR).exists()
    assert list(home.rglob("*.tmp"))
    undone = journal.recover(home)
    assert undone == {"restored": 1, "temporary_files": 1}
    assert snapshot(home) == before


def test_one_command_at_a_time_per_home(home: Path):
    with (
        journal.home_lock(home),
        pytest.raises(journal.HomeBusyError, match="another allocator command"),
        journal.open_journal(home),
    ):
        pass
