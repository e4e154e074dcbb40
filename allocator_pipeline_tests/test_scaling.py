"""Scaling out on Dagster's own machinery, on a real PostgreSQL server (Debian's ``postgresql``).

A throw-away cluster is initialised in a temporary folder and started on 127.0.0.1 (a free port,
its unix socket in the same folder); ``.ci/run`` installs the package as root. Without its server
binaries the tests are skipped, saying so.

* a quick-profile backfill of two folds goes through the Postgres instance's backfill and run queue
  (``allocator backfill --submit --wait``), launched by ``allocator daemon`` through the default run
  launcher; the run records are in PostgreSQL and the artifacts equal the in-process path's;
* a fold's Optuna study runs with two worker processes on PostgreSQL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from allocator_pipeline.core.common.storage import read_parquet

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ALLOCATOR = str(Path(sys.executable).with_name("allocator"))
TOML = """profile = "quick"
[folds]
first_test_year = 2024
required_oos_years = [2024]
[tuning]
enabled = true
n_trials = 2
"""
FOLDS = ["2024", "2025"]


def _server_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on loopback for this module: yields the URL of its ``postgres`` database
    (user ``allocator``, trust authentication on 127.0.0.1 only)."""
    bindir = _server_binaries()
    if bindir is None or not (bindir / "initdb").is_file():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="allocator-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root without a postgres user (or runuser) to start PostgreSQL as")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*as_user, str(bindir / tool), *args], check=True, capture_output=True, timeout=120)

    pg("initdb", "-D", str(data), "-U", "allocator", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    try:
        yield f"postgresql://allocator@127.0.0.1:{port}/postgres"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _database(url: str, name: str) -> str:
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    return url.rsplit("/", 1)[0] + f"/{name}"


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOCATOR_", "DAGSTER_HOME"))}
    return {**env, "DAGSTER_DISABLE_TELEMETRY": "1", **extra}


def allocator(home: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [ALLOCATOR, "--home", str(home), *args], env=env, capture_output=True, text=True, timeout=900, cwd=home
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr + done.stdout


def _home(root: Path, name: str) -> Path:
    home = root / name
    home.mkdir()
    (home / "allocator.toml").write_text(TOML)
    return home


def _comparable(home: Path) -> dict[str, bytes]:
    """Every artifact under step3_out, byte for byte, except what records wall time or the home's
    own path (identical between two in-process runs too): the Optuna study files (trial
    timestamps), the trial ledgers' ``duration_s``, the tuning summary's ``duration_s``, paths and
    ``fit_reuse`` counts (how many inner fits a fold read from the fit store depends on which fold
    ran first)."""
    out: dict[str, bytes] = {}
    for path in sorted((home / "step3_out").rglob("*")):
        rel = str(path.relative_to(home))
        if not path.is_file() or path.suffix in (".db", ".journal"):
            continue
        if path.name == "trials.parquet":
            out[rel] = read_parquet(path).drop(columns="duration_s").to_json().encode()
        elif path.suffix == ".json":
            text = path.read_text().replace(str(home.resolve()), "<home>")
            text = re.sub(r'"fit_reuse": \{[^}]*\}', '"fit_reuse": {}', text)  # which process fitted first
            out[rel] = re.sub(r'"duration_s": [0-9.e-]+', '"duration_s": 0', text).encode()
        else:
            out[rel] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def local(postgres, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A home with the dataset built in-process on its own SQLite instance, and that environment."""
    home = _home(tmp_path_factory.mktemp("local"), "in_process")
    env = _environment(DAGSTER_HOME=str(home / ".dagster"))
    allocator(home, "build-dataset", env=env)
    return home, env


def test_backfill_through_the_daemon_on_postgres_equals_the_in_process_path(postgres, local, tmp_path, monkeypatch):
    url = _database(postgres, "dagster")
    instance_dir = tmp_path / "instance"
    instance_dir.mkdir()
    shutil.copy(REPO / "instances" / "postgres" / "dagster.yaml", instance_dir / "dagster.yaml")
    monkeypatch.setenv("ALLOCATOR_POSTGRES_URL", url.replace("postgresql://", "postgresql+psycopg2://"))
    env = _environment(ALLOCATOR_POSTGRES_URL=url, ALLOCATOR_INSTANCE=str(instance_dir))

    # the in-process path (its own SQLite instance), the reference
    local_home, local_env = local
    allocator(local_home, "backfill", "--folds", ",".join(FOLDS), "--workers", "2", env=local_env)

    # the same folds through the Postgres instance's backfill and run queue, launched by the daemon
    home = _home(tmp_path, "submitted")
    allocator(home, "build-dataset", env=env)  # registers the fold partitions in PostgreSQL
    daemon = subprocess.Popen(
        [ALLOCATOR, "--home", str(home), "daemon"],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "daemon.log", "w"),  # noqa: SIM115 (closed with the process)
        start_new_session=True,
    )
    try:
        instance = dg.DagsterInstance.from_config(str(instance_dir))
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        from allocator_pipeline.defs.submission import daemon_live

        deadline = time.monotonic() + 120
        while not daemon_live(instance) and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(1)
        assert daemon_live(instance), (tmp_path / "daemon.log").read_text()[-3000:]
        output = allocator(home, "backfill", "--folds", ",".join(FOLDS), "--submit", "--wait", env=env)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    assert "2/2" in output and "2025 ok" in output
    backfill_id = re.search(r"backfill (\w+) of fold_job", output).group(1)
    backfill = instance.get_backfill(backfill_id)
    assert backfill is not None and backfill.partition_names == FOLDS
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == FOLDS
    assert {r.job_name for r in runs} == {"fold_job"} and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert all(r.tags.get("allocator/submitted") == "backfill" for r in runs)
    for run in runs:  # queued by the run coordinator, launched by the daemon (starting), then run
        events = [e.dagster_event_type for e in instance.all_logs(run.run_id) if e.is_dagster_event]
        queue = [dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_STARTING, dg.DagsterEventType.RUN_START]
        assert [e for e in events if e in queue] == queue, events
    instance.dispose()

    ours, reference = _comparable(home), _comparable(local_home)
    assert sorted(ours) == sorted(reference)
    assert any(rel.endswith(".txt") or "models" in rel for rel in ours)
    assert [rel for rel in ours if ours[rel] != reference[rel]] == []


def test_two_workers_share_a_fold_study_on_postgres(postgres, local):
    """The study of fold 2025 with ``tuning.workers = 2`` on PostgreSQL: the calling process and a
    spawned worker run trials of one study until together they reach the budget."""
    from allocator_pipeline.core.tuning import inner_fold_frames, run_study
    from allocator_pipeline.settings import load_settings

    url = _database(postgres, "optuna")
    home, _ = local  # its dataset; the study lives in PostgreSQL only
    settings = load_settings(
        home=home,
        environ={},
        # the trial budget ends the study, never the clock (a loaded machine would end it early)
        overrides={"tuning": {"n_trials": 6, "storage": url, "workers": 2, "pruning": False, "timeout_seconds": 3600}},
    )
    dataset = settings.paths.dataset
    frames = inner_fold_frames(
        read_parquet(dataset / "features.parquet"),
        read_parquet(dataset / "labels.parquet"),
        read_parquet(dataset / "fold_plan.parquet"),
        "2025",
    )
    result = run_study(
        "2025",
        frames,
        read_parquet(dataset / "utilities.parquet"),
        read_parquet(dataset / "leg_panel.parquet"),
        settings,
    )
    # the budget is checked, then a trial started, by each worker: both may start the last one, so
    # the study ends at the budget or at most workers - 1 trials past it (study.py, run_trials)
    assert result.storage.startswith("postgresql") and 6 <= result.n_complete <= 7 and result.n_new == result.n_complete
    assert set(result.ledger["mode"]) == {"parallel"} and result.to_dict()["workers"] == 2
    assert set(result.ledger["worker"]) == {0, 1}  # both processes ran trials of the one study


def test_instance_and_submit_options_refuse_bad_input(tmp_path, monkeypatch):
    """Exit 2 with the problem on the last line, before any run: a folder without dagster.yaml,
    the PostgreSQL instance without its database URL, --wait without --submit, parallel tuning
    workers without a shared storage."""
    from click.testing import CliRunner

    from allocator_pipeline import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))  # restored after the test
    monkeypatch.delenv("ALLOCATOR_POSTGRES_URL", raising=False)
    home = _home(tmp_path, "home")
    cases = {
        ("--instance", str(tmp_path), "backfill", "--folds", "2024"): f"no dagster.yaml in {tmp_path}",
        ("--instance", str(REPO / "instances" / "postgres"), "backfill", "--folds", "2024"): (
            "environment variable ALLOCATOR_POSTGRES_URL is not set"
        ),
        ("backfill", "--folds", "2024", "--wait"): "--wait follows a submitted backfill: add --submit",
        ("optimize", "--workers", "0"): "Invalid value for '--workers'",
    }
    for args, message in cases.items():
        result = CliRunner().invoke(cli.main, ["--home", str(home), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output.strip().splitlines()[-1], (args, result.output)
    (home / "allocator.toml").write_text(TOML + "workers = 2\n")
    result = CliRunner().invoke(cli.main, ["--home", str(home), "optimize"])
    assert result.exit_code == 2 and "tuning.workers = 2 needs a shared tuning.storage" in result.output
