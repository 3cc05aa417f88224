"""The one schema both backends share, and the migrations that build and evolve it.

A migration is a numbered function that takes a connection; ``migrate`` applies those the database
has not seen, in order, each in its own transaction, and records the version. Data is never
dropped by a migration. Migration 1 creates the tables from the current ``metadata``, so a later
migration that adds a column checks first whether the column is already there.

On PostgreSQL, ``migrate`` holds an advisory lock while it works, so several processes starting at
once against one database migrate it once, one after another.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

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
    Sequence,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


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
    # A summary of the source's entries, kept in the writing transaction (migration 4): feed caches
    # compare these instead of aggregating over every entry (SQLStore.last_change).
    Column("entries_version", BigInteger, nullable=False, server_default="0"),
    Column("entries_count", BigInteger, nullable=False, server_default="0"),
    Column("entries_changed_at", UTCDateTime),
    # Scale-out (migration 5): the fencing number of the latest claim (each claim adds one; a
    # write carrying an older number is a lost lease's and is rejected), a digest of the source
    # as configured (a reload marks it due only when the digest changes, once across processes)
    # and its configured category path as JSON (a change re-files its stored entries).
    Column("lease_token", BigInteger, nullable=False, server_default="0"),
    Column("config_digest", String(64)),
    Column("category_path", Text),
    # Details (full texts) that could not be fetched (migration 6): see detail_retries.
    Column("details_missing", Integer, nullable=False, server_default="0"),
    Column("detail_error", Text),
    Column("detail_retry_at", UTCDateTime),
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
    # fingerprint.signature's two windows (migration 8): the lede's 64-bit MinHash and the body's.
    Column("fingerprint", BigInteger),
    Column("body_fingerprint", BigInteger),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("sort_at", UTCDateTime, nullable=False),
    Column("duplicate_of", Integer),
    Column("merge_reason", Text),
    # Store-wide change counter of the last write to this row: a feed cache compares the count and
    # the sum of these over its selection, which changes on every insert, update and delete
    # whichever process (and whichever clock) made it. See SQLStore.last_change.
    Column("revision", BigInteger, nullable=False, server_default="0"),
    # Dedupe and categorize (migration 3): the weight of the entry's text (short texts never
    # near-match) and why the entry has its categories (JSON list of lines, for `explain`).
    Column("text_length", Integer, nullable=False, server_default="0"),
    Column("explanation", Text, nullable=False, server_default="[]"),
    # When the entry arrived (migration 10): the revision of the write that inserted it, never
    # changed after. ``sorted=false`` pages by (arrival descending, id ascending): the latest fetch
    # first and, within one fetch, the ids' order, which is the source's document order.
    Column("arrival", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("source_id", "key", name="uq_entries_source_key"),
    Index("ix_entries_sort", "sort_at", "id"),
    Index("ix_entries_source_sort", "source_id", "sort_at"),
    Index("ix_entries_canonical", "canonical_url"),
    Index("ix_entries_hash", "content_hash"),
)

# The sorted=false order itself (arrival descending, id ascending), so a page is read off the
# index without sorting one write's entries.
Index("ix_entries_arrival", entries.c.arrival.desc(), entries.c.id)

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


# Locality-sensitive keys of each entry's fingerprint (fingerprint.signature): a near-duplicate lookup
# reads the entries sharing a band key instead of every stored entry.
# Keyed by (band_key, entry_id) (migration 11): on SQLite a WITHOUT ROWID table, so a row is one
# b-tree entry that the band lookup reads whole, instead of a rowid row plus two indexes.
entry_bands = Table(
    "entry_bands",
    metadata,
    Column("band_key", BigInteger, primary_key=True, autoincrement=False),
    Column("entry_id", Integer, primary_key=True, autoincrement=False),
    Index("ix_entry_bands_entry", "entry_id"),
    sqlite_with_rowid=False,
)

# Entries the categorize rules or filters dropped, with why: `aggregator explain` answers for them.
drops = Table(
    "drops",
    metadata,
    Column("source_id", String(100), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("link", Text),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

# Entries whose detail fetch failed (migration 6): retried on later fetches with backoff, a bounded
# number of times; a row goes when the detail arrives or the item leaves the source's document.
detail_retries = Table(
    "detail_retries",
    metadata,
    Column("source_id", String(100), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("retry_at", UTCDateTime),
)

# Where revisions come from: a sequence on PostgreSQL (no row lock shared by all workers), a
# one-row counter on SQLite (writers are serialized there anyway).
revision_seq = Sequence("entry_revision_seq", metadata=metadata)

counters = Table(
    "counters",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)


# Facts about the store itself, recorded once (migration 9): ``tag_authority``, the host name in
# the tag: URIs of every published id (SQLStore.tag_authority).
store_facts = Table(
    "store_facts",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)


def _v1_initial(conn: Connection) -> None:
    metadata.create_all(conn, tables=[sources, entries, tombstones, fetch_log])


def _v2_revisions(conn: Connection) -> None:
    """Entry revisions, so caches in other processes see every change (and retention's deletes)."""
    if "revision" not in {c["name"] for c in inspect(conn).get_columns("entries")}:
        conn.execute(text("ALTER TABLE entries ADD COLUMN revision BIGINT NOT NULL DEFAULT 0"))
    counters.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        revision_seq.create(conn, checkfirst=True)
    else:
        conn.execute(counters.insert().values(name="revision", value=0))


def _v3_dedupe(conn: Connection) -> None:
    """Text length and category explanations on entries; band keys; dropped entries."""
    have = {c["name"] for c in inspect(conn).get_columns("entries")}
    if "text_length" not in have:
        conn.execute(text("ALTER TABLE entries ADD COLUMN text_length INTEGER NOT NULL DEFAULT 0"))
    if "explanation" not in have:
        conn.execute(text("ALTER TABLE entries ADD COLUMN explanation TEXT NOT NULL DEFAULT '[]'"))
    entry_bands.create(conn, checkfirst=True)
    drops.create(conn, checkfirst=True)


def _v4_source_summaries(conn: Connection) -> None:
    """Per-source entry summaries (version, count, newest change), filled from the entries."""
    have = {c["name"] for c in inspect(conn).get_columns("sources")}
    for name, ddl in (
        ("entries_version", "BIGINT NOT NULL DEFAULT 0"),
        ("entries_count", "BIGINT NOT NULL DEFAULT 0"),
        (
            "entries_changed_at",
            "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME",
        ),
    ):
        if name not in have:
            conn.execute(text(f"ALTER TABLE sources ADD COLUMN {name} {ddl}"))
    conn.execute(
        text(
            "UPDATE sources SET"
            " entries_count = (SELECT COUNT(*) FROM entries WHERE entries.source_id = sources.id),"
            " entries_changed_at = (SELECT MAX(changed_at) FROM entries"
            " WHERE entries.source_id = sources.id)"
        )
    )


def _v5_scale_out(conn: Connection) -> None:
    """Lease fencing numbers, configured-source digests and category paths on sources."""
    have = {c["name"] for c in inspect(conn).get_columns("sources")}
    for name, ddl in (
        ("lease_token", "BIGINT NOT NULL DEFAULT 0"),
        ("config_digest", "VARCHAR(64)"),
        ("category_path", "TEXT"),
    ):
        if name not in have:
            conn.execute(text(f"ALTER TABLE sources ADD COLUMN {name} {ddl}"))


def _v6_detail_retries(conn: Connection) -> None:
    """Failed detail fetches: a table of the entries to retry, a summary on each source."""
    have = {c["name"] for c in inspect(conn).get_columns("sources")}
    when = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    for name, ddl in (
        ("details_missing", "INTEGER NOT NULL DEFAULT 0"),
        ("detail_error", "TEXT"),
        ("detail_retry_at", when),
    ):
        if name not in have:
            conn.execute(text(f"ALTER TABLE sources ADD COLUMN {name} {ddl}"))
    detail_retries.create(conn, checkfirst=True)


def _v7_fingerprint_windows(conn: Connection) -> None:
    """Was: fingerprints of two 32-bit windows (lede and body; Traditional Chinese folded to
    Simplified) recomputed. Now nothing: migration 8 recomputes every fingerprint anyway, and a
    database that had 7 already still needs 8's."""


def _v8_fingerprint_columns(conn: Connection) -> None:
    """Each fingerprint window gets 64 bits of its own (``body_fingerprint`` beside
    ``fingerprint``): the column is added and every stored fingerprint, weight and band key is
    computed again, so stories stored before the upgrade still meet their copies. A data migration
    needs the code that makes the data, so the fingerprint's signature is imported here (and only here)."""
    from ..dedupe.fingerprint import stored_signature
    from .nearest import recompute_in

    if "body_fingerprint" not in {c["name"] for c in inspect(conn).get_columns("entries")}:
        conn.execute(text("ALTER TABLE entries ADD COLUMN body_fingerprint BIGINT"))
    recompute_in(conn, stored_signature)


def _v9_store_facts(conn: Connection) -> None:
    """A table of facts recorded once per store. The id authority is not filled in here (the
    configuration is not known): the first rendering after the upgrade records the host the
    store publishes under then, which is what its ids already used."""
    store_facts.create(conn, checkfirst=True)


def _v10_arrival(conn: Connection) -> None:
    """Each entry's arrival, for ``sorted=false`` pages. Entries stored before it get one from
    their first-seen time (one fetch's entries share it; their ids keep the document order):
    the rank of that time among the stored ones, minus the count of them, so every backfilled
    arrival is at most 0 and below the revision of any later write (at least 1)."""
    if "arrival" not in {c["name"] for c in inspect(conn).get_columns("entries")}:
        conn.execute(text("ALTER TABLE entries ADD COLUMN arrival BIGINT NOT NULL DEFAULT 0"))
        times = conn.execute(text("SELECT COUNT(DISTINCT first_seen) FROM entries")).scalar_one()
        conn.execute(
            text(
                "UPDATE entries SET arrival = ranked.arrival FROM (SELECT id,"
                " DENSE_RANK() OVER (ORDER BY first_seen) - :times AS arrival FROM entries) AS ranked"
                " WHERE ranked.id = entries.id"
            ),
            {"times": int(times)},
        )
    [index] = [i for i in entries.indexes if i.name == "ix_entries_arrival"]
    index.create(conn, checkfirst=True)


def _v11_band_key_primary(conn: Connection) -> None:
    """``entry_bands`` keyed by (band_key, entry_id), WITHOUT ROWID on SQLite: each band row
    written once and read from the key's b-tree, not a rowid row plus an index on each column
    (a 28% smaller table and 8-15% less time per source storing bands: bench/bands_table.py,
    docs/performance.md). The rows are copied over."""
    if inspect(conn).get_pk_constraint("entry_bands")["constrained_columns"]:
        return  # created in this shape (migration 1 on a new database)
    conn.execute(text("ALTER TABLE entry_bands RENAME TO entry_bands_rowid"))
    for name in ("ix_entry_bands_key", "ix_entry_bands_entry"):
        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    entry_bands.create(conn)
    conn.execute(
        text(
            "INSERT INTO entry_bands (band_key, entry_id)"
            " SELECT DISTINCT band_key, entry_id FROM entry_bands_rowid"
        )
    )
    conn.execute(text("DROP TABLE entry_bands_rowid"))


MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1_initial,
    _v2_revisions,
    _v3_dedupe,
    _v4_source_summaries,
    _v5_scale_out,
    _v6_detail_retries,
    _v7_fingerprint_windows,
    _v8_fingerprint_columns,
    _v9_store_facts,
    _v10_arrival,
    _v11_band_key_primary,
]
LATEST = len(MIGRATIONS)

