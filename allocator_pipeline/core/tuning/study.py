"""Nested walk-forward tuning: one Optuna study per outer fold, on that fold's inner splits only.

The study of fold ``YYYY`` sees the fold's inner walk-forward splits (``core/folds/plan.py``: inner
held-out blocks, each with its own purged train/validation layout, all before the outer test
window and its purge) and the leg panel rows up to the last inner block + H sessions: the outer
test window is never read. Each trial evaluates one parameter set (``core/tuning/space.py``) on
every inner split in order (``core/tuning/objective.py``) and scores it with the robust objective
(``core/tuning/objective.py: OBJECTIVE_FORMULA``); the study maximises it.

Search
    TPE sampler seeded per trial with ``tuning.seed + number of finished trials``, so each
    proposal is a deterministic function of the seed and the finished trials: a study interrupted
    and resumed proposes what the uninterrupted study would have. The run's own parameters are
    enqueued as the first trial (role ``defaults``), so the best trial is never worse than the
    defaults on the inner splits. Median pruning (after the second inner split, once 5 trials are
    complete) when ``tuning.pruning``. Startup (random) trials: ``max(3, min(10, n_trials // 3))``.
Model and cheap trials
    With ``tuning.model_trials`` set (12 in the full profile) and parameters in the space whose
    change refits the members (``space.refits_members``), the first ``model_trials`` trials to
    finish (complete or pruned, the defaults trial included) search every parameter as an unsplit
    study would; every later one keeps the refitting parameters of the best complete one of them
    (the earliest on a tie; Optuna's ``PartialFixedSampler`` over the TPE proposes the others given
    them), so it reuses their fits (from the cache, or from the fit store in another process or
    run). Parallel workers: trials still running when the stage ends finish as model trials, and
    the kept parameters follow the best of them. The ledger's ``stage``: ``models`` / ``cheap``.
Selection
    ``tuning.selection`` (``core/tuning/selection.py``): the defaults trade unless a trial beats
    them on the inner blocks as the allocator must beat the baseline; the result's ``best_*`` are
    the traded trial's, its ``selection`` says why.
Budget
    ``tuning.n_trials`` finished (complete or pruned) trials per fold, in total over all runs, and
    ``tuning.timeout_seconds`` of wall time per call (checked before each trial; the defaults
    trial always runs). Results are reproducible when the trial budget, not the timeout, ends the
    study.
Storage
    ``tuning.storage`` (``core/tuning/storage.py``), study ``allocator-fold-<fold>``. A study stores a
    fingerprint of its problem (settings that change the objective, search space, inner frames, the
    leg panel rows it reads); a stored study with another fingerprint is started afresh in a
    per-fold file and refused in a shared storage.
Fit reuse
    ``tuning.fit_reuse`` (on by default): the members fitted on an inner split are stored in the
    home's fit store (``core/tuning/fit_cache.py``, ``<home>/step3_out/allocator/optuna/fit_cache/``)
    keyed by a fingerprint of the fit's inputs, so a later fold (fold k + 1's inner splits overlap
    fold k's) or run on the same split reads them instead of fitting again; bit for bit the same
    trials. The result's ``fit_reuse`` counts the fits read (``hits``) and fitted (``misses``) by the
    calling process, also logged at INFO and sent to ``progress``.
Workers
    ``tuning.workers`` 1 (sequential): one process proposes and evaluates every trial; the sampler
    seed is ``tuning.seed + finished trials``, so the study is reproducible. ``tuning.workers`` N > 1
    (parallel, a shared storage only): the calling process and N - 1 spawned worker processes run
    trials of the same study until together they reach ``n_trials`` (running trials count); each
    salts its sampler seed with the number of trials it sees and its process id so they do not
    propose the same points. Which trial sees which finished trials depends on timing: parallel
    studies are not reproducible. Other processes or machines may join a shared study the same way.
    The ledger records each trial's ``mode`` (sequential / parallel) and ``worker``.

The study's outcome, :class:`TuningResult`, and its trial ledger are in ``core/tuning/result.py``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.folds.checks import fold_dataset
from allocator_pipeline.core.tuning.fingerprint import problem_fingerprint
from allocator_pipeline.core.tuning.fit_cache import fit_store, reuse_line, reuse_summary
from allocator_pipeline.core.tuning.objective import InnerFitCache, evaluate_params
from allocator_pipeline.core.tuning.result import INNER_BLOCKS, TuningResult, _duration, _result, inner_blocks_attr
from allocator_pipeline.core.tuning.space import default_params, refits_members, resolve_groups, search_space
from allocator_pipeline.core.tuning.storage import study_storage
from allocator_pipeline.settings import Settings, SettingsError

__all__ = ["StudyMismatchError", "evaluate_params", "inner_fold_frames", "model_stage", "run_study", "study_name"]

Progress = Callable[[str], None] | None
log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class StudyMismatchError(ValueError):
    """A stored study was created for another problem (settings, space or data)."""


def study_name(fold: str) -> str:
    """``allocator-fold-<fold>``."""
    return f"allocator-fold-{fold}"


def inner_fold_frames(
    features: pd.DataFrame, labels: pd.DataFrame, plan: pd.DataFrame, fold: str
) -> list[pd.DataFrame]:
    """The fold's inner split frames (``fold_dataset(..., inner=k)``, k = 0, 1, ...), in order."""
    rows = plan[(plan["fold"].astype(str) == str(fold)) & (plan["inner"] >= 0)]
    if rows.empty:
        raise ValueError(f"fold {fold!r} has no inner splits in the plan")
    return [fold_dataset(features, labels, plan, str(fold), int(k)) for k in sorted(rows["inner"])]


