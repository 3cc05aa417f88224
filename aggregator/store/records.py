"""The records the store hands back, and the shapes of what callers hand in, beside the protocols.

Owns: small frozen values read from the store (what it knows of a key, a fetch-log line, a change
stamp, a prune's result) and the types of a duplicate decision run inside ``apply``. Does not own
any SQL: the protocols in ``store/__init__.py`` import these, never the SQL modules, so a caller
that only reads sees no SQLAlchemy type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..models import Entry, Identity


@dataclass(frozen=True)
class KnownEntry:
    """What the store knows of one key of a source: enough to tell an item new, changed or the
    same (``decide.changed``) without reading the stored entry."""

    id: int
    content_hash: str
    canonical_url: str | None


@dataclass(frozen=True)
class FetchLogLine:
    """One line of a source's fetch log (the status page's "Recent fetches")."""

    id: int
    source_id: str
    at: datetime
    status: str  # a FetchStatus value
    error: str | None
    added: int
    updated: int
    bytes: int
    elapsed: float


@dataclass(frozen=True)
class ChangeStamp:
    """What a cache of a selection compares: equal stamps mean the selected entries are unchanged.

    Read from the per-source entry summaries of the sources a selection can draw from:
    ``changed_at`` (the newest change, for Last-Modified) alone misses writes from other processes
    whose clocks, or whose moment of committing, lag behind; ``total`` is the entry count and
    ``revisions`` the sum of the sources' entry versions, which every insert, update, merge or
    delete bumps."""

    changed_at: datetime | None
    total: int
    revisions: int


@dataclass(frozen=True)
class PruneResult:
    removed: int  # entries deleted (each left a tombstone)
    sources: int  # sources that lost at least one entry
    skipped: bool = False  # another process was pruning the same database; nothing done


# What a duplicate look-up is asked for, per new entry: canonical URL, content hash, band keys.
Wanted = Sequence[tuple[str | None, str, Sequence[int]]]
# The candidates of each wanted entry among other sources' entries (excluding one source).
CandidateLookup = Callable[[str, Wanted], list[list[Identity]]]
# The caller's duplicate decision, run inside the storing transaction: the new entries with
# ``duplicate_of`` and ``merge_reason`` set, from candidates read with the lookup it is given.
Merge = Callable[[Sequence[Entry], CandidateLookup], Sequence[Entry]]
