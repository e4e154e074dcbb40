"""Fresh legs in reference-engine mode: new price sessions extend the Step 3 legs causally."""

import shutil

import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.storage import read_parquet, write_parquet
from allocator_pipeline.core.inputs import extend_reference_legs, load_market, run_reference_engine
from allocator_pipeline.settings import load_settings

NEW = 6


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """The quick reference engine on the prices without their last NEW sessions (``short``), and
    on all of them (``full``)."""
    settings = load_settings(profile="quick", environ={})
    market = load_market(settings)
    short = tmp_path_factory.mktemp("short")
    full = tmp_path_factory.mktemp("full")
    run_reference_engine(market.iloc[:-NEW], settings, short / "step3_out")
    run_reference_engine(market, settings, full / "step3_out")
    return market, short, full


def test_new_price_sessions_extend_the_legs_as_a_full_run_would(homes, tmp_path):
    market, short, full = homes
    home = tmp_path / "home"
    shutil.copytree(short, home)
    settings = load_settings(profile="quick", home=home, environ={})
    assert extend_reference_legs(settings, market) == NEW
    for rel in ("backtest/QQQ.parquet", "backtest/SPY.parquet"):
        extended = read_parquet(home / "step3_out" / rel)
        assert extended.equals(read_parquet(full / "step3_out" / rel)), rel
        assert len(extended) == len(read_parquet(short / "step3_out" / rel)) + NEW
    assert extend_reference_legs(settings, market) == 0  # nothing new: nothing done


def test_an_extension_that_would_rewrite_history_is_refused(homes, tmp_path):
    market, short, _ = homes
    home = tmp_path / "home"
    shutil.copytree(short, home)
    path = home / "step3_out" / "backtest" / "SPY.parquet"
    legs = read_parquet(path)
    legs.loc[100, "leg_return"] += 1e-9  # a leg built by other settings or other prices
    write_parquet(legs, path)
    settings = load_settings(profile="quick", home=home, environ={})
    before = path.read_bytes()
    with pytest.raises(InputDataError, match="rebuild the dataset"):
        extend_reference_legs(settings, market)
    assert path.read_bytes() == before  # nothing replaced


def test_a_user_step3_directory_is_read_as_it_is(homes, tmp_path):
    market, short, _ = homes
    settings = load_settings(profile="quick", step3=short / "step3_out", home=tmp_path, environ={})
    assert extend_reference_legs(settings, market) == 0
    assert not (tmp_path / "step3_out").exists()
    assert pd.read_parquet(short / "step3_out" / "backtest" / "SPY.parquet")["decision_ts"].max() < market.index[-1]
