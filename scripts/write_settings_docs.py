"""Write docs/settings.md: the settings reference, one row per field of the settings model.

Usage: python scripts/write_settings_docs.py   (a test checks the committed file is up to date)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from allocator_pipeline.settings import describe_settings  # noqa: E402

OUT = ROOT / "docs" / "settings.md"

INTRO = """\
One model (the package `allocator_pipeline/settings/`) for the whole pipeline, validated when loaded: a value
out of range is refused naming the field, the value and the allowed range. Sources, lowest
first: defaults < profile < `<home>/allocator.toml` (or `--config FILE`) < environment
(`ALLOCATOR_HOME`, `ALLOCATOR_PRICES`, `ALLOCATOR_STEP3`, `ALLOCATOR_PROFILE`) < command-line
options. Profiles: `quick` (tests: small models; with tuning switched on 3 trials, 2 inner
splits), `default` (tuning on, 12 trials per fold), `full` (larger models, tuning on over every
group, 60 trials per fold of which the first 12 refit the members; the 18 folds took 744 s with
one worker and 452 s with two on this 2-core machine, docs/development.md). Costs in basis
points, windows in sessions, weights and drawdowns as fractions.
"""


def render() -> str:
    """The page: the sources and profiles, then the table of ``describe_settings()``."""
    table = pd.DataFrame(describe_settings(), columns=["field", "default", "range", "description"])
    # a '|' inside a cell would end it in Markdown
    table = table.apply(lambda column: column.str.replace("|", "\\|", regex=False))
    return (
        "# Settings\n\n"
        + INTRO
        + "\nGenerated from the settings model by `scripts/write_settings_docs.py`.\n\n"
        + table.to_markdown(index=False)
        + "\n"
    )


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
