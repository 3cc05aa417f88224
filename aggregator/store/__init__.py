"""Storage behind protocols split by role. SQLite is the embedded default, PostgreSQL the way to
scale out; both are ``SQLStore`` (sql.py) over SQLAlchemy Core with one schema (``schema.py``).

Who needs what:

- ``ReadStore``: what a web process reads to serve feeds and status pages (entries of a
  selection, source states, change stamps, ping).
- ``WorkStore``: what a worker does with a fetch (claim due sources, look up known keys and
  duplicate candidates, apply the results, release leases).
- ``AdminStore``: what the operator's actions and the CLI do (reset or fetch a source now, prune,
  the look-ups of ``aggregator explain``).
- ``Store``: all of them, for the daemon and the commands that compose everything.

The protocols name records of ``records.py`` and ``models.py``, never a SQL type, and every method
raises only our errors: a SQLAlchemy error becomes ``StoreError`` (``StoreOutage`` when the
database is unreachable or too slow) with the original as its ``__cause__`` (engine.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from ..config.settings import StorageSettings
from ..models import (
    DetailAttempt,
    Drop,
    Entry,
    FetchOutcome,
    Identity,
    Selection,
    Source,
    SourceState,
)
from .records import (
    CandidateLookup,
    ChangeStamp,
    FetchLogLine,
    KnownEntry,
    Merge,
    PruneResult,
    Wanted,
)
from .sql import SQLStore


class ReadStore(Protocol):
    """The reads a web process serves from."""

    def ping(self) -> bool: ...
    def list_entries(self, sel: Selection) -> list[Entry]: ...
    def last_change(self, sel: Selection) -> ChangeStamp: ...
    def change_token(self) -> int | None: ...
    def tag_authority(self, proposed: str) -> str: ...
    def get_state(self, source_id: str) -> SourceState | None: ...
    def list_states(self, include_disabled: bool = False) -> list[SourceState]: ...
    def entry_counts(self) -> dict[str, int]: ...
    def fetch_history(self, source_id: str, limit: int = 20) -> list[FetchLogLine]: ...


class WorkStore(Protocol):
    """What fetching and storing sources needs."""

    leases_lost: int  # writes rejected by lease fencing (``lease_lost``), since the store opened
    lease_takeovers: int  # sources claimed over another owner's expired lease, since it opened

    def sync_sources(self, configured: Sequence[Source], now: datetime) -> None: ...
    def claim_due(
        self, now: datetime, limit: int, owner: str, lease: float
    ) -> list[SourceState]: ...
    def oldest_due(self, now: datetime) -> datetime | None: ...
    def release(self, source_id: str, owner: str) -> None: ...
    def release_all(self, owner: str) -> None: ...
    def release_orphaned(self, gone: Callable[[str], bool]) -> int: ...
    def known(self, source_id: str, keys: Iterable[str]) -> dict[str, KnownEntry]: ...
    def tombstoned(self, source_id: str, keys: Iterable[str]) -> set[str]: ...
    def apply(
        self,
        state: SourceState,
        new: Sequence[Entry],
        changed: Sequence[Entry],
        outcome: FetchOutcome,
        now: datetime,
        owner: str | None = None,
        dropped: Sequence[Drop] = (),
        merge: Merge | None = None,
    ) -> list[int]: ...
    def apply_quiet(
        self,
        results: Sequence[tuple[SourceState, FetchOutcome]],
        now: datetime,
        owner: str | None = None,
    ) -> None: ...
    def duplicate_candidates_many(
        self, exclude_source: str, wanted: Wanted
    ) -> list[list[Identity]]: ...
    def source_identities(self, source_id: str, limit: int = 5000) -> list[Identity]: ...
    def detail_attempts(self, source_id: str) -> dict[str, DetailAttempt]: ...
    def save_detail_attempts(
        self, source_id: str, failed: Sequence[DetailAttempt], cleared: Sequence[str]
    ) -> None: ...


class AdminStore(Protocol):
    """The operator's actions and look-ups."""

    def reset_source(self, source_id: str, now: datetime) -> None: ...
    def fetch_now(self, source_id: str, now: datetime) -> None: ...
    def prune(
        self, now: datetime, max_per_source: int | None, max_age: float | None
    ) -> PruneResult: ...
    def get_entry(self, entry_id: int) -> Entry | None: ...
    def find_entries(self, ref: str, limit: int = 20) -> list[int]: ...
    def find_drops(self, ref: str, limit: int = 20) -> list[Drop]: ...
    def duplicates_of(self, entry_id: int) -> list[int]: ...
    def entry_band_keys(self, entry_id: int) -> tuple[int, ...]: ...


class Store(ReadStore, WorkStore, AdminStore, Protocol):
    """Everything: the daemon's store, and the commands that compose every role."""

    def close(self) -> None: ...


def open_store(url: str, now: datetime, limits: StorageSettings | None = None) -> Store:
    """Open (and migrate) the store at ``url``: ``sqlite:///path`` or ``postgresql://…``, its
    connections bounded by the ``[storage]`` timeouts in ``limits`` (defaults when None)."""
    return SQLStore(url, now, limits)


__all__ = [
    "AdminStore",
    "CandidateLookup",
    "ChangeStamp",
    "FetchLogLine",
    "KnownEntry",
    "Merge",
    "PruneResult",
    "ReadStore",
    "SQLStore",
    "Store",
    "Wanted",
    "WorkStore",
    "open_store",
]
