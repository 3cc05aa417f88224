"""The store's errors are ours: no SQLAlchemy exception leaves a public method of the store.

A broken database (tables dropped under a running store, on SQLite and PostgreSQL) and a
PostgreSQL server that went away (its connections cut by a proxy) make the methods a worker and a
web process call raise ``StoreError`` carrying the SQLAlchemy error as ``__cause__``; an outage is
a ``StoreOutage``, which the guard waits out, and a bug is not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from aggregator.errors import StoreError, StoreOutage
from aggregator.store import SQLStore
from aggregator.store.guard import is_outage

from .dbproxy import DbProxy
from .pg import pg_schema, require_pg
from .test_store import LEASE, T0, entry, everything, fetched, ok, src


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own (its tables get dropped)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with pg_schema() as url:
        yield url


def calls(store: SQLStore) -> dict[str, Callable[[], object]]:
    """The public methods of the worker and web paths, each called as they are called."""
    state = store.get_state("a")
    assert state is not None
    later = T0 + timedelta(hours=1)
    return {
        "claim_due": lambda: store.claim_due(later, 10, "w", LEASE),
        "apply": lambda: store.apply(
            fetched(state, later), [entry("a", "2")], [], ok("a", 1), later, "w"
        ),
        "apply_quiet": lambda: store.apply_quiet([(fetched(state, later), ok("a"))], later, "w"),
        "known": lambda: store.known("a", ["1"]),
        "list_entries": lambda: store.list_entries(everything()),
        "last_change": lambda: store.last_change(everything()),
        "list_states": lambda: store.list_states(),
        "sync_sources": lambda: store.sync_sources([src("a")], later),
        "prune": lambda: store.prune(later, 1, None),
        "fetch_history": lambda: store.fetch_history("a"),
    }


def assert_ours(call: Callable[[], object]) -> StoreError:
    with pytest.raises(StoreError) as caught:
        call()
    assert isinstance(caught.value.__cause__, SQLAlchemyError)
    return caught.value


def test_dropped_tables_raise_store_error_from_every_public_method(fresh_url: str) -> None:
    """With its tables dropped under it, every method a worker or a web process calls raises
    StoreError (the SQLAlchemy error as its cause); on PostgreSQL a missing table is a bug, not
    an outage the guard would wait out."""
    store = SQLStore(fresh_url, T0)
    try:
        store.sync_sources([src("a")], T0)
        pending = calls(store)
        with store.engine.begin() as conn:
            cascade = " CASCADE" if store.dialect == "postgresql" else ""
            for table in ("entry_bands", "fetch_log", "tombstones", "entries", "sources"):
                conn.execute(text(f"DROP TABLE {table}{cascade}"))
        for name, call in pending.items():
            error = assert_ours(call)
            if store.dialect == "postgresql":
                assert not is_outage(error), name
    finally:
        store.close()


def test_a_postgresql_server_gone_raises_store_outage() -> None:
    """When the server's connections are cut (the proxy in front of it resets them and refuses
    new ones), the methods raise StoreOutage, which the guard and the dispatcher treat as an
    outage, with the driver's error as the cause."""
    require_pg()
    proxy = DbProxy().start()
    try:
        with pg_schema() as url:
            store = SQLStore(proxy.url(url), T0)
            try:
                store.sync_sources([src("a")], T0)
                pending = calls(store)
                assert store.list_entries(everything()) == []  # a pooled connection is open
                proxy.cut()
                for name, call in pending.items():
                    error = assert_ours(call)
                    assert isinstance(error, StoreOutage) and is_outage(error), name
            finally:
                store.close()
    finally:
        proxy.stop()
