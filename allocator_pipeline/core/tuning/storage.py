"""Where a fold's Optuna study lives: ``tuning.storage``.

``None`` (the default)
    An Optuna journal file per fold, ``<home>/step3_out/allocator/optuna/<fold>.journal`` (one
    process per fold file: trials left ``RUNNING`` by a killed process are marked failed and
    redone; about 8 ms of storage a trial here, against 46 ms for a SQLite file and 2 ms in memory,
    ``docs/research.md``). A failed command puts the file back as it was.
``"journal:<path>"``
    Optuna's journal file storage (a relative path is under ``home``), shared by the folds and by
    parallel workers.
any other value
    An RDB URL (e.g. ``postgresql://...``, given to SQLAlchemy with the installed driver,
    psycopg2), shared.
"""

from __future__ import annotations

from pathlib import Path

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from allocator_pipeline.core.common.storage import preserve_in_place
from allocator_pipeline.settings import Settings

__all__ = ["psycopg2_url", "study_storage"]


def study_storage(fold: str, settings: Settings) -> tuple[BaseStorage, str, bool]:
    """(storage, description without secrets, shared?) for the fold's study."""
    url = settings.tuning.storage
    if url is None:
        path = settings.paths.optuna / f"{fold}.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        preserve_in_place(path)  # a failed command puts the study back as it was
        return JournalStorage(JournalFileBackend(str(path))), f"journal:{path}", False
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :]).expanduser()
        path = path if path.is_absolute() else settings.home.resolve() / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path))), f"journal:{path}", True
    from sqlalchemy.engine import make_url  # optuna's RDB storage depends on SQLAlchemy

    url = psycopg2_url(url)
    return RDBStorage(url), make_url(url).render_as_string(hide_password=True), True


def psycopg2_url(url: str) -> str:
    """A plain ``postgresql://`` URL with the installed driver, psycopg2, named (SQLAlchemy 2.1 would
    otherwise pick psycopg 3); any other URL unchanged."""
    return "postgresql+psycopg2://" + url[len("postgresql://") :] if url.startswith("postgresql://") else url
