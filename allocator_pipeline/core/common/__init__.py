"""Small shared pieces of the domain: sessions, the weight grid, costs, errors, atomic storage and
the rollback journal that publishes a command's artifacts as one set (``journal.py``)."""

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import (
    BUCKETS,
    GRID_INDEX_OF_BUCKET,
    N_CLASSES,
    PROBA_COLUMNS,
    UTILITY_COLUMNS,
    WEIGHT_GRID,
    nearest_bucket,
)
from allocator_pipeline.core.common.sessions import (
    EXCHANGE_TZ,
    SESSIONS_PER_YEAR,
    decision_ts_for,
    decision_ts_from_dates,
    session_dates,
)
from allocator_pipeline.core.common.storage import (
    preserve_in_place,
    publish_directory,
    read_json,
    read_parquet,
    remove,
    to_json_text,
    write_bytes,
    write_json,
    write_parquet,
    write_text,
)

__all__ = [
    "BUCKETS",
    "EXCHANGE_TZ",
    "GRID_INDEX_OF_BUCKET",
    "N_CLASSES",
    "PROBA_COLUMNS",
    "SESSIONS_PER_YEAR",
    "UTILITY_COLUMNS",
    "WEIGHT_GRID",
    "CostModel",
    "InputDataError",
    "decision_ts_for",
    "decision_ts_from_dates",
    "nearest_bucket",
    "preserve_in_place",
    "publish_directory",
    "read_json",
    "read_parquet",
    "remove",
    "session_dates",
    "to_json_text",
    "write_bytes",
    "write_json",
    "write_parquet",
    "write_text",
]
