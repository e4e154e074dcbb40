"""Benchmark: where the time of the pipeline and of the daily decision goes (by hand, never in tests).

Two parts, both in fresh processes so that what is measured is what a user waits for:

* **pipeline** (default; ``--no-pipeline`` skips it): ``allocator run`` (what ``make run`` runs) in
  a temporary home with its own SQLite Dagster instance. From the instance's event log, for every
  run (the dataset run, one run per fold, the report run): its wall time and its steps, each split
  into reading its inputs (step start to the last input loaded), computing (to its first output:
  the fits of ``fold_models``, the trials of ``fold_tuning``) and writing its outputs (to the last
  output handled); the rest of a run's wall time is Dagster's bookkeeping (run start, events,
  executor). Printed per stage (asset) and per fold with their share of the summed run time, the
  study's trials per fold, the command's wall time and its peak memory (the largest single process
  of the command, workers included: ``ru_maxrss`` from ``os.wait4``). ``--study`` runs the same
  pipeline twice side by side, the nested study on (the default profile) and off
  (``tuning.enabled = false``), and prints the ratio of their wall times. ``--scaling PROFILE``
  runs the pipeline with that profile (``full``) on two workers (folds in parallel), then on one,
  and prints the speed-up and the parallel efficiency (one worker's wall / (2 x two workers')).
  ``--fit-reuse`` runs the
  pipeline with the study on twice instead, inner-fit reuse off (``tuning.fit_reuse = false``) then
  on (the default), prints the ratio of their wall times and the inner fits read from the fit
  store / fitted (per fold: ``fits hits/misses``); ``--keep DIR`` runs the pipelines in ``DIR``
  and keeps their homes (to compare their artifacts).
* **decision** (always): ``allocator rebalance --model M`` on the pipeline's home (or ``--home``),
  ``--repeat`` times: the command's wall time (median) and peak memory; the interpreter's start
  (``python -c pass``); then, in a fresh process running the command's own calls with
  ``time.perf_counter`` around each, the imports, the settings, loading the inputs (read and
  validated), loading the models, the session's features and the decision (``decide``, which
  computes the features again, and for ``folds`` without a log reconstructs the walk-forward path:
  the decision arithmetic); the imports by top-level package (``python -X importtime``), and
  ``rebalance total / decision``. ``--model promoted`` needs a promoted home: it times the command
  that records the daily job's Dagster run.

Run: ``.venv/bin/python scripts/bench_pipeline.py [--study | --fit-reuse | --scaling full] [--keep DIR] [--no-pipeline --home DIR]
[--model folds]``
(figures of a run are in docs/development.md, "Benchmarks"; nothing here is asserted by a test).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ALLOCATOR = str(Path(sys.executable).with_name("allocator"))
HEAVY = ("dagster", "sklearn", "scipy.optimize", "scipy.stats", "optuna", "matplotlib", "catboost", "lightgbm")

PHASES = r"""
import time
t0 = time.perf_counter()
import json, sys
from allocator_pipeline import cli
from allocator_pipeline.core.allocation import DecisionLog, decide, model_schedule
from allocator_pipeline.core.allocation.live import truncate_to_session
from allocator_pipeline.core.features.table import build_features
from allocator_pipeline.core.inputs import check_decision_date, live_inputs
from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.settings import RunOptions
t1 = time.perf_counter()
home, spec, session, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = RunOptions(home=home).load()
t2 = time.perf_counter()
_, legs = live_inputs(settings)
session = session or str(session_dates(legs.index[-1:])[0].date())
check_decision_date(session, legs)
t3 = time.perf_counter()
schedule = model_schedule(settings, spec)
t4 = time.perf_counter()
build_features(truncate_to_session(legs, session), settings.features)
t5 = time.perf_counter()
previous = DecisionLog(settings.paths.decisions).state_before(session, legs.index) if spec == "promoted" else None
decisions = []
for _ in range(repeat):
    start = time.perf_counter()
    decision, _ = decide(schedule, legs, session, settings, previous)
    decisions.append(time.perf_counter() - start)
