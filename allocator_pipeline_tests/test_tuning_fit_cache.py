"""Inner-split fits reused across folds and runs (``core/tuning/fit_cache.py``): exact, never stale,
atomic, and a study with reuse gives the trials a study without it gives."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.journal import stale_temporary_files
from allocator_pipeline.core.tuning.fit_cache import FIT_CACHE_DIR, FitStore, MemberOutputs, fit_key, member_outputs
from allocator_pipeline.core.tuning.study import run_study
from allocator_pipeline.settings import Settings
from allocator_pipeline_tests.test_tuning import FOLD, build, make_settings, synthetic_panel

MODELS = {
    "members": ["linear", "lightgbm"],
    "linear": {"max_iter": 60},
    "lightgbm": {"num_boost_round": 20, "early_stopping_rounds": 5},
    "feature_screen": "none",
    "sample_weight": "utility_gap",
}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """(settings, inner split frame, utility table, the panel, every inner frame) of a small problem."""
    settings = make_settings(tmp_path_factory.mktemp("home"), models=MODELS)
    panel = synthetic_panel()
    _features, _labels, utilities, _plan, frames = build(panel, settings)
    return settings, frames[0], utilities, panel, frames


def assert_same_outputs(a: MemberOutputs, b: MemberOutputs) -> None:
    """Bit for bit: the same members in the same order, equal float arrays, the same index."""
    assert list(a.val) == list(b.val) and list(a.test) == list(b.test)
    for name in a.val:
        assert a.val[name].dtype == b.val[name].dtype == np.float64
        assert np.array_equal(a.val[name], b.val[name]) and np.array_equal(a.test[name], b.test[name])
    assert a.y_val.dtype == b.y_val.dtype and np.array_equal(a.y_val, b.y_val)
    assert a.test_out_of_range.dtype == b.test_out_of_range.dtype == np.bool_
    assert np.array_equal(a.test_out_of_range, b.test_out_of_range)
    pd.testing.assert_index_equal(a.test_index, b.test_index, exact=True)


def test_a_stored_fit_equals_a_fresh_one_bit_for_bit(split, tmp_path):
    settings, frame, utilities, _, _ = split
    store = FitStore(tmp_path / FIT_CACHE_DIR)
    first = store.outputs(frame, settings, utilities)
    assert store.counts() == {"hits": 0, "misses": 1}
    entries = list((tmp_path / FIT_CACHE_DIR).iterdir())
    assert [p.name for p in entries] == [f"{fit_key(frame, settings, utilities)}.npz"]  # no temporary file left
    again = FitStore(tmp_path / FIT_CACHE_DIR)  # another process, a later fold or run
    reused = again.outputs(frame.copy(), settings, utilities.copy())
    assert again.counts() == {"hits": 1, "misses": 0}
    fresh = member_outputs(frame, settings, utilities)
    assert_same_outputs(reused, fresh)
    assert_same_outputs(first, fresh)
    # the same fit, the same bytes (no timestamps inside the archive)
    assert FitStore(tmp_path / "other").save(entries[0].stem, fresh).read_bytes() == entries[0].read_bytes()
    with np.load(entries[0], allow_pickle=False) as data:  # plain arrays, no pickled object
        assert all(data[name].dtype != object for name in data.files)


def _changed(frame: pd.DataFrame, split: str, column: str, delta: float) -> pd.DataFrame:
    out = frame.copy()
    row = out.index[out["split"] == split][3]
    out.loc[row, column] = out.loc[row, column] + delta
    return out


def test_any_changed_input_is_another_key(split):
    settings, frame, utilities, _, _ = split
    key = fit_key(frame, settings, utilities)
    assert fit_key(frame.copy(), settings.model_copy(deep=True), utilities.copy()) == key
    feature = [c for c in frame.columns if c.startswith("spread")][0]
    train_row = frame.index[frame["split"] == "train"][0]
    other_utilities = utilities.copy()
    other_utilities.loc[train_row, utilities.columns[-1]] += 1e-12
    models = settings.models
    changed = {
        "a train feature": (_changed(frame, "train", feature, 1e-12), settings, utilities),
        "a validation feature": (_changed(frame, "val", feature, 1e-12), settings, utilities),
        "a held-out feature": (_changed(frame, "test", feature, 1e-12), settings, utilities),
        "a train label": (_changed(frame, "train", "label_class", 1), settings, utilities),
        "a train utility": (frame, settings, other_utilities),
        "the seed": (frame, settings.model_copy(update={"models": models.model_copy(update={"seed": 8})}), utilities),
        "a model setting": (
            frame,
            settings.model_copy(
                update={
                    "models": models.model_copy(update={"linear": models.linear.model_copy(update={"max_iter": 61})})
                }
            ),
            utilities,
        ),
        "the members": (
            frame,
            settings.model_copy(update={"models": models.model_copy(update={"members": ("lightgbm", "linear")})}),
            utilities,
        ),
        "the monotonic features": (
            frame,
            settings.model_copy(
                update={"gates": settings.gates.model_copy(update={"monotonic_features": ("spread_5",)})}
            ),
            utilities,
        ),
        "a row moved from train to val": (
            frame.assign(split=frame["split"].where(frame.index != frame.index[frame["split"] == "train"][-1], "val")),
            settings,
            utilities,
        ),
    }
    keys = {what: fit_key(*inputs) for what, inputs in changed.items()}
    assert all(k != key for k in keys.values()), [what for what, k in keys.items() if k == key]
    assert len(set(keys.values())) == len(keys)
    # what the fit does not read is not in the key: another fold's rows after the split, best_weight
    assert fit_key(frame.assign(best_weight=frame["best_weight"] + 1.0), settings, utilities) == key


def test_a_stale_entry_is_never_read(split, tmp_path):
    settings, frame, utilities, _, _ = split
    store = FitStore(tmp_path)
    store.outputs(frame, settings, utilities)
    moved = _changed(frame, "train", "spread_5", 1e-9)
    seeded = settings.model_copy(update={"models": settings.models.model_copy(update={"seed": 99})})
    store.outputs(moved, settings, utilities)
    store.outputs(frame, seeded, utilities)
    assert store.counts() == {"hits": 0, "misses": 3} and len(list(tmp_path.glob("*.npz"))) == 3
    assert_same_outputs(store.outputs(frame, seeded, utilities), member_outputs(frame, seeded, utilities))


def test_a_half_written_or_broken_entry_is_a_miss(split, tmp_path, monkeypatch):
    settings, frame, utilities, _, _ = split
    store = FitStore(tmp_path / "optuna" / FIT_CACHE_DIR)
    key = fit_key(frame, settings, utilities)
    outputs = member_outputs(frame, settings, utilities)

    def killed(*args, **kwargs):  # the process dies after writing, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr("allocator_pipeline.core.tuning.fit_cache.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.save(key, outputs)
    monkeypatch.undo()
    assert not store.path(key).exists() and list(store.directory.iterdir()) == []
    # a temporary file a killed process leaves is never read, and the next command removes it
    leftover = store.directory / f".{key}.npz.0123456789ab.tmp"
    leftover.write_bytes(b"PK\x03\x04 half")
    assert store.load(key, frame) is None and list(stale_temporary_files(tmp_path)) == [leftover]
    store.path(key).write_bytes(b"PK\x03\x04 truncated")  # a broken entry: fitted and written again
    assert_same_outputs(store.outputs(frame, settings, utilities), outputs)
    assert store.counts() == {"hits": 0, "misses": 1}
    assert_same_outputs(FitStore(store.directory).outputs(frame, settings, utilities), outputs)


def _write_many(directory: str, key: str, source: str, n: int) -> None:
    """Worker process: write the entry ``key`` (copied from ``source``'s arrays) ``n`` times."""
    store = FitStore(Path(directory))
    with np.load(source, allow_pickle=False) as data:
        names = [f[len("val.") :] for f in data.files if f.startswith("val.")]
        outputs = MemberOutputs(
            val={m: data[f"val.{m}"] for m in names},
            y_val=data["y_val"],
            test={m: data[f"test.{m}"] for m in names},
            test_index=pd.DatetimeIndex(pd.to_datetime(data["test_index"], utc=True)),
            test_out_of_range=data["test_out_of_range"],
        )
    for _ in range(n):
        store.save(key, outputs)


def test_two_processes_writing_one_key_leave_a_whole_entry(split, tmp_path):
    settings, frame, utilities, _, _ = split
    store = FitStore(tmp_path / "cache")
    outputs = store.outputs(frame, settings, utilities)
    key = fit_key(frame, settings, utilities)
    source = tmp_path / "source.npz"
    shutil.copy(store.path(key), source)
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_write_many, args=(str(store.directory), key, str(source), 40)) for _ in range(2)]
    for p in writers:
        p.start()
    reads = 0
    while any(p.is_alive() for p in writers) or reads == 0:
        loaded = store.load(key, frame)  # a reader between the renames sees a whole entry
        assert loaded is not None
        assert_same_outputs(loaded, outputs)
        reads += 1
    for p in writers:
        p.join()
        assert p.exitcode == 0
    assert [p.name for p in store.directory.iterdir()] == [f"{key}.npz"]
    assert store.path(key).read_bytes() == source.read_bytes()


