"""The near-duplicate band table keyed by (band_key, entry_id), WITHOUT ROWID on SQLite
(store/schema.py, migration 11): a store from before it keeps every band row, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from aggregator.store.engine import make_engine
from aggregator.store.schema import LATEST, MIGRATIONS, migrate

from .pg import pg_schema

T0 = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'agg.db'}"
    else:
        with pg_schema() as url:
            yield url


def test_an_upgraded_store_keeps_its_band_rows_in_the_keyed_table(store_url: str) -> None:
    """Band rows of a store at version 10 (a rowid table with an index on each column, one row
    repeated) are all there after the upgrade, each once, in a table whose primary key is
    (band_key, entry_id); on SQLite that table has no rowid."""
    engine = make_engine(store_url)
    with engine.begin() as conn:
        for step in MIGRATIONS[:10]:
            step(conn)
        conn.execute(text("DROP TABLE entry_bands"))
        conn.execute(
            text("CREATE TABLE entry_bands (entry_id INTEGER NOT NULL, band_key BIGINT NOT NULL)")
        )
        conn.execute(text("CREATE INDEX ix_entry_bands_key ON entry_bands (band_key)"))
        conn.execute(text("CREATE INDEX ix_entry_bands_entry ON entry_bands (entry_id)"))
        conn.execute(
            text("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
        )
        for version in range(1, 11):
            conn.execute(
                text(f"INSERT INTO schema_version VALUES ({version}, '2026-01-01 00:00:00')")
            )
        rows = [(1, 42), (1, -7), (2, 42), (2, 42), (3, 2**62)]
        for entry_id, key in rows:
            conn.execute(text("INSERT INTO entry_bands VALUES (:e, :k)"), {"e": entry_id, "k": key})
    assert migrate(engine, T0) == LATEST
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT entry_id, band_key FROM entry_bands")).all()
        assert sorted(map(tuple, kept)) == sorted(set(rows))
        assert inspect(conn).get_pk_constraint("entry_bands")["constrained_columns"] == [
            "band_key",
            "entry_id",
        ]
        names = {i["name"] for i in inspect(conn).get_indexes("entry_bands")}
        assert "ix_entry_bands_key" not in names and "ix_entry_bands_entry" in names
        if conn.dialect.name == "sqlite":
            ddl = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'entry_bands'")
            ).scalar()
            assert "WITHOUT ROWID" in ddl
    engine.dispose()
