"""``--submit``'s submissions through Dagster's public interfaces, on a throw-away SQLite instance
with the queued run coordinator and no daemon (so nothing is launched):

* a fold backfill is stored for the daemon (``REQUESTED``) with its folds, tags and the settings in
  its run config; a run is queued with its tags and config;
* what Dagster refuses (unknown folds, an unknown job) fails with Dagster's own message; a job
  without partitions, or an unknown backfill, is refused before any command;
* the commands open the caller's instance: its folder is found from its artifact folder, also when
  its ``dagster.yaml`` moves them (the repository's own).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from allocator_pipeline.defs.partitions import FOLD_PARTITIONS_NAME
from allocator_pipeline.defs.submission import (
    SUBMITTED_TAG,
    DagsterAPIError,
    daemon_live,
    dagster_home,
    follow_backfill,
    submit_backfill,
    submit_run,
)
from allocator_pipeline.settings import RunOptions

pytestmark = pytest.mark.slow

INSTANCE = """run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""


def test_submissions_are_stored_for_the_daemon_and_refusals_name_the_problem(tmp_path: Path):
    folder = tmp_path / "instance"
    folder.mkdir()
    (folder / "dagster.yaml").write_text(INSTANCE)
    home = tmp_path / "home"
    home.mkdir()
    options = RunOptions(home=str(home))
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        assert dagster_home(instance) == folder.resolve()
        assert not daemon_live(instance)
        instance.add_dynamic_partitions(FOLD_PARTITIONS_NAME, ["2024", "2025"])

        backfill_id = submit_backfill("fold_job", ["2024", "2025"], options, instance, tags={SUBMITTED_TAG: "backfill"})
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None and backfill.status.value == "REQUESTED"
        assert backfill.partition_names == ["2024", "2025"] and backfill.tags == {SUBMITTED_TAG: "backfill"}
        assert backfill.run_config["resources"]["settings"]["config"]["home"] == str(home.resolve())

        run_id = submit_run("dataset_job", options, instance, tags={SUBMITTED_TAG: "run"})
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.job_name == "dataset_job" and run.status == dg.DagsterRunStatus.QUEUED
        assert run.tags[SUBMITTED_TAG] == "run" and run.run_config["resources"]["settings"]["config"]["home"]

        with pytest.raises(DagsterAPIError, match=r"PartitionKeysNotFoundError.*1999"):
            submit_backfill("fold_job", ["1999"], options, instance)
        with pytest.raises(DagsterAPIError, match=r'Job "no_such_job" not found'):
            submit_run("no_such_job", options, instance)
        with pytest.raises(ValueError, match="job 'dataset_job' is not partitioned in allocator_pipeline"):
            submit_backfill("dataset_job", ["2024"], options, instance)
        with pytest.raises(ValueError, match="backfill nosuchid is not in the instance"):
            follow_backfill(instance, "nosuchid")


def test_dagster_home_is_the_folder_of_the_instance_file_even_when_it_moves_the_artifacts(tmp_path, monkeypatch):
    """The repository's layout: ``dagster.yaml`` puts the artifacts in ``.dagster_home/artifacts``
    (relative to the working folder), where another, minimal instance file may lie a level up."""
    (tmp_path / "dagster.yaml").write_text(
        INSTANCE + "local_artifact_storage:\n  module: dagster._core.storage.root\n  class: LocalArtifactStorage\n"
        "  config:\n    base_dir: .dagster_home/artifacts\n"
    )
    (tmp_path / ".dagster_home").mkdir()
    (tmp_path / ".dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.chdir(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert Path(instance.root_directory).resolve() == (tmp_path / ".dagster_home" / "artifacts").resolve()
        assert dagster_home(instance) == tmp_path.resolve()
    with dg.DagsterInstance.from_config(str(tmp_path / ".dagster_home")) as instance:
        assert dagster_home(instance) == (tmp_path / ".dagster_home").resolve()
