"""The pipeline's pure decisions (pipeline/decide.py): values in, values out, no store or server."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from aggregator.config.settings import DedupeSettings, ScheduleSettings
from aggregator.models import (
    Entry,
    FetchOutcome,
    FetchResult,
    FetchStatus,
    Identity,
    Item,
    Source,
    SourceState,
)
from aggregator.pipeline import decide
from aggregator.store.records import KnownEntry

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEDULE = ScheduleSettings()
SOURCE = Source(id="s", url="https://a.example/feed", interval=1800)
STATE = SourceState(
    source_id="s",
    url="https://a.example/feed",
    body_hash="old",
    fetch_count=3,
    consecutive_failures=2,
    last_error="boom",
)
BODY = b"<rss><channel><title>T</title></channel></rss>"


def identified(key: str, url: str | None = None, digest: str = "h") -> decide.Identified:
    return Identity("s", key, url, digest), Item(guid=key, link=url, title=key)


def entry(source: str, key: str, url: str, **fields: object) -> Entry:
    return Entry(
        source,
        key,
        key,
        url,
        "<p>x</p>",
        None,
        None,
        None,
        None,
        content_hash=f"h-{key}",
        canonical_url=url,
        **fields,
    )  # type: ignore[arg-type]


def test_a_304_or_the_same_body_is_unchanged() -> None:
    """A 304 and a body hashing as the stored one are unchanged; another body is not."""
    same = FetchResult(url=STATE.url, status_code=200, content=BODY)
    state = SourceState(source_id="s", url=STATE.url, body_hash=decide.body_hash(same))
    assert decide.unchanged(state, FetchResult(url=STATE.url, status_code=304))
    assert decide.unchanged(state, same)
    assert not decide.unchanged(
        state, FetchResult(url=STATE.url, status_code=200, content=b"<rss/>")
    )


def test_offline_only_when_every_fetch_failed_at_the_network_across_hosts() -> None:
    """Network errors from two hosts are the machine's; one host, one answer or one source are not."""
    down = [FetchResult(url=f"https://{h}/f", status_code=None, error="refused") for h in "ab"]
    assert decide.looks_offline(down)
    assert not decide.looks_offline(down[:1])
    assert not decide.looks_offline(
        [down[0], FetchResult(url="https://a/g", status_code=None, error="x")]
    )
    assert not decide.looks_offline(
        [down[0], FetchResult(url="https://b/f", status_code=500, error="5xx")]
    )


def test_fresh_keys_are_the_new_and_the_changed() -> None:
    """An unknown key is new; a known key is fresh when its hash or canonical URL moved."""
    keyed = {k: identified(k, f"https://a.example/{k}", "h") for k in "abcd"}
    known = {
        "a": KnownEntry(1, "h", "https://a.example/a"),  # as stored
        "b": KnownEntry(2, "other", "https://a.example/b"),  # content changed
        "c": KnownEntry(3, "h", "https://a.example/moved"),  # link moved
    }
    assert decide.fresh(keyed, known) == {"b", "c", "d"}


def test_rekeyed_items_take_the_keys_the_source_had() -> None:
    """When most fetched keys are new and their URLs match stored entries, they map to the old keys
    and are renamed; when most keys are known, nothing is re-keyed."""
    keyed = {
        f"new-{i}": identified(f"new-{i}", f"https://a.example/{i}", f"x{i}") for i in range(3)
    }
    stored = [
        Identity("s", f"old-{i}", f"https://a.example/{i}", f"h{i}", entry_id=i) for i in range(3)
    ]
    mapping = decide.rekeyed(keyed, {}, stored, lambda key: None)
    assert mapping == {f"new-{i}": f"old-{i}" for i in range(3)}
    renamed = decide.renamed(keyed, mapping)
    assert sorted(renamed) == ["old-0", "old-1", "old-2"]
    assert all(identity.key == key for key, (identity, _) in renamed.items())
    mostly_known = {f"new-{i}": KnownEntry(i, f"x{i}", f"https://a.example/{i}") for i in range(2)}
    assert decide.rekeyed(keyed, mostly_known, stored, lambda key: None) == {}


