"""Domain core: plain typed Python on numpy/pandas. No Dagster import anywhere in this package."""