_WINDOW = (1 << 64) - 1


def fingerprint_columns(fingerprint: int | None) -> dict[str, int | None]:
    """The ``fingerprint`` and ``body_fingerprint`` column values of a fingerprint
    (fingerprint.signature: 128 bits, the lede's window low, the body's high), each signed 64-bit
    so SQLite INTEGER and PostgreSQL BIGINT hold it."""
    if fingerprint is None:
        return {"fingerprint": None, "body_fingerprint": None}
    lede, body = fingerprint & _WINDOW, (fingerprint >> 64) & _WINDOW
    return {"fingerprint": _signed(lede), "body_fingerprint": _signed(body)}


def fingerprint_of(lede: int | None, body: int | None) -> int | None:
    """The fingerprint stored in the two columns (``fingerprint_columns``); None without one."""
    if lede is None:
        return None
    return (lede & _WINDOW) | ((lede if body is None else body) & _WINDOW) << 64


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


_MIGRATION_LOCK = 7_306_112_001  # pg_advisory_lock key: "aggregator schema"


def current_version(conn: Connection) -> int:
    schema_version.create(conn, checkfirst=True)
    found = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc()))
    row = found.first()
    return int(row[0]) if row else 0


def migrate(engine: Engine, now: datetime) -> int:
    """Apply pending migrations; return the schema version the database is now at."""
    if engine.dialect.name != "postgresql":
        with _file_lock(engine.url.database):  # processes opening a new SQLite file at once
            return _apply_pending(engine, now)
    with engine.connect() as lock:
        lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
        lock.commit()
        try:
            return _apply_pending(engine, now)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            lock.commit()


@contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    """An exclusive lock on ``DATABASE.migrate-lock`` beside an SQLite file (none in memory): the
    migrations of processes that open one database at once run one after the other."""
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apply_pending(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        version = current_version(conn)
    for number, step in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        with engine.begin() as conn:
            step(conn)
            conn.execute(schema_version.insert().values(version=number, applied_at=now))
        version = number
    return version


def pending(engine: Engine) -> int:
    """How many migrations the database has not seen yet (without applying them)."""
    with engine.begin() as conn:
        return max(0, LATEST - current_version(conn))