def _open_study(
    fold: str,
    storage: BaseStorage,
    described: str,
    shared: bool,
    settings: Settings,
    fingerprint: str,
    progress: Progress,
) -> optuna.Study:
    name = study_name(fold)

    def create() -> optuna.Study:
        return optuna.create_study(
            storage=storage,
            sampler=optuna.samplers.TPESampler(seed=settings.tuning.seed),
            pruner=_pruner(settings),
            study_name=name,
            direction="maximize",
            load_if_exists=True,
        )

    study = create()
    stored = study.user_attrs.get("fingerprint")
    if study.trials and stored != fingerprint:
        if shared:
            raise StudyMismatchError(
                f"study {name!r} in {described} was created for another problem (settings, search space or "
                f"data differ); delete it or point tuning.storage elsewhere"
            )
        _say(progress, f"fold {fold}: stored study was made for other settings or data; starting afresh")
        optuna.delete_study(study_name=name, storage=storage)
        study = create()
    study.set_user_attr("fingerprint", fingerprint)
    study.set_user_attr("fold", str(fold))
    if not shared:  # one process per fold file: a RUNNING trial is a leftover of a killed run
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(trial.number, state=TrialState.FAIL)
    return study


def _pruner(settings: Settings) -> optuna.pruners.BasePruner:
    if settings.tuning.pruning:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def _say(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


def _enqueue_defaults(study: optuna.Study, defaults: dict[str, Any]) -> None:
    trials = study.get_trials(deepcopy=False)
    done = any(t.user_attrs.get("role") == "defaults" and t.state in FINISHED for t in trials)
    waiting = any(
        t.state in (TrialState.WAITING, TrialState.RUNNING) and t.user_attrs.get("role") == "defaults" for t in trials
    )
    if not done and not waiting:
        study.enqueue_trial(defaults, user_attrs={"role": "defaults"})


def _sampler(settings: Settings, finished: int, total: int, parallel: bool) -> optuna.samplers.TPESampler:
    n_trials = settings.tuning.n_trials
    seed = settings.tuning.seed + (total + os.getpid() if parallel else finished)
    return optuna.samplers.TPESampler(seed=seed % (2**32), n_startup_trials=max(3, min(10, n_trials // 3)))


def model_stage(
    trials: Sequence[FrozenTrial], space: Mapping[str, BaseDistribution], settings: Settings
) -> tuple[str | None, dict[str, Any] | None]:
    """The next trial's stage and the model and label parameters it keeps (module docstring, "Model
    and cheap trials"): ``(None, None)`` when the study is not split, ``("models", None)`` while the
    model stage goes on (also while none of its trials completed), else ``("cheap", params)``."""
    names = [name for name in space if refits_members(name)]
    n_model = settings.tuning.model_trials
    if n_model is None or not names:
        return None, None
    staged = [t for t in trials if t.state in FINISHED and t.user_attrs.get("stage") != "cheap"]
    complete = [t for t in staged if t.state == TrialState.COMPLETE]
    if not complete or len(staged) < n_model:
        return "models", None
    best = max(complete, key=lambda t: (cast(float, t.value), -t.number))
    return "cheap", {name: best.params[name] for name in names}


def _run_trial(
    study: optuna.Study,
    space: dict[str, BaseDistribution],
    inner_frames: Sequence[pd.DataFrame],
    utilities: pd.DataFrame,
    context: pd.DataFrame,
    settings: Settings,
    cache: InnerFitCache,
    worker: int,
    stage: str | None = None,
) -> FrozenTrial:
    trial = study.ask(space)
    defaults = trial.user_attrs.get("role") == "defaults"
    if stage is not None:
        trial.set_user_attr("stage", stage)
    trial.set_user_attr("mode", "parallel" if settings.tuning.workers > 1 else "sequential")
    trial.set_user_attr("worker", worker)
    try:
        out = evaluate_params(trial.params, inner_frames, utilities, context, settings, trial=trial, cache=cache)
    except optuna.TrialPruned:
        return study.tell(trial, state=TrialState.PRUNED)
    except (InputDataError, SettingsError) as exc:
        if defaults:  # the run's own settings must work: a real error
            study.tell(trial, state=TrialState.FAIL)
            raise
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
        return study.tell(trial, state=TrialState.FAIL)
    except BaseException:  # interrupted (KeyboardInterrupt) or a bug: record, then propagate
        study.tell(trial, state=TrialState.FAIL)
        raise
    trial.set_user_attr("inner_metrics", out["inner"])
    trial.set_user_attr("inner_returns", [block["ret"].tolist() for block in out["returns"]])
    trial.set_user_attr("inner_active", [block["active"].tolist() for block in out["returns"]])
    if len(study.user_attrs.get(INNER_BLOCKS, [])) < len(out["returns"]):
        study.set_user_attr(INNER_BLOCKS, inner_blocks_attr(out["returns"]))
    trial.set_user_attr("terms", out["terms"])
    value = out["objective"]
    if not np.isfinite(value):
        trial.set_user_attr("error", f"non-finite objective {value}")
        return study.tell(trial, state=TrialState.FAIL)
    return study.tell(trial, value)


def run_study(
    fold: str,
    inner_frames: Sequence[pd.DataFrame],
    utilities: pd.DataFrame,
    context: pd.DataFrame,
    settings: Settings,
    progress: Progress = None,
    groups: Sequence[str] | None = None,
    space: Mapping[str, BaseDistribution] | None = None,
) -> TuningResult:
    """Run (or resume) the fold's Optuna study and return its result.

    Parameters
    ----------
    fold : str
        The outer fold key (test year, e.g. ``"2015"``).
    inner_frames : sequence of DataFrame
        The fold's inner split frames, in order (:func:`inner_fold_frames`).
    utilities : DataFrame
        The run's utility table (``UTILITY_COLUMNS`` by decision_ts).
    context : DataFrame
        The leg panel by decision_ts (returns, cash, drift; read up to the last inner row + H).
    settings : Settings
        The run's settings; ``settings.tuning`` holds budget, seed, pruning, storage, objective.
    progress : callable, optional
        Receives one line per trial (Optuna's own per-trial logging is silenced).
    groups : sequence of str, optional
        Search groups (``core/tuning_space.GROUPS``); None: the profile's.
    space : mapping, optional
        An explicit name -> distribution space (overrides ``groups``).

    Returns
    -------
    TuningResult

    Raises
    ------
    StudyMismatchError
        A shared storage holds this study for another problem.
    RuntimeError
        No trial completed.
    """
    optuna.logging.set_verbosity(logging.WARNING)
    if not inner_frames:
        raise ValueError(f"fold {fold}: no inner splits to tune on")
    started, wall_start = time.monotonic(), time.time()
    chosen = tuple(resolve_groups(settings, groups)) if space is None else ("custom",)
    space = dict(space) if space is not None else search_space(settings, groups)
    fingerprint = problem_fingerprint(inner_frames, utilities, context, settings, space)
    storage, described, shared = study_storage(str(fold), settings)
    try:
        study = _open_study(str(fold), storage, described, shared, settings, fingerprint, progress)
        _enqueue_defaults(study, default_params(settings, space))
        before = _started_trials(study)
        problem = (str(fold), list(inner_frames), utilities, context, settings, space, wall_start)
        cache = InnerFitCache(store=fit_store(settings))
        with _helpers(problem, settings.tuning.workers - 1):
            _trial_loop(study, *problem[1:], worker=0, progress=progress, cache=cache)
        n_new = _started_trials(study) - before  # by every worker of this call
        result = _result(str(fold), study, described, chosen, space, n_new, time.monotonic() - started, settings)
        result.workers = settings.tuning.workers
        result.fit_reuse = reuse_summary(cache.store, cache.fitted)
        _say(progress, f"fold {fold}: inner fits {reuse_line(result.fit_reuse)}")
        log.info("fold %s: inner fits %s", fold, reuse_line(result.fit_reuse))
        return result
    finally:
        if isinstance(storage, RDBStorage):  # release the database file / connections
            storage.engine.dispose()


def _started_trials(study: optuna.Study) -> int:
    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))


def _trial_loop(
    study: optuna.Study,
    inner_frames: Sequence[pd.DataFrame],
    utilities: pd.DataFrame,
    context: pd.DataFrame,
    settings: Settings,
    space: dict[str, BaseDistribution],
    started: float,
    worker: int,
    progress: Progress = None,
    cache: InnerFitCache | None = None,
) -> None:
    """Run trials of the study until the budget (counted over all workers) or the timeout (wall
    time since ``started``, a ``time.time()``) is spent. Parallel workers check the count, then
    start a trial: two may start the last one, so a shared study can end up to ``workers - 1``
    trials past the budget. ``cache``: the inner fits reused across trials (None: a new one, with
    the run's fit store unless ``tuning.fit_reuse`` is off)."""
    fold = study.user_attrs.get("fold", "?")
    parallel = settings.tuning.workers > 1
    cache = cache if cache is not None else InnerFitCache(store=fit_store(settings))
    budget, timeout = settings.tuning.n_trials, settings.tuning.timeout_seconds
    while True:
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in FINISHED for t in trials)
        taken = finished + sum(t.state == TrialState.RUNNING for t in trials) * parallel
        any_complete = any(t.state == TrialState.COMPLETE for t in trials)
        if taken >= budget or (any_complete and time.time() - started >= timeout):
            return
        study.sampler = _sampler(settings, finished, len(trials), parallel)
        stage, kept = model_stage(trials, space, settings)
        if kept is not None:  # the sampler proposes the other parameters given these
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.sampler = optuna.samplers.PartialFixedSampler(kept, study.sampler)
        frozen = _run_trial(study, space, inner_frames, utilities, context, settings, cache, worker, stage)
        value = "-" if frozen.value is None else f"{frozen.value:.4f}"
        best = f"{study.best_value:.4f}" if any_complete or frozen.state == TrialState.COMPLETE else "-"
        _say(
            progress,
            f"fold {fold}: trial {frozen.number} ({finished + 1}/{budget}) {frozen.state.name}, "
            f"objective {value}, best {best} ({_duration(frozen) or 0.0:.1f} s)",
        )


def _helper_main(problem: tuple, worker: int, ready: Any) -> None:
    """A spawned worker process: load the fold's study from the shared storage and run trials."""
    optuna.logging.set_verbosity(logging.WARNING)
    fold, inner_frames, utilities, context, settings, space, started = problem
    storage, _, _ = study_storage(fold, settings)
    try:
        study = optuna.load_study(study_name=study_name(fold), storage=storage, pruner=_pruner(settings))
        ready.set()
        _trial_loop(study, inner_frames, utilities, context, settings, space, started, worker)
    finally:
        if isinstance(storage, RDBStorage):
            storage.engine.dispose()


@contextmanager
def _helpers(problem: tuple, n: int) -> Iterator[None]:
    """Run ``n`` spawned worker processes on the study while the block runs; a worker that failed
    fails the study (its traceback is on stderr)."""
    ctx = multiprocessing.get_context("spawn")  # not fork: the parent holds connections and threads
    ready = [ctx.Event() for _ in range(n)]
    workers = [ctx.Process(target=_helper_main, args=(problem, k, ready[k - 1]), daemon=True) for k in range(1, n + 1)]
    for process in workers:
        process.start()
    try:  # all start trials together (a worker that died before is reported below)
        while not all(event.is_set() or not p.is_alive() for event, p in zip(ready, workers)):
            time.sleep(0.1)
        yield
    except BaseException:
        for process in workers:
            process.terminate()
        raise
    finally:
        for process in workers:
            process.join()
    failed = [f"worker {k} (exit code {p.exitcode})" for k, p in enumerate(workers, 1) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"fold {problem[0]}: tuning {', '.join(failed)} failed; see its traceback above")
