"""The entries: writing a fetch's results, and reading entries back for feeds, pages and the CLI.

Owns: ``apply`` (one fetch's new and changed entries, their band keys, drops, the source's new
state and a fetch-log line, in one transaction fenced by the claim), what the store knows of a
source's keys and tombstones, listing entries for a selection (its filters by source, category
and text), single entries, counts, and the ``tag:`` authority of published ids. Does not own:
deciding what is new, changed or a duplicate (the pipeline passes those decisions in, a duplicate
decision as a ``Merge`` run inside ``apply``'s transaction), the change stamps (changes.py), or
rendering.

New entries' duplicates are decided in their inserting transaction under story locks
(identity.py), so concurrent workers make one primary per story; every entry write bumps its
source's entry summary under that source row's lock (changes.py), so caches in other processes
notice it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.engine import Connection, RowMapping

from ..models import Drop, Enclosure, Entry, FetchOutcome, Selection, SourceState
from .changes import next_revision, touch_sources
from .engine import chunks, insert_ignoring_conflicts
from .identity import IdentityQueries, identity_columns, read_candidates
from .records import KnownEntry, Merge
from .schema import (
    entries,
    entry_bands,
    fetch_log,
    fingerprint_columns,
    fingerprint_of,
    store_facts,
    tombstones,
)
from .sources import SourceQueries, category_key, category_tag, log_row


class EntryQueries(SourceQueries, IdentityQueries):
    _authority: str | None  # tag_authority, once read (it never changes)

    def known(self, source_id: str, keys: Iterable[str]) -> dict[str, KnownEntry]:
        """Existing entries of a source by key: key -> its id, content hash and canonical URL."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, KnownEntry] = {}
        with self.connect() as conn:
            for chunk in chunks(wanted, 500):
                rows = conn.execute(
                    select(
                        entries.c.key, entries.c.id, entries.c.content_hash, entries.c.canonical_url
                    ).where(entries.c.source_id == source_id, entries.c.key.in_(chunk))
                )
                found.update(
                    {r.key: KnownEntry(r.id, r.content_hash, r.canonical_url) for r in rows}
                )
        return found

    def tombstoned(self, source_id: str, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        dead: set[str] = set()
        with self.connect() as conn:
            for chunk in chunks(wanted, 500):
                rows = conn.execute(
                    select(tombstones.c.key).where(
                        tombstones.c.source_id == source_id, tombstones.c.key.in_(chunk)
                    )
                )
                dead.update(r.key for r in rows)
        return dead

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
    ) -> list[int]:
        """Write one fetch's results in one transaction: the source's new state (lease released),
        new entries (with their band keys), changed entries, dropped entries and a fetch-log line.
        Returns the new entries' ids.

        With a ``merge``, the new entries' duplicates among other sources' entries are decided in
        the same transaction, under the story locks of the new entries (``lock_stories``): it is
        called with the new entries not stored yet and a candidate look-up on this transaction,
        and what it returns is inserted. Workers storing one story at once so make one primary.

        Fenced by the claim: nothing is written when the source was claimed again since
        ``state`` was read under its claim (``state.lease_token``; ours expired and was taken over,
        and the taker writes its own fetch, even if it has finished meanwhile), nor, with an
        ``owner``, while another worker holds the source's lease. Such a write is logged as
        ``lease_lost`` and counted in ``leases_lost``."""
        with self.begin() as conn:
            if merge is not None:  # before any row lock, so waiting here holds none
                self.lock_stories(conn, new)
            if not self._write_state(conn, state, owner):
                self._lost(state, owner)
                return []
            revision = next_revision(conn, self.dialect) if new or changed else 0
            present = self._present_keys(conn, state.source_id, [e.key for e in new])
            fresh: Sequence[Entry] = [e for e in new if e.key not in present]
            if merge is not None and fresh:
                fresh = merge(fresh, lambda exclude, wanted: read_candidates(conn, exclude, wanted))
            ids = self._insert_entries(conn, fresh, now, revision)
            if ids or changed:
                newest = max((e.changed_at or now) for e in (*new, *changed))
                touch_sources(conn, [state.source_id], newest, {state.source_id: len(ids)})
            for e in changed:
                conn.execute(
                    update(entries)
                    .where(entries.c.source_id == e.source_id, entries.c.key == e.key)
                    .values(**_entry_update_row(e, now), revision=revision)
                )
                if e.id is not None:
                    self._write_bands(conn, e.id, e.band_keys)
            self._record_drops(conn, dropped, now)
            conn.execute(fetch_log.insert().values(**log_row(outcome, now)))
        return ids

    def apply_quiet(
        self,
        results: Sequence[tuple[SourceState, FetchOutcome]],
        now: datetime,
        owner: str | None = None,
    ) -> None:
        """``apply`` for several fetches that stored no entries (not modified, unchanged, failed)
        in one transaction: each source's new state and fetch-log line, with the same lease rule.
        A round of 304s commits once instead of once per source."""
        if not results:
            return
        with self.begin() as conn:
            logged = []
            for state, outcome in results:
                if self._write_state(conn, state, owner):
                    logged.append(log_row(outcome, now))
                else:
                    self._lost(state, owner)
            if logged:
                conn.execute(fetch_log.insert(), logged)

    def _present_keys(self, conn: Connection, source_id: str, keys: list[str]) -> set[str]:
        present: set[str] = set()
        for chunk in chunks(keys, 500):
            rows = conn.execute(
                select(entries.c.key).where(
                    entries.c.source_id == source_id, entries.c.key.in_(chunk)
                )
            )
            present.update(r.key for r in rows)
        return present

    def _insert_entries(
        self, conn: Connection, new: Sequence[Entry], now: datetime, revision: int
    ) -> list[int]:
        """Insert entries and their band keys with one batched statement each (INSERT ...
        RETURNING in the rows' order); their ids, in order."""
        if not new:
            return []
        rows = [{**_entry_row(e, now), "revision": revision, "arrival": revision} for e in new]
        query = entries.insert().returning(entries.c.id, sort_by_parameter_order=True)
        ids = [int(r[0]) for r in conn.execute(query, rows)]
        for chunk in chunks(ids, 500):  # a reused SQLite rowid must not inherit old band keys
            conn.execute(delete(entry_bands).where(entry_bands.c.entry_id.in_(chunk)))
        bands = [{"entry_id": i, "band_key": k} for i, e in zip(ids, new) for k in e.band_keys]
        if bands:
            conn.execute(entry_bands.insert(), bands)
        return ids

    def list_entries(self, sel: Selection) -> list[Entry]:
        """The selected entries after ``sel.before``: newest ``sort_at`` first, or with
        ``by_arrival`` the latest write first and one write's entries in id (document) order."""
        query = select(entries).where(*_filters(sel), *_after(sel))
        if sel.by_arrival:
            query = query.order_by(entries.c.arrival.desc(), entries.c.id.asc())
        else:
            query = query.order_by(entries.c.sort_at.desc(), entries.c.id.desc())
        query = query.limit(sel.limit)
        with self.connect() as conn:
            return [_entry(r) for r in conn.execute(query).mappings()]

    def tag_authority(self, proposed: str) -> str:
        """The host name in the tag: URIs of every id this store publishes ("" for urn:uuid ids):
        recorded the first time it is asked for (``proposed``, from the base URL then) and the
        same ever after, in every process, whatever the base URL becomes."""
        if self._authority is not None:
            return self._authority
        name = store_facts.c.name == "tag_authority"
        with self.begin() as conn:
            found = conn.execute(select(store_facts.c.value).where(name)).scalar()
            if found is None:
                insert = insert_ignoring_conflicts(self.dialect, store_facts)
                conn.execute(insert.values(name="tag_authority", value=proposed))
                found = conn.execute(select(store_facts.c.value).where(name)).scalar_one()
        self._authority = str(found)
        return self._authority

    def get_entry(self, entry_id: int) -> Entry | None:
        with self.connect() as conn:
            row = conn.execute(select(entries).where(entries.c.id == entry_id)).mappings().first()
        return _entry(row) if row else None

    def entry_counts(self) -> dict[str, int]:
        query = select(entries.c.source_id, func.count()).group_by(entries.c.source_id)
        with self.connect() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(query)}


