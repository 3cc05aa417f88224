"""The store's behaviour, the same on both backends: every test runs on SQLite and on PostgreSQL.

The PostgreSQL half uses a fresh schema per test run (tests/pg.py), emptied before each test, and
is skipped, with the reason, when no server is reachable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from aggregator.config import loading as config
from aggregator.models import Entry, FetchOutcome, FetchStatus, Selection, Source, SourceState
from aggregator.publish.feeds import FeedService
from aggregator.store import KnownEntry, SQLStore, open_store
from aggregator.store.schema import LATEST, MIGRATIONS, entries, migrate

from .pg import empty_tables, pg_schema

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = 60.0


@pytest.fixture(scope="session")
def pg_store_url() -> Iterator[str]:
    """One migrated schema for the whole run (migrating per test would cost most of the time)."""
    with pg_schema() as url:
        SQLStore(url, T0).close()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_store_url")
    empty_tables(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    handle = SQLStore(store_url, T0)
    yield handle
    handle.close()


@pytest.fixture
def other(store: SQLStore, store_url: str) -> Iterator[SQLStore]:
    """A second handle on the same database: what another process sees and does."""
    handle = SQLStore(store_url, T0)
    yield handle
    handle.close()


def src(sid: str, url: str | None = None, category: tuple[str, ...] = ()) -> Source:
    return Source(id=sid, url=url or f"http://origin.test/{sid}", category=category)


def entry(
    sid: str,
    key: str,
    at: datetime = T0,
    *,
    title: str | None = None,
    category: tuple[str, ...] = (),
    content: str = "body",
    duplicate_of: int | None = None,
) -> Entry:
    return Entry(
        source_id=sid,
        key=key,
        title=title or f"{sid} {key}",
        link=f"http://origin.test/{sid}/{key}",
        content=content,
        summary=None,
        author=None,
        published=at,
        updated=None,
        category_path=category,
        content_hash=f"h-{key}-{content}",
        first_seen=at,
        changed_at=at,
        duplicate_of=duplicate_of,
    )


def ok(sid: str, added: int = 0) -> FetchOutcome:
    return FetchOutcome(source_id=sid, status=FetchStatus.OK, added=added)


def fetched(state: SourceState, now: datetime, interval: float = 1800) -> SourceState:
    return replace(
        state,
        last_fetch_at=now,
        last_status="ok",
        next_fetch_at=now + timedelta(seconds=interval),
        fetch_count=state.fetch_count + 1,
    )


def add(store: SQLStore, sid: str, items: list[Entry], now: datetime = T0) -> list[int]:
    """Store entries for a source the way a worker does: claim, then apply."""
    claims = {s.source_id: s for s in store.claim_due(now + timedelta(days=3650), 1000, "w", LEASE)}
    state = claims.get(sid) or store.get_state(sid)
    assert state is not None
    ids = store.apply(fetched(state, now), items, [], ok(sid, len(items)), now, "w")
    store.release_all("w")
    return ids


def everything(**kw: object) -> Selection:
    return Selection(limit=10_000, **kw)  # type: ignore[arg-type]


# --- schema --------------------------------------------------------------------------------------


def test_migrations_reach_the_latest_version_once(store: SQLStore, store_url: str) -> None:
    """A new database is migrated to the latest version; opening it again applies nothing."""
    assert store.version == LATEST == len(MIGRATIONS)
    again = SQLStore(store_url, T0 + timedelta(days=1))
    with again.engine.connect() as conn:
        rows = conn.execute(text("SELECT version FROM schema_version ORDER BY version")).all()
    again.close()
    assert [r[0] for r in rows] == list(range(1, LATEST + 1))


def test_a_version_1_database_is_upgraded_keeping_its_entries(empty_url: str) -> None:
    """A database made by migration 1 (entries without revisions) upgrades in place, data kept."""
    from aggregator.store.engine import make_engine

    engine = make_engine(empty_url)
    with engine.begin() as conn:
        MIGRATIONS[0](conn)
        conn.execute(text("ALTER TABLE entries DROP COLUMN revision"))
        conn.execute(
            text("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
        )
        conn.execute(text("INSERT INTO schema_version VALUES (1, '2026-01-01 00:00:00')"))
        conn.execute(
            text(
                "INSERT INTO sources (id, kind, configured_url, url, enabled, gone, consecutive_failures,"
                " redirect_streak, fetch_count, not_modified_count) VALUES ('a', 'feed', 'u', 'u', true,"
                " false, 0, 0, 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO entries (source_id, key, title, categories, category_path, category_key,"
                " enclosures, content_hash, first_seen, changed_at, sort_at) VALUES ('a', 'k', 'old',"
                " '[]', '[]', '', '[]', 'h', '2026-01-01 00:00:00', '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:00')"
            )
        )
    assert migrate(engine, T0) == LATEST
    engine.dispose()
    store = SQLStore(empty_url, T0)
    try:
        assert [e.title for e in store.list_entries(everything())] == ["old"]
        add(store, "a", [entry("a", "new")])
        assert store.last_change(everything()).total == 2
    finally:
        store.close()


def test_a_version_7_database_gets_a_second_fingerprint_column_and_new_fingerprints(
    empty_url: str,
) -> None:
    """Upgrading from schema 7 (one 64-bit column packing two 32-bit windows) adds
    ``body_fingerprint`` and recomputes every fingerprint and band key: entries and duplicate
    candidates read back the 128-bit fingerprint the pipeline computes today."""
    from aggregator.dedupe import fingerprint as fingerprints
    from aggregator.store.engine import make_engine

    engine = make_engine(empty_url)
    body = "<p>" + "A river flooded the old town after three days of rain. " * 8 + "</p>"
    with engine.begin() as conn:
        for step in MIGRATIONS[:7]:
            step(conn)
        conn.execute(text("ALTER TABLE entries DROP COLUMN body_fingerprint"))
        conn.execute(
            text("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
        )
        for version in range(1, 8):
            conn.execute(
                text(f"INSERT INTO schema_version VALUES ({version}, '2026-01-01 00:00:00')")
            )
        conn.execute(
            text(
                "INSERT INTO sources (id, kind, configured_url, url, enabled, gone, consecutive_failures,"
                " redirect_streak, fetch_count, not_modified_count) VALUES ('a', 'feed', 'u', 'u', true,"
                " false, 0, 0, 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO entries (source_id, key, title, content, categories, category_path,"
                " category_key, enclosures, content_hash, fingerprint, first_seen, changed_at, sort_at)"
                " VALUES ('a', 'k', 'Flood', :body, '[]', '[]', '', '[]', 'h', 12345,"
                " '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            ),
            {"body": body},
        )
    assert migrate(engine, T0) == LATEST
    engine.dispose()
    fingerprint, keys, weight = fingerprints.stored_signature("Flood", body)
    assert fingerprint is not None and fingerprint >> 64 and keys
    store = SQLStore(empty_url, T0)
    try:
        [stored] = store.list_entries(everything())
        assert (stored.fingerprint, stored.text_length) == (fingerprint, weight)
        assert set(store.entry_band_keys(stored.id or 0)) == set(keys)
        [[found]] = store.duplicate_candidates_many("b", [(None, "x", keys[:1])])
        assert found.fingerprint == fingerprint
    finally:
        store.close()


# --- sources -------------------------------------------------------------------------------------


def test_sync_adds_new_sources_due_now(store: SQLStore) -> None:
    """Configured sources that the store has not seen become rows, enabled and due at once."""
    store.sync_sources([src("a"), src("b")], T0)
    states = {s.source_id: s for s in store.list_states()}
    assert set(states) == {"a", "b"}
    assert all(s.enabled and s.next_fetch_at == T0 for s in states.values())


def test_sync_changed_url_starts_over_and_removed_source_is_disabled(store: SQLStore) -> None:
    """A source pointed elsewhere loses its validators and is due now; a source no longer
    configured is disabled but keeps its entries; configuring it again enables it."""
    store.sync_sources([src("a"), src("b")], T0)
    add(store, "a", [entry("a", "1")])
    state = store.get_state("a")
    assert state is not None
    store.apply(
        replace(state, etag='"v1"', next_fetch_at=T0 + timedelta(hours=1)), [], [], ok("a"), T0
    )
    later = T0 + timedelta(minutes=5)
    store.sync_sources([src("a", "http://elsewhere.test/feed")], later)
    a = store.get_state("a")
    assert a is not None and a.url == "http://elsewhere.test/feed" and a.etag is None
    assert a.next_fetch_at == later
    assert [s.source_id for s in store.list_states()] == ["a"]
    assert {s.source_id: s.enabled for s in store.list_states(include_disabled=True)} == {
        "a": True,
        "b": False,
    }
    store.sync_sources([src("a", "http://elsewhere.test/feed"), src("b")], later)
    assert [s.source_id for s in store.list_states()] == ["a", "b"]
    assert len(store.list_entries(everything())) == 1


def test_processes_starting_together_sync_without_conflicts(
    store: SQLStore, store_url: str
) -> None:
    """Several handles syncing the same new sources at the same moment end with one row each."""
    handles = [SQLStore(store_url, T0) for _ in range(4)]
    configured = [src(f"s{i}") for i in range(50)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(handles))

    def sync(h: SQLStore) -> None:
        barrier.wait()
        try:
            h.sync_sources(configured, T0)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=sync, args=(h,)) for h in handles]
    [t.start() for t in threads]
    [t.join() for t in threads]
    [h.close() for h in handles]
    assert errors == []
    assert len(store.list_states()) == 50


# --- claims and leases ---------------------------------------------------------------------------


def test_claim_leases_due_sources_to_one_owner(store: SQLStore) -> None:
    """Due sources go to the first claimer, up to the limit; nobody else gets them while the
    lease holds; sources not yet due are not claimed."""
    store.sync_sources([src("a"), src("b"), src("c")], T0)
    state = store.get_state("c")
    assert state is not None
    store.apply(replace(state, next_fetch_at=T0 + timedelta(hours=1)), [], [], ok("c"), T0)
    first = store.claim_due(T0, 1, "w1", LEASE)
    rest = store.claim_due(T0, 10, "w1", LEASE)
    assert len(first) == 1 and len(rest) == 1
    assert {s.source_id for s in first + rest} == {"a", "b"}
    assert store.claim_due(T0 + timedelta(seconds=LEASE - 1), 10, "w2", LEASE) == []


def test_expired_lease_is_claimed_again_by_another_worker(store: SQLStore, other: SQLStore) -> None:
    """A worker that never comes back loses its lease: once it expires another worker claims the
    source, and the first worker's late result is dropped rather than overwriting the second's."""
    store.sync_sources([src("a")], T0)
    [claimed] = store.claim_due(T0, 10, "dead", LEASE)
    assert other.claim_due(T0 + timedelta(seconds=LEASE - 1), 10, "w2", LEASE) == []
    after = T0 + timedelta(seconds=LEASE + 1)
    [again] = other.claim_due(after, 10, "w2", LEASE)
    assert again.source_id == "a"
    assert (
        store.apply(fetched(claimed, after), [entry("a", "late")], [], ok("a", 1), after, "dead")
        == []
    )
    assert other.apply(fetched(again, after), [entry("a", "1")], [], ok("a", 1), after, "w2") != []
    assert [e.key for e in other.list_entries(everything())] == ["1"]
    assert len(other.fetch_history("a")) == 1


def test_a_late_result_after_the_takeover_finished_is_fenced_off(
    store: SQLStore, other: SQLStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker whose lease expired and was taken over writes nothing, even once the taker has
    finished and released the lease: no entries, no second fetch-log line, the taker's schedule
    kept; the write is logged as lease_lost and counted."""
    store.sync_sources([src("a")], T0)
    [slow] = store.claim_due(T0, 10, "slow", LEASE)
    after = T0 + timedelta(seconds=LEASE + 1)
    [fast] = other.claim_due(after, 10, "fast", LEASE)
    other.apply(fetched(fast, after), [entry("a", "1")], [], ok("a", 1), after, "fast")
    late = fetched(slow, after, interval=60)
    assert (
        store.apply(late, [entry("a", "1"), entry("a", "2")], [], ok("a", 2), after, "slow") == []
    )
    store.apply_quiet([(late, ok("a"))], after, "slow")
    assert [e.key for e in store.list_entries(everything())] == ["1"]
    assert len(store.fetch_history("a")) == 1
    state = store.get_state("a")
    assert state is not None and state.next_fetch_at == after + timedelta(seconds=1800)
    assert state.fetch_count == 1
    assert store.leases_lost == 2 and other.leases_lost == 0
    assert other.lease_takeovers == 1 and store.lease_takeovers == 0
    lost = [r for r in caplog.records if "event=lease_lost" in r.getMessage()]
    assert len(lost) == 2 and all(r.levelname == "WARNING" for r in lost)


