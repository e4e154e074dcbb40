"""Homes for the tests that run commands: small settings files."""

QUICK_PASSIVE_TOML = """
profile = "quick"
[data]
step3_mode = "passive"
[features]
blocks = ["returns", "volatility", "drawdown", "hit_rate", "regime", "tbill"]
[folds]
first_test_year = 2024
required_oos_years = [2024]
[envelope]
dd_guard = true
vol_scaling = true
"""
"""A quick home: passive legs (no engine fit), small profile, folds 2024..2025, every envelope stage
on (so a replay carries the drawdown guard's equity and peak and the volatility window)."""