recorded = {}
if spec == "promoted":  # what the command adds: the Dagster instance and the daily job's run
    s0 = time.perf_counter()
    from allocator_pipeline.defs.allocation import rebalance_run
    from allocator_pipeline.defs.runs import get_instance
    instance = get_instance(settings)
    s1 = time.perf_counter()
    assert rebalance_run(RunOptions(home=home), instance, session).success
    recorded = {"instance": s1 - s0, "run": time.perf_counter() - s1}
heavy = [m for m in sys.argv[5].split(",") if m in sys.modules]
print(json.dumps({"imports": t1 - t0, "settings": t2 - t1, "inputs": t3 - t2, "models": t4 - t3,
                  "features": t5 - t4, "decide": decisions, "mode": decision["mode"], "session": session,
                  "heavy": heavy, **recorded}))
"""


def run_child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str, str]:
    """(wall seconds, peak RSS in MB of the process and its waited-for children, stdout, stderr)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss // 1024, stdout, stderr


def imports_by_package(importtime: str) -> dict[str, float]:
    """Seconds of a ``-X importtime`` trace by top-level package: each module's own (self) time
    summed over the modules of that package, so the figures add up to the whole import time."""
    totals: dict[str, float] = defaultdict(float)
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        totals[name.strip().split(".")[0]] += int(own) / 1e6
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def decision_breakdown(home: Path, model: str, session: str | None, repeat: int, env: dict[str, str]) -> None:
    command = [ALLOCATOR, "--home", str(home), "rebalance", "--model", model, *(["--date", session] if session else [])]
    walls, peaks = [], []
    for _ in range(repeat):
        wall, peak, stdout, _ = run_child(command, env)
        walls.append(wall)
        peaks.append(peak)
    start = statistics.median(run_child([sys.executable, "-c", "pass"], env)[0] for _ in range(repeat))
    child = [sys.executable, "-c", PHASES, str(home), model, session or "", str(repeat), ",".join(HEAVY)]
    phases = json.loads(run_child(child, env)[2])
    traced = run_child(
        [sys.executable, "-X", "importtime", "-c", PHASES, str(home), model, session or "", "1", ""], env
    )
    packages = imports_by_package(traced[3])
    decide = statistics.median(phases["decide"])
    total = statistics.median(walls)
    print(f"\n== daily decision: allocator rebalance --model {model} ({phases['session']}, mode {phases['mode']})")
    print(f"   {stdout.strip()}")
    print(f"rebalance total           {total:6.2f} s  (median of {repeat}: {', '.join(f'{w:.2f}' for w in walls)})")
    print(f"  peak memory             {max(peaks):6d} MB")
    print(f"  interpreter start       {start:6.2f} s  (python -c pass)")
    for name in ("imports", "settings", "inputs", "models", "features"):
        label = {"inputs": "loading inputs", "models": "loading models", "features": "features (one build)"}
        print(f"  {label.get(name, name):<24}{phases[name]:6.2f} s")
    print(
        f"  decision (decide)       {decide:6.2f} s  (median of {repeat}: {', '.join(f'{d:.2f}' for d in phases['decide'])})"
    )
    if "run" in phases:
        print(f"  Dagster instance        {phases['instance']:6.2f} s  (import and open: the run's record)")
        print(f"  Dagster run             {phases['run']:6.2f} s  (daily_allocation: inputs, model, decision again)")
    print(f"  imported heavy modules: {', '.join(phases['heavy']) or 'none'} (of {', '.join(HEAVY)})")
    top = ", ".join(f"{name} {seconds:.2f}" for name, seconds in list(packages.items())[:8])
    print(f"  imports by package (-X importtime, s): {top}; all {sum(packages.values()):.2f}")
    print(f"ratio rebalance total / decision arithmetic: {total / decide:.2f}")