def test_a_claim_carries_a_fencing_number_that_grows_with_every_claim(store: SQLStore) -> None:
    """Each claim of a source hands out a larger fencing number; a write under the current
    claim is accepted, also when the same owner claimed the source again meanwhile only the
    newer claim's write counts."""
    store.sync_sources([src("a")], T0)
    [first] = store.claim_due(T0, 10, "w", LEASE)
    after = T0 + timedelta(seconds=LEASE + 1)
    [second] = store.claim_due(after, 10, "w", LEASE)
    assert first.lease_token is not None and second.lease_token is not None
    assert second.lease_token > first.lease_token
    assert store.apply(fetched(first, after), [entry("a", "old")], [], ok("a", 1), after, "w") == []
    assert (
        store.apply(fetched(second, after), [entry("a", "new")], [], ok("a", 1), after, "w") != []
    )
    assert [e.key for e in store.list_entries(everything())] == ["new"]


def test_concurrent_claimers_never_share_a_source(store: SQLStore, store_url: str) -> None:
    """Four handles claiming at once in small batches get disjoint sets that cover every source."""
    store.sync_sources([src(f"s{i:03}") for i in range(200)], T0)
    handles = [SQLStore(store_url, T0) for _ in range(4)]
    got: dict[int, list[str]] = {i: [] for i in range(len(handles))}
    barrier = threading.Barrier(len(handles))

    def work(i: int) -> None:
        barrier.wait()
        while batch := handles[i].claim_due(T0, 7, f"w{i}", LEASE):
            got[i] += [s.source_id for s in batch]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(handles))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    [h.close() for h in handles]
    claimed = [sid for ids in got.values() for sid in ids]
    assert len(claimed) == len(set(claimed)) == 200


