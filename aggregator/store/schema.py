"""The one schema both backends share, and the migrations that build and evolve it.

A migration is a numbered function that takes a connection; ``migrate`` applies those the database
has not seen, in order, each in its own transaction, and records the version. Data is never
dropped by a migration.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    select,
)
from sqlalchemy.engine import Connection, Engine


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(timezone.utc) if value.tzinfo else value
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("configured_url", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("title", Text),
    Column("site_link", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("gone", Boolean, nullable=False, default=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_hash", String(64)),
    Column("next_fetch_at", UTCDateTime),
    Column("last_fetch_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_status", String(20)),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("redirect_target", Text),
    Column("redirect_streak", Integer, nullable=False, default=0),
    Column("fetch_count", Integer, nullable=False, default=0),
    Column("not_modified_count", Integer, nullable=False, default=0),
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime),
    Index("ix_sources_due", "next_fetch_at"),
)

entries = Table(
    "entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", String(100), ForeignKey("sources.id"), nullable=False),
    Column("key", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("link", Text),
    Column("content", Text),
    Column("summary", Text),
    Column("author", Text),
    Column("published", UTCDateTime),
    Column("updated", UTCDateTime),
    Column("categories", Text, nullable=False, default="[]"),  # JSON list
    Column("category_path", Text, nullable=False, default="[]"),  # JSON list
    Column("category_key", Text, nullable=False, default=""),  # path parts each followed by \x1f
    Column("enclosures", Text, nullable=False, default="[]"),  # JSON list of objects
    Column("image", Text),
    Column("content_hash", String(64), nullable=False),
    Column("canonical_url", Text),
    Column("fingerprint", BigInteger),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("sort_at", UTCDateTime, nullable=False),
    Column("duplicate_of", Integer),
    Column("merge_reason", Text),
    UniqueConstraint("source_id", "key", name="uq_entries_source_key"),
    Index("ix_entries_sort", "sort_at", "id"),
    Index("ix_entries_source_sort", "source_id", "sort_at"),
    Index("ix_entries_canonical", "canonical_url"),
    Index("ix_entries_hash", "content_hash"),
)

tombstones = Table(
    "tombstones",
    metadata,
    Column("source_id", String(100), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("removed_at", UTCDateTime, nullable=False),
)

fetch_log = Table(
    "fetch_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", String(100), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text),
    Column("added", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("bytes", Integer, nullable=False, default=0),
    Column("elapsed", Float, nullable=False, default=0.0),
    Index("ix_fetch_log_source", "source_id", "at"),
)


def _v1_initial(conn: Connection) -> None:
    metadata.create_all(conn, tables=[sources, entries, tombstones, fetch_log])


MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial]


def current_version(conn: Connection) -> int:
    schema_version.create(conn, checkfirst=True)
    found = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc()))
    row = found.first()
    return int(row[0]) if row else 0


def migrate(engine: Engine, now: datetime) -> int:
    """Apply pending migrations; return the schema version the database is now at."""
    with engine.begin() as conn:
        version = current_version(conn)
    for number, step in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        with engine.begin() as conn:
            step(conn)
            conn.execute(
                schema_version.insert().values(version=number, applied_at=now)
            )
        version = number
    return version