def _after(sel: Selection) -> list[Any]:
    """The condition of entries past the cursor in the selection's order. The arrival order is
    descending in one column and ascending in the other, so no row comparison states it; its
    ``arrival <= a`` term bounds the index scan."""
    if sel.before is None:
        return []
    if not sel.by_arrival:
        return [tuple_(entries.c.sort_at, entries.c.id) < tuple_(*sel.before)]
    arrival, entry_id = sel.before
    return [
        entries.c.arrival <= arrival,
        or_(entries.c.arrival < arrival, entries.c.id > entry_id),
    ]


def _filters(sel: Selection) -> list[Any]:
    where: list[Any] = []
    if sel.source_ids is not None:
        where.append(entries.c.source_id.in_(sel.source_ids))
    if sel.exclude_source_ids:
        where.append(entries.c.source_id.not_in(sel.exclude_source_ids))
    paths = [p for p in (sel.category_prefix, *sel.category_prefixes) if p]
    if paths:
        where.append(_filed_under(paths, sel.merge_duplicates, sel.also_sources))
    if sel.merge_duplicates:
        where.append(entries.c.duplicate_of.is_(None))
    if sel.query:
        like = f"%{sel.query}%"
        where.append(or_(entries.c.title.ilike(like), entries.c.content.ilike(like)))
    return where