def test_release_all_gives_back_only_that_owners_leases(store: SQLStore) -> None:
    """On a clean stop a worker releases its own leases (due again at once), not other workers'."""
    store.sync_sources([src("a"), src("b")], T0)
    store.claim_due(T0, 1, "w1", LEASE)
    store.claim_due(T0, 1, "w2", LEASE)
    store.release_all("w1")
    [back] = store.claim_due(T0, 10, "w3", LEASE)
    assert store.claim_due(T0, 10, "w4", LEASE) == []
    assert back.source_id in {"a", "b"}


# --- entries -------------------------------------------------------------------------------------


def test_apply_stores_new_and_changed_entries_and_logs_the_fetch(store: SQLStore) -> None:
    """New entries get ids, a changed entry keeps its id with the new content, the source's state
    is written with its lease released, and the fetch log gains a line."""
    store.sync_sources([src("a")], T0)
    [state] = store.claim_due(T0, 10, "w", LEASE)
    ids = store.apply(
        fetched(state, T0), [entry("a", "1"), entry("a", "2")], [], ok("a", 2), T0, "w"
    )
    assert len(ids) == 2 and store.known("a", ["1", "2", "3"]) == {
        "1": KnownEntry(ids[0], "h-1-body", None),
        "2": KnownEntry(ids[1], "h-2-body", None),
    }
    later = T0 + timedelta(hours=1)
    [state] = store.claim_due(later, 10, "w", LEASE)
    changed = replace(entry("a", "2", later, content="edited"), id=ids[1])
    store.apply(fetched(state, later), [], [changed], ok("a"), later, "w")
    got = store.get_entry(ids[1])
    assert got is not None and got.content == "edited" and got.changed_at == later
    state_after = store.get_state("a")
    assert state_after is not None and state_after.fetch_count == 2
    assert state_after.next_fetch_at == later + timedelta(seconds=1800)
    assert [h.added for h in store.fetch_history("a")] == [0, 2]
    assert store.claim_due(later + timedelta(hours=1), 10, "w2", LEASE) != []


