"""Build the embedded market dataset from the raw Yahoo Finance CSVs.

Usage: python scripts/build_embedded_data.py [RAW_DIR]  (default ../shared/data/raw)

Writes allocator_pipeline/data/market.parquet: one long table (symbol, session, adj_close, close,
volume) for SPY, QQQ (Yahoo layout A), VIX (level; its 267 all-empty holiday rows dropped) and IRX
(13-week T-bill discount yield in percent, in `close`). Every file is parsed and validated by the
same reader users' price files go through. Provenance and terms: docs/data.md, "Embedded data".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from allocator_pipeline.core.inputs.market import EMBEDDED_PATH, EMBEDDED_SYMBOLS, read_price_file  # noqa: E402


def main() -> None:
    raw = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "raw"
    frames = []
    for symbol in EMBEDDED_SYMBOLS:
        frame = read_price_file(raw / f"{symbol}.csv", symbol=symbol)
        frames.append(frame.assign(symbol=symbol))
        print(f"{symbol}: {len(frame)} rows {frame['session'].min().date()} .. {frame['session'].max().date()}")
    long = pd.concat(frames, ignore_index=True)[["symbol", "session", "adj_close", "close", "volume"]]
    long["symbol"] = long["symbol"].astype("string")
    long = long.sort_values(["symbol", "session"], kind="mergesort").reset_index(drop=True)
    # parquet without the pandas index: the file is a plain table
    EMBEDDED_PATH.parent.mkdir(parents=True, exist_ok=True)
    tmp = EMBEDDED_PATH.with_suffix(".tmp")
    long.to_parquet(tmp, engine="pyarrow", compression="zstd", index=False)
    tmp.replace(EMBEDDED_PATH)
    print(f"wrote {EMBEDDED_PATH} ({EMBEDDED_PATH.stat().st_size / 1024:.0f} KiB, {len(long)} rows)")


if __name__ == "__main__":
    main()
