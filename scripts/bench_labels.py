"""Benchmark: vectorised utility labels vs the per-session loop reference, on the full history.

Passive legs from the embedded data (QQQ and SPY adjusted-close daily returns from 1999-03-11),
H = 20, default lambdas and cost model. Prints, for each implementation, the wall time (best of
3 runs for the vectorised one, 1 run for the loop), the peak traced memory (tracemalloc), the
speed-up, and whether both outputs are identical bit for bit.

Run: ``.venv/bin/python scripts/bench_labels.py`` (or ``make bench``).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import pandas as pd

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.inputs.market import load_prices, market_panel
from allocator_pipeline.core.labels.utility import utility_labels, utility_labels_loop
from allocator_pipeline.settings import CostSettings, LabelSettings
from allocator_pipeline_tests.support.leakage import compare_up_to

HORIZON = 20


def passive_leg_panel() -> pd.DataFrame:
    """Leg panel of buy-and-hold legs: leg_return = adjusted close pct change (from QQQ's 2nd session)."""
    market = market_panel(load_prices())
    market = market[market["qqq_adj_close"].notna()]
    panel = pd.DataFrame(
        {"qqq_leg_return": market["qqq_adj_close"].pct_change(), "spy_leg_return": market["spy_adj_close"].pct_change()}
    )
    return panel.iloc[1:]


def measure(run: Callable[[], tuple[pd.DataFrame, pd.DataFrame]], repeats: int):
    best = float("inf")
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak, result


def main() -> None:
    panel = passive_leg_panel()
    settings = LabelSettings(horizon=HORIZON)
    costs = CostModel.from_settings(CostSettings())
    vec_time, vec_peak, (vec_labels, vec_utils) = measure(lambda: utility_labels(panel, settings, costs), 3)
    loop_time, loop_peak, (loop_labels, loop_utils) = measure(lambda: utility_labels_loop(panel, settings, costs), 1)
    differences = compare_up_to(vec_labels, loop_labels, None) + compare_up_to(vec_utils, loop_utils, None)
    print(
        f"utility labels, passive legs {panel.index[0].date()} .. {panel.index[-1].date()}: "
        f"{len(panel)} sessions x 21 weights x H={HORIZON}"
    )
    print(f"{'implementation':<16}{'runs':>6}{'time (s)':>12}{'peak mem (MB)':>16}")
    print(f"{'vectorised':<16}{'best/3':>6}{vec_time:>12.3f}{vec_peak / 2**20:>16.1f}")
    print(f"{'per-day loop':<16}{'1':>6}{loop_time:>12.3f}{loop_peak / 2**20:>16.1f}")
    print(f"speed-up: {loop_time / vec_time:.1f}x; memory ratio (vectorised / loop): {vec_peak / loop_peak:.2f}")
    print("outputs identical bit for bit: " + ("yes" if not differences else "NO\n  " + "\n  ".join(differences)))


if __name__ == "__main__":
    main()