def test_selection_filters_by_source_category_and_text(store: SQLStore) -> None:
    """Selections pick by source, excluded source, category prefix (whole path parts only) and
    text in the title or content."""
    store.sync_sources([src("a"), src("b"), src("c")], T0)
    add(store, "a", [entry("a", "1", category=("Tech", "News"), title="Rust 2.0 released")])
    add(store, "b", [entry("b", "1", category=("Tech",), content="about python")])
    add(store, "c", [entry("c", "1", category=("Technology",))])

    def keys(**kw: object) -> set[str]:
        return {f"{e.source_id}/{e.key}" for e in store.list_entries(everything(**kw))}

    assert keys(source_ids=("a", "b")) == {"a/1", "b/1"}
    assert keys(exclude_source_ids=("a",)) == {"b/1", "c/1"}
    assert keys(category_prefix=("Tech",)) == {"a/1", "b/1"}
    assert keys(category_prefix=("Tech", "News")) == {"a/1"}
    assert keys(query="rust") == {"a/1"} and keys(query="PYTHON") == {"b/1"}


def test_a_story_is_in_every_category_any_of_its_copies_is_filed_under(store: SQLStore) -> None:
    """The merged story shows in the category of a later copy; rule tags (AI, a/b) are
    categories too; a path selects its tags and sub-paths, whole parts only."""
    store.sync_sources([src("a"), src("b"), src("c")], T0)
    [first] = add(store, "a", [entry("a", "1", category=("World",))])
    add(store, "b", [entry("b", "1", category=("Tech", "News"), duplicate_of=first)])
    tagged = replace(entry("c", "1"), categories=("AI", "Tech/Gadgets", "100% sure_"))
    add(store, "c", [tagged, replace(entry("c", "2"), categories=("AIR",))])

    def keys(**kw: object) -> set[str]:
        return {f"{e.source_id}/{e.key}" for e in store.list_entries(everything(**kw))}

    assert keys(category_prefix=("Tech",)) == {"a/1", "c/1"}  # the story, under b's path
    assert keys(category_prefix=("Tech", "News")) == {"a/1"}
    assert keys(category_prefix=("World",)) == {"a/1"}
    assert keys(category_prefix=("Tech",), merge_duplicates=False) == {"b/1", "c/1"}
    assert keys(category_prefix=("AI",)) == {"c/1"}
    assert keys(category_prefix=("Tech", "Gadgets")) == {"c/1"}
    assert (
        keys(category_prefix=("100% sure_",)) == {"c/1"} and keys(category_prefix=("100",)) == set()
    )
    assert keys(category_prefixes=(("AI",), ("World",))) == {"a/1", "c/1"}


