"""A command's outputs published as one set: a rollback journal over the home directory.

A command (``allocator run``, ``build-dataset``, ...) writes many artifacts through several
Dagster runs, possibly in several processes. Each write is atomic (``storage.atomic_path``), but
the *set* must be too: when a later stage fails, the home must hold exactly the previous
consistent set, not new inputs beside old models.

While a journal is open (:func:`open_journal`, the environment variable :data:`JOURNAL_ENV` names
its directory, so spawned worker processes join it), every atomic write first records what it
is about to change, once per path:

* a file or directory that exists is *preserved*: a hard link to the old file (its inode
  survives the rename over it), or a copy for a file changed in place (an Optuna SQLite study),
  or the directory itself moved aside before it is replaced or removed;
* a path that does not exist yet is recorded as *created* (with the first ancestor directory
  the write creates).

On success the journal is discarded (:meth:`Journal.commit`); on failure it is rolled back
(:meth:`Journal.rollback`): created paths are removed and preserved ones put back. A journal
left by a killed command is rolled back by the next one (:func:`recover`), which also removes
stale ``.*.tmp`` files. Records are files named by a hash of the relative path, written with
``O_EXCL``, so several processes can record into one journal.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

JOURNAL_ENV = "ALLOCATOR_JOURNAL"
"""Environment variable naming the open journal's directory (inherited by worker processes)."""
JOURNAL_DIR = ".allocator-journal"
"""The journal's directory inside the home (one per home: commands on a home run one at a time)."""
_ROOT_FILE = "root"
_ID_FILE = "id"


class Journal:
    """The rollback journal of one command over ``root`` (the home directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.root = Path((self.directory / _ROOT_FILE).read_text())
        id_file = self.directory / _ID_FILE
        self.id = id_file.read_text() if id_file.is_file() else ""
        """A unique id of the command's journal (Dagster runs are tagged with it)."""

    @classmethod
    def create(cls, root: Path) -> Journal:
        directory = Path(root) / JOURNAL_DIR
        for sub in ("created", "saved"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / _ID_FILE).write_text(uuid.uuid4().hex)
        (directory / _ROOT_FILE).write_text(str(Path(root).resolve()))
        return cls(directory)

    def _key(self, relative: str) -> str:
        return hashlib.sha1(relative.encode()).hexdigest()

    def _relative(self, path: Path) -> str | None:
        try:
            relative = Path(os.path.abspath(path)).relative_to(self.root)
        except ValueError:
            return None  # outside the home: not part of the published set
        if relative.parts[:1] == (JOURNAL_DIR,):
            return None
        return str(relative)

    def _recorded(self, key: str) -> bool:
        return (self.directory / "created" / key).exists() or (self.directory / "saved" / f"{key}.path").exists()

    def _claim(self, kind: str, key: str, relative: str) -> bool:
        """Write the record ``kind/key`` (False when another writer recorded it first)."""
        try:
            fd = os.open(
                self.directory / kind / (key if kind == "created" else f"{key}.path"),
                os.O_CREAT | os.O_EXCL | os.O_WRONLY,
            )
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(relative)
        return True

    def preserve(self, path: Path, *, in_place: bool = False) -> None:
        """Record ``path`` before it is replaced, changed in place (``in_place``) or removed.

        A directory is moved into the journal (the caller then recreates or drops it)."""
        path = Path(path)
        relative = self._relative(path)
        if relative is None:
            return
        key = self._key(relative)
        if self._recorded(key):
            return
        if not path.exists():
            top = path
            while not top.parent.exists() and self._relative(top.parent) not in (None, "."):
                top = top.parent
            if top != path:
                self.preserve(top)
            self._claim("created", key, relative)
            return
        if not self._claim("saved", key, relative):
            return
        saved = self.directory / "saved" / key
        if path.is_dir():
            os.replace(path, saved)
        elif in_place:
            shutil.copy2(path, saved)
        else:
            try:
                os.link(path, saved)
            except OSError:
                shutil.copy2(path, saved)

    def _records(self, kind: str) -> list[tuple[Path, str]]:
        folder = self.directory / kind
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        if kind == "saved":
            files = [f for f in files if f.suffix == ".path"]
        return [(f.with_suffix("") if kind == "saved" else f, f.read_text()) for f in files]

    def rollback(self) -> int:
        """Put the home back as it was when the journal was opened; returns the paths restored."""
        created = self._records("created")
        saved = self._records("saved")
        for _, relative in sorted(created, key=lambda r: len(r[1]), reverse=True):
            _remove(self.root / relative)
        for source, relative in sorted(saved, key=lambda r: len(r[1])):
            target = self.root / relative
            _remove(target)
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
        self.discard()
        return len(created) + len(saved)

    def commit(self) -> None:
        """Keep everything written (the new set is published)."""
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def active() -> Journal | None:
    """The journal this process writes into (from :data:`JOURNAL_ENV`), if any."""
    directory = os.environ.get(JOURNAL_ENV)
    if not directory or not (Path(directory) / _ROOT_FILE).is_file():
        return None
    return Journal(Path(directory))


def stale_temporary_files(root: Path) -> Iterator[Path]:
    """Temporary files (``.<name>.<random>.tmp``) and directories left by interrupted writes."""
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath).name == JOURNAL_DIR:
            dirnames[:] = []
            continue
        for name in list(dirnames):
            if name.startswith(".") and name.endswith(".tmp"):
                dirnames.remove(name)
                yield Path(dirpath) / name
        for name in filenames:
            if name.startswith(".") and name.endswith(".tmp"):
                yield Path(dirpath) / name


def recover(root: Path) -> dict[str, int]:
    """Undo what an interrupted command left in ``root``: roll back its journal and remove stale
    temporary files. Call it only while no other command writes into ``root`` (:func:`home_lock`)."""
    root = Path(root)
    restored = 0
    if (root / JOURNAL_DIR / _ROOT_FILE).is_file():
        journal = Journal(root / JOURNAL_DIR)
        journal.root = root.resolve()  # the home may have been moved since
        restored = journal.rollback()
    elif (root / JOURNAL_DIR).exists():
        shutil.rmtree(root / JOURNAL_DIR)
    stale = list(stale_temporary_files(root)) if root.is_dir() else []
    for path in stale:
        _remove(path)
    return {"restored": restored, "temporary_files": len(stale)}


class HomeBusyError(RuntimeError):
    """Another command holds the home's lock."""


@contextmanager
def home_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on the home directory for one command (``flock`` on the directory itself,
    released by the system if the process dies)."""
    import fcntl

    fd = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeBusyError(f"another allocator command is writing into {root}; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def open_journal(root: Path) -> Iterator[Journal]:
    """Lock ``root``, recover what an interrupted command left, and journal every write until the
    block ends: committed when it ends normally, rolled back when it raises (also on Ctrl-C)."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with home_lock(root):
        recover(root)
        journal = Journal.create(root)
        previous = os.environ.get(JOURNAL_ENV)
        os.environ[JOURNAL_ENV] = str(journal.directory)
        try:
            yield journal
        except BaseException:
            journal.rollback()
            raise
        else:
            journal.commit()
        finally:
            if previous is None:
                os.environ.pop(JOURNAL_ENV, None)
            else:
                os.environ[JOURNAL_ENV] = previous
