"""Settings: validation at load time with clear messages, precedence, and documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from allocator_pipeline.settings import SettingsError, describe_settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_PAGE = ROOT / "docs" / "settings.md"


def test_out_of_range_value_is_refused_naming_field_value_and_range():
    with pytest.raises(SettingsError) as err:
        load_settings(overrides={"labels": {"horizon": 500}}, environ={})
    message = str(err.value)
    assert "labels.horizon" in message and "500" in message and "le 126" in message


def test_unknown_field_and_inconsistent_values_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="policy.alhpa"):
        load_settings(overrides={"policy": {"alhpa": 0.3}}, environ={})
    with pytest.raises(SettingsError, match="dd_hard"):
        load_settings(overrides={"envelope": {"dd_soft": 0.3, "dd_hard": 0.2}}, environ={})
    with pytest.raises(SettingsError, match="purge_sessions"):
        load_settings(overrides={"folds": {"purge_sessions": 5}}, environ={})
    with pytest.raises(SettingsError, match="unknown feature blocks"):
        load_settings(overrides={"features": {"blocks": ["returns", "astrology"]}}, environ={})
    with pytest.raises(SettingsError, match="profile"):
        load_settings(profile="huge", environ={})


def test_precedence_defaults_profile_file_environment_arguments(tmp_path):
    assert load_settings(environ={}).tuning.n_trials == 12
    assert load_settings(profile="quick", environ={}).tuning.n_trials == 3
    (tmp_path / "allocator.toml").write_text("[tuning]\nn_trials = 7\n[labels]\nhorizon = 10\n")
    s = load_settings(home=tmp_path, profile="quick", environ={})
    assert s.tuning.n_trials == 7 and s.labels.horizon == 10 and s.purge == 10
    env = {"ALLOCATOR_HOME": str(tmp_path), "ALLOCATOR_PROFILE": "full"}
    assert load_settings(environ=env).profile == "full"
    assert load_settings(profile="quick", environ=env).profile == "quick"
    (tmp_path / "allocator.toml").write_text("[labels]\nhorizon = 0\n")
    with pytest.raises(SettingsError, match=r"allocator.toml\): labels.horizon = 0"):
        load_settings(home=tmp_path, environ={})


def test_the_settings_reference_is_generated_from_the_model_and_up_to_date():
    """docs/settings.md is what scripts/write_settings_docs.py renders from describe_settings():
    a field added, removed or redescribed without regenerating the page fails here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("write_settings_docs", ROOT / "scripts" / "write_settings_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = SETTINGS_PAGE.read_text()
    assert text == module.render(), "run scripts/write_settings_docs.py"
    missing = [row["field"] for row in describe_settings() if f"| {row['field']} " not in text]
    assert not missing, f"docs/settings.md lacks settings rows for {missing}"
    assert all(row["description"] for row in describe_settings())


def test_profile_chosen_in_the_settings_file_applies_its_values(tmp_path):
    (tmp_path / "allocator.toml").write_text('profile = "quick"\n')
    s = load_settings(home=tmp_path, environ={})
    assert s.profile == "quick" and s.tuning.n_trials == 3
    assert load_settings(home=tmp_path, profile="default", environ={}).tuning.n_trials == 12


def test_the_nested_study_is_on_by_default_and_off_in_the_tests_profile(tmp_path):
    """tuning.enabled: on in default and full (the seed's nested tuning; a fold trades the defaults
    unless a trial beats them, docs/method.md), off in quick (the tests' profile); the settings
    file switches it on in any profile."""
    assert [load_settings(profile=p, environ={}).tuning.enabled for p in ("quick", "default", "full")] == [
        False,
        True,
        True,
    ]
    assert load_settings(profile="default", environ={}).tuning.selection == "beats_defaults"
    (tmp_path / "allocator.toml").write_text("[tuning]\nenabled = true\n")
    assert load_settings(home=tmp_path, profile="quick", environ={}).tuning.enabled