def test_the_tag_authority_is_recorded_once_per_store(store: SQLStore, store_url: str) -> None:
    """The first proposal is kept: later proposals, and other processes, get the recorded one."""
    assert store.tag_authority("feeds.example.org") == "feeds.example.org"
    assert store.tag_authority("proxy.example.net") == "feeds.example.org"
    again = SQLStore(store_url, T0 + timedelta(days=1))
    try:
        assert again.tag_authority("other.example.com") == "feeds.example.org"
    finally:
        again.close()


def test_duplicates_are_merged_unless_asked_not_to(store: SQLStore) -> None:
    """An entry marked as a duplicate of another is left out of merged selections only."""
    store.sync_sources([src("a"), src("b")], T0)
    [original] = add(store, "a", [entry("a", "1")])
    add(store, "b", [entry("b", "1", duplicate_of=original)])
    assert [e.source_id for e in store.list_entries(everything())] == ["a"]
    assert len(store.list_entries(everything(merge_duplicates=False))) == 2


def test_pages_walked_with_the_cursor_cover_every_entry_once(store: SQLStore) -> None:
    """Newest first; pages chained by the (sort time, id) cursor of the last entry cover every
    entry exactly once, entries sharing a timestamp included."""
    store.sync_sources([src("a")], T0)
    items = [entry("a", f"{i:02}", T0 - timedelta(minutes=i // 3)) for i in range(25)]
    add(store, "a", items)
    seen: list[str] = []
    before = None
    while page := store.list_entries(Selection(limit=4, before=before)):
        seen += [e.key for e in page]
        last = store.get_entry(page[-1].id or 0)
        assert last is not None and last.first_seen is not None
        before = (min(last.published or last.first_seen, last.first_seen), last.id or 0)
    assert sorted(seen) == sorted(e.key for e in items) and len(seen) == 25
    first = store.list_entries(Selection(limit=3))
    assert first[0].key in {"00", "01", "02"}


# --- caches across processes ---------------------------------------------------------------------


def test_last_change_sees_another_processs_late_update(store: SQLStore, other: SQLStore) -> None:
    """An update written by another process with an older change time (its clock lags, or it
    committed late) still changes the stamp, and the stamp is stable when nothing changed."""
    store.sync_sources([src("a")], T0)
    [eid] = add(store, "a", [entry("a", "1", T0 + timedelta(hours=1))])
    add(store, "a", [entry("a", "2", T0 + timedelta(hours=2))])
    before = store.last_change(everything())
    assert before == store.last_change(everything())
    assert before.changed_at == T0 + timedelta(hours=2) and before.total == 2
    behind = T0 + timedelta(minutes=30)
    state = other.get_state("a")
    assert state is not None
    edited = replace(entry("a", "1", behind, content="edited"), id=eid)
    other.apply(state, [], [edited], ok("a"), behind, None)
    after = store.last_change(everything())
    assert after.changed_at == before.changed_at and after.total == before.total
    assert after != before


def test_a_feed_cached_in_one_process_shows_another_processs_update(
    store: SQLStore, other: SQLStore
) -> None:
    """The web process's rendered-feed cache is refreshed by a worker's update that carries an
    older change time, and served from cache while nothing changes."""
    settings = config.parse('[[sources]]\nid = "a"\nurl = "http://origin.test/a"\n')
    sources = {s.id: s for s in settings.source_records()}
    feeds = FeedService(settings, store, lambda: sources)
    store.sync_sources(list(sources.values()), T0)
    [eid] = add(store, "a", [entry("a", "1", T0 + timedelta(hours=1), title="First title")])
    first = feeds.render(feeds.all(), "json")
    assert feeds.render(feeds.all(), "json") is first
    state = other.get_state("a")
    assert state is not None
    edited = replace(entry("a", "1", T0, title="Second title"), id=eid)
    other.apply(state, [], [edited], ok("a"), T0, None)
    assert b"Second title" in feeds.render(feeds.all(), "json").body


# --- retention and tombstones --------------------------------------------------------------------


def test_prune_keeps_the_newest_per_source_and_leaves_tombstones(store: SQLStore) -> None:
    """At most N entries per source survive, the newest ones; each removed key is tombstoned so
    a later fetch never stores it again; the cache stamp changes."""
    store.sync_sources([src("a"), src("b")], T0)
    add(store, "a", [entry("a", f"{i}", T0 - timedelta(days=i)) for i in range(5)])
    add(store, "b", [entry("b", "0")])
    stamp = store.last_change(everything())
    result = store.prune(T0, max_per_source=2, max_age=None)
    assert (result.removed, result.sources) == (3, 1)
    assert sorted(e.key for e in store.list_entries(everything(source_ids=("a",)))) == ["0", "1"]
    assert store.tombstoned("a", ["0", "1", "2", "3", "4"]) == {"2", "3", "4"}
    assert store.last_change(everything()) != stamp
    assert store.prune(T0, max_per_source=2, max_age=None).removed == 0


def test_prune_by_age_and_nothing_without_limits(store: SQLStore) -> None:
    """Entries older than the age go (tombstoned); with neither limit set nothing is removed."""
    store.sync_sources([src("a")], T0)
    add(store, "a", [entry("a", f"{d}", T0 - timedelta(days=d)) for d in (0, 10, 40, 400)])
    assert store.prune(T0, None, None).removed == 0
    assert store.prune(T0, None, 30 * 86400).removed == 2
    assert sorted(e.key for e in store.list_entries(everything())) == ["0", "10"]
    assert store.tombstoned("a", ["40", "400", "0"]) == {"40", "400"}


def test_pruning_an_original_frees_its_duplicates(store: SQLStore) -> None:
    """An entry merged into one that retention removes shows up in merged feeds again."""
    store.sync_sources([src("a"), src("b")], T0)
    [old] = add(store, "a", [entry("a", "1", T0 - timedelta(days=60))])
    add(store, "b", [entry("b", "1", T0, duplicate_of=old)])
    assert [e.source_id for e in store.list_entries(everything())] == ["a"]
    store.prune(T0, None, 30 * 86400)
    [left] = store.list_entries(everything())
    assert left.source_id == "b" and left.duplicate_of is None


def test_pruning_a_primary_keeps_its_copies_one_cluster(store: SQLStore) -> None:
    """When retention removes a cluster's primary, the oldest surviving copy becomes the primary
    and the other copies point at it: merged feeds still carry the story once."""
    store.sync_sources([src("a"), src("b"), src("c")], T0)
    [old] = add(store, "a", [entry("a", "1", T0 - timedelta(days=60))])
    [first] = add(store, "b", [entry("b", "1", T0, duplicate_of=old)])
    [second] = add(store, "c", [entry("c", "1", T0, duplicate_of=old)])
    store.prune(T0, None, 30 * 86400)
    [left] = store.list_entries(everything())
    assert left.id == first and left.duplicate_of is None
    copy = store.get_entry(second)
    assert copy is not None and copy.duplicate_of == first


def test_tombstones_survive_and_prune_is_idempotent(store: SQLStore) -> None:
    """Pruning twice removes nothing more and keeps one tombstone per removed key."""
    store.sync_sources([src("a")], T0)
    add(store, "a", [entry("a", f"{i}", T0 - timedelta(days=i)) for i in range(3)])
    store.prune(T0, 1, None)
    store.prune(T0 + timedelta(hours=1), 1, None)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tombstones")).scalar_one() == 2
        assert conn.execute(select(func.count()).select_from(entries)).scalar_one() == 1


def test_open_store_reports_an_unreachable_database() -> None:
    """A PostgreSQL URL nobody answers at is a StoreError naming the place, password hidden."""
    from aggregator.errors import StoreError

    with pytest.raises(StoreError) as caught:
        open_store("postgresql://me:secret@127.0.0.1:1/nowhere?connect_timeout=2", T0)
    assert "127.0.0.1:1/nowhere" in str(caught.value) and "secret" not in str(caught.value)


# --- duplicate candidates ------------------------------------------------------------------------


def test_duplicate_candidates_match_by_hash_url_or_band_newest_first(store: SQLStore) -> None:
    """Candidates for several new entries at once: each gets the other sources' entries sharing
    its content hash or canonical URL (always), then those sharing a band key, newest first, up
    to CANDIDATE_LIMIT in all (the cap taken over all of an entry's matches, not per band); its
    own source never counts."""
    from aggregator.store.identity import CANDIDATE_LIMIT

    store.sync_sources([src("a"), src("b"), src("c")], T0)

    def e(
        sid: str,
        key: str,
        *,
        url: str | None = None,
        h: str | None = None,
        bands: tuple[int, ...] = (),
    ) -> Entry:
        return replace(
            entry(sid, key), canonical_url=url, content_hash=h or f"h-{sid}-{key}", band_keys=bands
        )

    crowd = [e("b", f"c{i}", bands=(7,)) for i in range(CANDIDATE_LIMIT + 5)]
    ids_b = add(store, "b", [e("b", "u", url="http://x/1"), e("b", "h", h="same"), *crowd])
    ids_c = add(store, "c", [e("c", "band", bands=(1, 2)), e("c", "c-crowd", bands=(7, 8))])
    add(store, "a", [e("a", "mine", url="http://x/1", h="same", bands=(1,))])  # own source
    found = store.duplicate_candidates_many(
        "a",
        [
            ("http://x/1", "none", ()),  # URL only
            (None, "same", (2, 99)),  # hash and a band of c's entry
            (None, "none", (7,)),  # the crowded band alone
            (None, "none", (8, 7)),  # crowded band plus a rare one: the rare match is newest
            (None, "none", (12345,)),  # nothing
        ],
    )
    ids = [[c.entry_id for c in row] for row in found]
    assert ids[0] == [ids_b[0]]
    assert ids[1] == [ids_b[1], ids_c[0]]  # the exact match first, then the band match
    crowd_ids = sorted(ids_b[2:] + [ids_c[1]], reverse=True)
    assert ids[2] == crowd_ids[:CANDIDATE_LIMIT] and len(ids[2]) == CANDIDATE_LIMIT
    assert ids[3] == crowd_ids[:CANDIDATE_LIMIT]
    assert ids[4] == []
    [single] = store.duplicate_candidates_many("a", [(None, "same", (2,))])
    assert [c.entry_id for c in single] == ids[1]
    assert {c.source_id for row in found for c in row} <= {"b", "c"}
    # an exact match (URL or hash) is never crowded out by newer band matches
    [url_and_crowd] = store.duplicate_candidates_many("a", [("http://x/1", "same", (7,))])
    kept = [c.entry_id for c in url_and_crowd]
    assert kept[:2] == [ids_b[1], ids_b[0]] and len(kept) == CANDIDATE_LIMIT
    assert kept[2:] == crowd_ids[: CANDIDATE_LIMIT - 2]


def test_quiet_fetches_are_stored_together_under_the_lease_rule(store: SQLStore) -> None:
    """apply_quiet writes several entry-less fetches in one call: each source's state and a
    fetch-log line, except for a source whose lease another worker holds."""
    store.sync_sources([src("a"), src("b"), src("c")], T0)
    mine = store.claim_due(T0, 2, "me", LEASE)
    theirs = store.claim_due(T0, 10, "them", LEASE)
    assert len(mine) == 2 and len(theirs) == 1
    later = T0 + timedelta(minutes=1)
    not_modified = [
        (
            replace(fetched(s, later), not_modified_count=s.not_modified_count + 1),
            FetchOutcome(source_id=s.source_id, status=FetchStatus.NOT_MODIFIED),
        )
        for s in [*mine, *theirs]
    ]
    store.apply_quiet(not_modified, later, "me")
    for s in mine:
        state = store.get_state(s.source_id)
        assert state is not None and state.not_modified_count == 1
        assert [h.status for h in store.fetch_history(s.source_id)] == ["not_modified"]
    [lost] = theirs
    state = store.get_state(lost.source_id)
    assert state is not None and state.not_modified_count == 0
    assert store.fetch_history(lost.source_id) == []


def test_lost_leases_and_takeovers_of_the_store_are_exposed_as_metrics(
    store: SQLStore, other: SQLStore
) -> None:
    """aggregator_lease_lost_total and aggregator_lease_takeovers_total include what the
    process's store counted (the store itself does not import the metrics module)."""
    from aggregator.http.metrics import Metrics, events

    store.sync_sources([src("a")], T0)
    [slow] = store.claim_due(T0, 10, "slow", LEASE)
    after = T0 + timedelta(seconds=LEASE + 1)
    store.claim_due(after, 10, "fast", LEASE)
    store.apply(fetched(slow, after), [], [], ok("a"), after, "slow")
    text = Metrics(store, per_source=False).exposition().decode()
    base = events()
    lost = next(
        line for line in text.splitlines() if line.startswith("aggregator_lease_lost_total")
    )
    taken = next(
        line for line in text.splitlines() if line.startswith("aggregator_lease_takeovers_total")
    )
    assert float(lost.rsplit(" ", 1)[1]) == base["lease_lost"] + 1
    assert float(taken.rsplit(" ", 1)[1]) == base["lease_takeovers"] + 1


def test_processes_opening_a_new_sqlite_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Several processes creating one SQLite database at the same moment (a worker and a web
    process started together) migrate it one after the other: none fails on a duplicate
    schema version."""
    import subprocess
    import sys

    db = tmp_path / "new.db"
    code = (
        "import sys; from datetime import UTC, datetime; from aggregator.store import open_store; "
        f"open_store('sqlite:///{db}', datetime.now(UTC)).close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    assert SQLStore(f"sqlite:///{db}", T0).version == LATEST