def _filed_under(paths: Sequence[Sequence[str]], merged: bool, also: Sequence[str] = ()) -> Any:
    """Entries filed under any of ``paths``: by their category path (a prefix of it), by a
    category name (a rule's ``AI``, or ``a/b`` and below) or by coming from one of the ``also``
    sources (filed there by their ``also_in``). Merged: the story (the entry that stands for its
    copies) is in when any of its copies is filed there."""

    def matches(table: Any) -> Any:
        tests = [table.c.source_id.in_(also)] if also else []
        for path in paths:
            key = category_key(path)
            tag = json.dumps(category_tag(path), ensure_ascii=False)  # as stored: '"AI"'
            tests += [
                func.substr(table.c.category_key, 1, len(key)) == key,
                table.c.categories.contains(tag, autoescape=True),
                table.c.categories.contains(tag[:-1] + "/", autoescape=True),
            ]
        return or_(*tests)

    if not merged:
        return matches(entries)
    copy = entries.alias("copy")
    stories = select(func.coalesce(copy.c.duplicate_of, copy.c.id)).where(matches(copy))
    return entries.c.id.in_(stories)


def _entry_row(e: Entry, now: datetime) -> dict[str, Any]:
    row = _entry_update_row(e, now)
    first_seen = e.first_seen or now
    published = e.published
    row.update(
        source_id=e.source_id,
        key=e.key,
        first_seen=first_seen,
        changed_at=e.changed_at or first_seen,
        sort_at=min(published, first_seen) if published else first_seen,
        duplicate_of=e.duplicate_of,
        merge_reason=e.merge_reason,
    )
    return row


def _entry_update_row(e: Entry, now: datetime) -> dict[str, Any]:
    return {
        "title": e.title,
        "link": e.link,
        "content": e.content,
        "summary": e.summary,
        "author": e.author,
        "published": e.published,
        "updated": e.updated,
        "categories": json.dumps(list(e.categories), ensure_ascii=False),
        "category_path": json.dumps(list(e.category_path), ensure_ascii=False),
        "category_key": category_key(e.category_path),
        "enclosures": json.dumps(
            [{"url": x.url, "type": x.type, "length": x.length} for x in e.enclosures]
        ),
        "image": e.image,
        "content_hash": e.content_hash,
        "canonical_url": e.canonical_url,
        **fingerprint_columns(e.fingerprint),
        "changed_at": e.changed_at or now,
        **identity_columns(e),
    }


def _entry(r: RowMapping) -> Entry:
    return Entry(
        id=r["id"],
        source_id=r["source_id"],
        key=r["key"],
        title=r["title"],
        link=r["link"],
        content=r["content"],
        summary=r["summary"],
        author=r["author"],
        published=r["published"],
        updated=r["updated"],
        categories=tuple(json.loads(r["categories"] or "[]")),
        category_path=tuple(json.loads(r["category_path"] or "[]")),
        enclosures=tuple(Enclosure(**x) for x in json.loads(r["enclosures"] or "[]")),
        image=r["image"],
        content_hash=r["content_hash"],
        canonical_url=r["canonical_url"],
        fingerprint=fingerprint_of(r["fingerprint"], r["body_fingerprint"]),
        first_seen=r["first_seen"],
        changed_at=r["changed_at"],
        duplicate_of=r["duplicate_of"],
        merge_reason=r["merge_reason"],
        sort_at=r["sort_at"],
        arrival=r["arrival"],
        text_length=r["text_length"] or 0,
        explanation=tuple(json.loads(r["explanation"] or "[]")),
    )