def _study_settings(home: Path, fit_reuse: bool) -> Settings:
    return make_settings(
        home, models=MODELS, tuning={"n_trials": 4, "fit_reuse": fit_reuse, "groups": ["ensemble", "policy", "linear"]}
    )


def _trials(result) -> pd.DataFrame:
    return result.ledger.drop(columns=["duration_s"])


def test_a_study_with_reuse_gives_the_trials_of_one_without(tmp_path):
    panel = synthetic_panel()
    off = _study_settings(tmp_path / "off", fit_reuse=False)
    _f, _l, utilities, _p, frames = build(panel, off)
    without = run_study(FOLD, frames, utilities, panel, off)
    assert without.fit_reuse["enabled"] is False and without.fit_reuse["fitted"] >= len(frames)
    assert not (off.paths.optuna / FIT_CACHE_DIR).exists()
    cold_settings = _study_settings(tmp_path / "cold", fit_reuse=True)
    cold = run_study(FOLD, frames, utilities, panel, cold_settings)
    assert cold.fit_reuse["hits"] == 0 and cold.fit_reuse["misses"] == without.fit_reuse["fitted"] >= len(frames)
    # a later run (or another fold sharing these splits) on a home whose store holds the fits
    warm_settings = _study_settings(tmp_path / "warm", fit_reuse=True)
    shutil.copytree(cold_settings.paths.optuna / FIT_CACHE_DIR, warm_settings.paths.optuna / FIT_CACHE_DIR)
    warm = run_study(FOLD, frames, utilities, panel, warm_settings)
    assert (
        warm.fit_reuse["hits"] == cold.fit_reuse["misses"] and warm.fit_reuse["misses"] == warm.fit_reuse["fitted"] == 0
    )
    assert without.n_complete == cold.n_complete == warm.n_complete == 4
    for result in (cold, warm):
        pd.testing.assert_frame_equal(_trials(result), _trials(without), check_exact=True)
        pd.testing.assert_frame_equal(result.trial_returns, without.trial_returns, check_exact=True)
        assert result.best_params == without.best_params and result.best_value == without.best_value
    summary = warm.to_dict()["fit_reuse"]
    assert summary["enabled"] and summary["hits"] == warm.fit_reuse["hits"]
