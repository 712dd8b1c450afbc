"""The backup port: a verified copy of a store in one file, and its way back.

Each durable adapter has its own (``faena.adapters.sqlite.backup``, ``…postgres.backup``); the
composition root picks one for the configured database and the CLI only prints the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What a backup wrote, or what a restore brought back, and what was verified."""

    path: Path  # the backup file
    size_bytes: int
    tables: dict[str, int]  # rows per table, as verified in the copy
    checks: tuple[str, ...]  # the checks that passed, in words ("integrity_check ok", ...)
    seconds: float
    extra_files: tuple[Path, ...] = field(default=())  # e.g. a manifest next to the file

    @property
    def jobs(self) -> int:
        return self.tables.get("jobs", 0)


class StoreBackup(Protocol):
    async def backup(self, path: Path, *, overwrite: bool = False) -> BackupReport:
        """Write a consistent, verified copy of the store to ``path`` while it keeps running.

        The file appears only once it is complete and verified. An existing ``path`` is refused
        (Conflict) unless ``overwrite``. Raises a FaenaError with one clear line on failure."""

    async def restore(self, path: Path, *, force: bool = False) -> BackupReport:
        """Replace the store's contents with the backup at ``path``, then verify them.

        Refuses (Conflict) while faena is using the store, when that can be detected, and when
        the store already holds jobs or API keys, unless ``force``. The backup is checked
        before anything is touched: a missing, corrupt or foreign file changes nothing."""
