"""A command's outputs as one published set: the rollback journal, plus the Dagster instance's
fold partitions and run tags when the command used an instance.

Dagster is imported only once a command hands an instance to :meth:`Publication.watch`, so a
command that runs no Dagster run (``allocator rebalance --model folds``, ``allocator replay``)
publishes through the journal alone, without importing Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from allocator_pipeline.core.common import journal
from allocator_pipeline.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

JOURNAL_TAG = "allocator/journal"
"""Run tag: the journal (command) a run belongs to."""
ROLLED_BACK_TAG = "allocator/rolled_back"
"""Run tag set on a command's runs when the command failed and its outputs were rolled back."""


class Publication:
    """A command's outputs as one set: see :func:`publication`."""

    def __init__(self, open_journal: journal.Journal) -> None:
        self.journal = open_journal
        self.instance: dg.DagsterInstance | None = None
        self.folds: list[str] | None = None

    def watch(self, instance: dg.DagsterInstance) -> None:
        """Remember the instance's fold partitions (put back if the command fails)."""
        from allocator_pipeline.defs.partitions import fold_keys

        if self.instance is None:
            self.instance, self.folds = instance, fold_keys(instance)

    def roll_back_instance(self) -> None:
        if self.instance is None or self.folds is None:
            return
        import dagster as dg  # imported already: the instance is Dagster's

        from allocator_pipeline.defs.partitions import FOLD_PARTITIONS_NAME, fold_keys

        now = set(fold_keys(self.instance))
        for fold in sorted(now - set(self.folds)):
            self.instance.delete_dynamic_partition(FOLD_PARTITIONS_NAME, fold)
        missing = sorted(set(self.folds) - now)
        if missing:
            self.instance.add_dynamic_partitions(FOLD_PARTITIONS_NAME, missing)
        for run in self.instance.get_runs(filters=dg.RunsFilter(tags={JOURNAL_TAG: self.journal.id})):
            self.instance.add_run_tags(run.run_id, {ROLLED_BACK_TAG: "true"})


@contextmanager
def publication(settings: Settings) -> Iterator[Publication]:
    """Publish everything the block writes under the home as one set.

    The home is locked for the command; a journal left by an interrupted command is rolled back
    and stale temporary files are removed first. If the block raises (a failed run, a refused
    input, Ctrl-C), every artifact it wrote is rolled back, the fold partitions it registered are
    put back, and its runs are tagged ``allocator/rolled_back`` (the retraining sensor ignores
    their materialisations). See docs/operating.md, "Artifacts".
    """
    with journal.open_journal(settings.home) as opened:
        current = Publication(opened)
        try:
            yield current
        except BaseException:
            current.roll_back_instance()
            raise