def step_times(events: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Per step key: ``total`` (its STEP_SUCCESS duration), ``read``, ``compute``, ``write`` (seconds)."""
    marks: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    totals: dict[str, float] = {}
    for entry in events:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        marks[event.step_key][event.event_type_value].append(entry.timestamp)
        if event.event_type_value == "STEP_SUCCESS":
            totals[event.step_key] = event.event_specific_data.duration_ms / 1000.0
    out = {}
    for step, total in totals.items():
        m = marks[step]
        begin = min(m["STEP_START"])
        loaded = max(m["LOADED_INPUT"], default=begin)
        produced = min(m["STEP_OUTPUT"], default=loaded)
        handled = max(m["HANDLED_OUTPUT"], default=produced)
        out[step] = {"total": total, "read": loaded - begin, "compute": produced - loaded, "write": handled - produced}
    return out


def pipeline(label: str, root: Path, toml: str, env: dict[str, str], run_args: Sequence[str] = ()) -> float:
    import dagster as dg

    home, dagster_home = root / "home", root / "dagster_home"
    home.mkdir(parents=True)
    dagster_home.mkdir()
    (home / "allocator.toml").write_text(toml)
    env = {**env, "DAGSTER_HOME": str(dagster_home)}
    wall, peak, _, _ = run_child([ALLOCATOR, "--home", str(home), "run", *run_args], env)
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    stages: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    folds: dict[str, float] = defaultdict(float)
    bookkeeping = run_total = 0.0
    for record in instance.get_run_records():
        run = record.dagster_run
        seconds = (record.end_time or record.start_time or 0) - (record.start_time or 0)
        steps = step_times(instance.all_logs(run.run_id))
        run_total += seconds
        bookkeeping += seconds - sum(s["total"] for s in steps.values())
        fold = run.tags.get("dagster/partition")
        if fold is not None:
            folds[fold] += seconds
        for step, parts in steps.items():
            for part, value in parts.items():
                stages[step][part] += value
    print(f"\n== pipeline ({label}): allocator run, wall {wall:.1f} s, peak memory {peak} MB (largest process)")
    print(f"runs recorded: {len(instance.get_run_records())}, their summed wall time {run_total:.1f} s")
    print(f"{'stage':<22}{'total s':>9}{'share':>7}{'read s':>8}{'compute s':>10}{'write s':>8}")
    for step, parts in sorted(stages.items(), key=lambda kv: -kv[1]["total"]):
        share = parts["total"] / run_total
        print(
            f"{step:<22}{parts['total']:9.1f}{share:7.1%}{parts['read']:8.1f}{parts['compute']:10.1f}{parts['write']:8.1f}"
        )
    summed = {part: sum(parts[part] for parts in stages.values()) for part in ("total", "read", "compute", "write")}
    print(
        f"{'all steps':<22}{summed['total']:9.1f}{summed['total'] / run_total:7.1%}{summed['read']:8.1f}"
        f"{summed['compute']:10.1f}{summed['write']:8.1f}  (read {summed['read'] / run_total:.0%}, compute "
        f"{summed['compute'] / run_total:.0%}, write {summed['write'] / run_total:.0%} of the runs' time)"
    )
    print(f"{'Dagster bookkeeping':<22}{bookkeeping:9.1f}{bookkeeping / run_total:7.1%}  (run wall time outside steps)")
    tuning = home / "step3_out" / "allocator" / "optuna"
    print(
        "per fold (run wall s, share, trials complete/pruned): "
        + ", ".join(
            f"{fold} {s:.1f} {s / run_total:.0%} {_trials(tuning / fold / 'tuning.json')}"
            for fold, s in sorted(folds.items())
        )
    )
    return wall


def _trials(path: Path) -> str:
    summary = json.loads(path.read_text()) if path.is_file() else {}
    n = summary.get("n_trials") or {}
    if not summary.get("enabled"):
        return "off"
    fits = summary.get("fit_reuse") or {}
    reuse = f" fits {fits['hits']}/{fits['misses']}" if fits.get("enabled") else f" fitted {fits.get('fitted', '?')}"
    return f"{n.get('complete', 0)}/{n.get('pruned', 0)}{reuse}"


def _fit_counts(home: Path) -> tuple[int, int]:
    """Inner fits read from the fit store and fitted (by the studies' calling processes), summed over
    the home's fold studies."""
    hits = misses = 0
    for path in (home / "step3_out" / "allocator" / "optuna").glob("*/tuning.json"):
        fits = json.loads(path.read_text()).get("fit_reuse") or {}
        hits, misses = hits + fits.get("hits", 0), misses + fits.get("fitted", 0)
    return hits, misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="a home with a finished run (the decision only, with --no-pipeline)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the pipeline run")
    parser.add_argument("--study", action="store_true", help="the pipeline with the study on (the default) and off")
    parser.add_argument(
        "--fit-reuse", action="store_true", help="the pipeline with the study on, inner-fit reuse off and on"
    )
    parser.add_argument(
        "--scaling",
        metavar="PROFILE",
        help="the pipeline with this profile (e.g. full) on two workers, then on one: parallel efficiency",
    )
    parser.add_argument("--keep", type=Path, help="run the pipelines in this directory and keep their homes")
    parser.add_argument("--model", default="folds", help="rebalance --model (folds, fold:KEY, promoted)")
    parser.add_argument("--date", help="rebalance --date (default: the data's last session)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of the decision measures")
    args = parser.parse_args()
    # the measured processes cache bytecode as a user's interpreter does (PYTHONDONTWRITEBYTECODE, set in
    # some shells and CI images, makes every run compile the package's modules again)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "DAGSTER_DISABLE_TELEMETRY": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        tmp = str(args.keep) if args.keep is not None else scratch
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start")
        home = args.home
        if args.fit_reuse and not args.no_pipeline:
            study = 'profile = "default"\n[tuning]\n'
            off = pipeline("study on, fit reuse off", Path(tmp) / "reuse-off", study + "fit_reuse = false\n", env)
            on = pipeline("study on, fit reuse on", Path(tmp) / "reuse-on", study, env)
            home = Path(tmp) / "reuse-on" / "home"
            hits, misses = _fit_counts(home)
            _, fitted = _fit_counts(Path(tmp) / "reuse-off" / "home")
            print(f"\ninner fits: reuse off {fitted} fitted; reuse on {hits} read from the fit store, {misses} fitted")
            print(f"ratio fit reuse on / off (wall): {on / off:.2f}")
        elif args.scaling and not args.no_pipeline:
            profile = f'profile = "{args.scaling}"\n'
            two = pipeline(
                f"profile {args.scaling}, 2 workers", Path(tmp) / "workers-2", profile, env, ["--workers", "2"]
            )
            one = pipeline(
                f"profile {args.scaling}, 1 worker", Path(tmp) / "workers-1", profile, env, ["--workers", "1"]
            )
            home = Path(tmp) / "workers-2" / "home"
            print(f"\nspeed-up 1 worker / 2 workers (wall): {one / two:.2f}; parallel efficiency {one / (2 * two):.0%}")
        elif not args.no_pipeline:
            on = pipeline("default profile (study on)", Path(tmp) / "on", 'profile = "default"\n', env)
            home = Path(tmp) / "on" / "home"
            if args.study:
                off = pipeline("study off", Path(tmp) / "off", 'profile = "default"\n[tuning]\nenabled = false\n', env)
                print(f"\nratio study on / study off (wall): {on / off:.2f}")
        if home is None:
            raise SystemExit("--no-pipeline needs --home DIR (a home with a finished run)")
        env["DAGSTER_HOME"] = str(Path(tmp) / "decision_dagster_home")
        decision_breakdown(home, args.model, args.date, args.repeat, env)


if __name__ == "__main__":
    main()
