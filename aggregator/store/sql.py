"""The SQL store: SQLite (WAL) by default, PostgreSQL when configured; all SQL lives in store/.

``SQLStore`` is the one class callers construct: it opens (and migrates) the database and is
assembled from one part per domain, each a module of its own:

    engine.py     the engine, transactions, SQLAlchemy's errors converted to ``StoreError``
    sources.py    syncing source rows with the config, claims and leases, states, the fetch log
    entries.py    writing a fetch's results (``apply``), known keys, listing entries
    identity.py   duplicate candidates, story locks, band keys, drops, ``explain`` look-ups
    details.py    retried detail (full-text) fetches
    nearest.py    band keys of one entry, recomputing fingerprints
    changes.py    the revision number and per-source change stamps the caches compare
    retention.py  pruning old entries behind tombstones
    admin.py      what ``aggregator db`` needs: upgrade, row counts, copying a store

Does not own: deciding what is new, when to fetch next, or how to render (callers pass those
decisions in). Callers see it through the role protocols of ``store/__init__.py``.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from ..config.settings import StorageSettings
from .admin import AdminQueries
from .changes import ChangeQueries
from .details import DetailQueries
from .engine import converted, make_engine, redact
from .entries import EntryQueries
from .nearest import NearestQueries
from .retention import RetentionQueries
from .schema import migrate


class SQLStore(
    EntryQueries, ChangeQueries, RetentionQueries, AdminQueries, DetailQueries, NearestQueries
):
    """One store over one database; safe to share within a process."""

    def __init__(self, url: str, now: datetime, limits: StorageSettings | None = None) -> None:
        self.url = url
        try:
            self.engine = make_engine(url, limits)
            self.version = migrate(self.engine, now)
        except SQLAlchemyError as exc:
            raise converted(exc, f"cannot open the store at {redact(url)}") from exc
        self.dialect = self.engine.dialect.name
        self.leases_lost = 0
        self.lease_takeovers = 0
        self._counting = threading.Lock()
        self._authority = None