def test_duplicates_mark_copies_of_other_sources_and_count_them() -> None:
    """A new entry sharing a canonical URL with another source's entry joins its cluster."""
    new = [
        entry("s", "a", "https://news.example/story"),
        entry("s", "b", "https://news.example/other"),
    ]
    stored = Identity("t", "x", "https://news.example/story", "h-x", entry_id=7, duplicate_of=5)
    out, merged = decide.duplicates(new, [[stored], []], DedupeSettings())
    assert merged == 1
    assert (out[0].duplicate_of, out[0].merge_reason) == (5, "same canonical URL as entry 7")
    assert out[1].duplicate_of is None


def test_success_resets_failures_and_remembers_validators() -> None:
    """After a new document: failures cleared, validators and body hash kept, counts advanced."""
    result = FetchResult(url=STATE.url, status_code=200, content=BODY, headers={"etag": '"v2"'})
    outcome = FetchOutcome(
        source_id="s", status=FetchStatus.OK, next_fetch_at=T0 + timedelta(hours=1)
    )
    state = decide.succeeded(STATE, result, outcome, None, now=T0, redirects_needed=3)
    assert (state.consecutive_failures, state.last_error, state.etag) == (0, None, '"v2"')
    assert state.body_hash == decide.body_hash(result) and state.fetch_count == 4
    assert (state.last_success_at, state.next_fetch_at) == (T0, outcome.next_fetch_at)


def test_not_modified_keeps_an_undated_note_and_counts_the_304() -> None:
    """A 304 keeps the stored body hash and an undated note (the same document), not other errors."""
    noted = SourceState(
        source_id="s", url=STATE.url, body_hash="old", last_error=decide.undated_note(["bad date"])
    )
    result = FetchResult(url=STATE.url, status_code=304)
    outcome, state = decide.not_modified(
        SOURCE, noted, result, now=T0, settings=SCHEDULE, rng=random.Random(1), redirects_needed=3
    )
    assert outcome.status is FetchStatus.NOT_MODIFIED and outcome.next_fetch_at is not None
    assert state.body_hash == "old" and state.not_modified_count == 1
    assert decide.is_undated_note(state.last_error)
    _, plain = decide.not_modified(
        SOURCE, STATE, result, now=T0, settings=SCHEDULE, rng=random.Random(1), redirects_needed=3
    )
    assert plain.last_error is None


def test_a_failure_counts_and_backs_off_but_not_when_offline() -> None:
    """A failed fetch adds a failure and backs off; offline it is not counted and is retried
    after backoff_base; a 410 is gone for good."""
    result = FetchResult(url=STATE.url, status_code=500, error="HTTP 500")
    outcome, state = decide.failed(
        SOURCE, STATE, result, "HTTP 500", False, now=T0, settings=SCHEDULE, rng=random.Random(1)
    )
    assert (outcome.status, state.consecutive_failures, state.last_error) == (
        FetchStatus.ERROR,
        3,
        "HTTP 500",
    )
    assert state.next_fetch_at is not None and state.next_fetch_at > T0
    outcome, state = decide.failed(
        SOURCE, STATE, result, "refused", True, now=T0, settings=SCHEDULE, rng=random.Random(1)
    )
    assert state.consecutive_failures == 2 and state.last_status == "offline"
    assert state.next_fetch_at == T0 + timedelta(seconds=SCHEDULE.backoff_base)
    assert outcome.error == "offline (every source failed this round; not counted): refused"
    gone = FetchResult(url=STATE.url, status_code=410, error="HTTP 410")
    outcome, state = decide.failed(
        SOURCE, STATE, gone, "HTTP 410", False, now=T0, settings=SCHEDULE, rng=random.Random(1)
    )
    assert outcome.status is FetchStatus.GONE and state.next_fetch_at is None
