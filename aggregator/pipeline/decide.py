"""The pipeline's decisions, apart from its orchestration: values in, values out.

update.py runs the stages, reads and writes the store and logs; every choice it makes about what
a fetch means is one of these functions of their arguments (the clock's ``now``, the settings and
the random source passed in), so each is tested directly, without a store, a server or a pool:

- ``unchanged``: the fetched document is the one already handled (a 304, or the same body).
- ``looks_offline``: a round's failures are the machine's, not its sources'.
- ``fresh``: which identified items are new, or changed (``changed``) since they were stored.
- ``rekey_wanted``, ``rekeyed``: the items under the keys the source already had them by, when its publisher
  changed its id scheme (``dedupe.detect_rekeyed`` decides which).
- ``duplicates``: new entries marked as copies of other sources' stories
  (``dedupe.find_duplicate`` decides each).
- ``succeeded``, ``not_modified``, ``failed``: the source's outcome and next state after a fetch.

Does not own: the stages themselves (workers.py, the adapters, categorize.py), reading or
writing the store, or logging (update.py logs what these decide).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from .. import schedule
from ..config.settings import DedupeSettings, ScheduleSettings
from ..dedupe import matching as dedupe
from ..models import (
    Entry,
    FeedHints,
    FetchOutcome,
    FetchResult,
    FetchStatus,
    Identity,
    Item,
    ParsedFeed,
    Source,
    SourceState,
)
from ..store.records import KnownEntry

# An item of a fetched document with its identity within the source (workers.identify).
Identified = tuple[Identity, Item]
# What the store knows of a source's entries by key: (entry id, content hash, canonical URL).
Known = Mapping[str, KnownEntry]


# --- which items ----------------------------------------------------------------------------------


def unchanged(state: SourceState, result: FetchResult) -> bool:
    """The document is the one already handled: a 304, or the same body as last time."""
    return result.not_modified or body_hash(result) == state.body_hash


def looks_offline(results: Sequence[FetchResult]) -> bool:
    """Every source of a round failed at the network level, across more than one host."""
    if len(results) < 2:
        return False
    if any(r.error is None or r.status_code is not None for r in results):
        return False
    hosts = {r.url.split("/")[2] if "://" in r.url else r.url for r in results}
    return len(hosts) > 1


def changed(stored_hash: str, stored_url: str | None, item: Identity) -> bool:
    """Whether a fetched item differs from its stored entry (same key): its content hash, or
    its canonical URL (a link that moved, tracking parameters aside, is served as it is now)."""
    return stored_hash != item.content_hash or stored_url != item.canonical_url


def fresh(keyed: Mapping[str, Identified], known: Known) -> set[str]:
    """Keys of the items that are new to the store or changed since it stored them."""
    return {
        k
        for k, (identity, _) in keyed.items()
        if k not in known or changed(known[k].content_hash, known[k].canonical_url, identity)
    }


def rekey_wanted(keyed: Mapping[str, Identified], known: Known) -> bool:
    """Most fetched keys are new: the publisher may have changed its id scheme (worth reading
    the source's stored identities for ``rekeyed``)."""
    return bool(keyed) and len(known) <= len(keyed) / 2


def rekeyed(
    keyed: Mapping[str, Identified],
    known: Known,
    stored: Sequence[Identity],
    fingerprint: Callable[[str], int | None],
) -> dict[str, str]:
    """Fetched key -> the key the source already has the same entry under, when most fetched
    keys are new (a publisher that changed its id scheme); empty otherwise. ``stored`` is the
    source's stored identities, newest first; ``fingerprint`` gives a fetched key's fingerprint,
    for items no URL or hash recognizes."""
    if not rekey_wanted(keyed, known) or not stored:
        return {}
    identities = [identity for identity, _ in keyed.values()]
    return dedupe.detect_rekeyed(identities, stored, fingerprint=fingerprint)


def renamed(keyed: Mapping[str, Identified], mapping: Mapping[str, str]) -> dict[str, Identified]:
    """The items by key with ``mapping``'s keys replaced by the old keys they map to."""
    out: dict[str, Identified] = {}
    for key, (identity, item) in keyed.items():
        new_key = mapping.get(key, key)
        out[new_key] = (replace(identity, key=new_key), item)
    return out


def duplicates(
    new: Sequence[Entry], candidates: Sequence[Sequence[Identity]], settings: DedupeSettings
) -> tuple[list[Entry], int]:
    """New entries (of one source) with ``duplicate_of`` and ``merge_reason`` set where another
    source already has the story, given each one's candidates; and how many were merged."""
    merged, out = 0, []
    for e, others in zip(new, candidates):
        match = dedupe.find_duplicate(e.identity, others, settings)
        if match is not None:
            e = replace(e, duplicate_of=match.primary_id, merge_reason=match.describe())
            merged += 1
        out.append(e)
    return out, merged


# --- the source's next state ----------------------------------------------------------------------


def next_fetch(
    source: Source,
    status: FetchStatus,
    failures: int,
    result: FetchResult | None,
    hints: FeedHints | None,
    *,
    now: datetime,
    settings: ScheduleSettings,
    rng: random.Random,
) -> datetime | None:
    return schedule.next_fetch_at(
        now=now,
        interval=source.interval,
        status=status,
        failures=failures,
        result=result,
        hints=hints,
        settings=settings,
        rng=rng,
    )


def succeeded(
    state: SourceState,
    result: FetchResult,
    outcome: FetchOutcome,
    parsed: ParsedFeed | None,
    *,
    now: datetime,
    redirects_needed: int,
) -> SourceState:
    """The source's state after a fetch that worked (a new document or a 304)."""
    url, target, streak = schedule.track_redirect(
        current_url=state.url,
        result=result,
        target=state.redirect_target,
        streak=state.redirect_streak,
        needed=redirects_needed,
    )
    return replace(
        state,
        url=url,
        redirect_target=target,
        redirect_streak=streak,
        title=(parsed.title if parsed and parsed.title else state.title),
        site_link=(parsed.link if parsed and parsed.link else state.site_link),
        etag=result.headers.get("etag") or (state.etag if result.not_modified else None),
        last_modified=result.headers.get("last-modified")
        or (state.last_modified if result.not_modified else None),
        body_hash=state.body_hash if result.not_modified else body_hash(result),
        next_fetch_at=outcome.next_fetch_at,
        last_fetch_at=now,
        last_success_at=now,
        last_status=outcome.status.value,
        last_error=None,
        consecutive_failures=0,
        fetch_count=state.fetch_count + 1,
        not_modified_count=state.not_modified_count
        + (1 if outcome.status is FetchStatus.NOT_MODIFIED else 0),
    )


def not_modified(
    source: Source,
    state: SourceState,
    result: FetchResult,
    *,
    now: datetime,
    settings: ScheduleSettings,
    rng: random.Random,
    redirects_needed: int,
) -> tuple[FetchOutcome, SourceState]:
    """Outcome and state after a fetch of the document already handled (``unchanged``)."""
    outcome = FetchOutcome(
        source_id=source.id,
        status=FetchStatus.NOT_MODIFIED,
        next_fetch_at=next_fetch(
            source, FetchStatus.NOT_MODIFIED, 0, result, None, now=now, settings=settings, rng=rng
        ),
        elapsed=result.elapsed,
        bytes=len(result.content),
    )
    kept = state.last_error if is_undated_note(state.last_error) else None
    new_state = succeeded(state, result, outcome, None, now=now, redirects_needed=redirects_needed)
    return outcome, replace(new_state, last_error=kept)  # the same document: the same note


def failed(
    source: Source,
    state: SourceState,
    result: FetchResult,
    error: str,
    offline: bool,
    *,
    now: datetime,
    settings: ScheduleSettings,
    rng: random.Random,
) -> tuple[FetchOutcome, SourceState]:
    """Outcome and state after a failed fetch; a failure while offline is not counted and is
    retried after ``backoff_base``."""
    gone = result.status_code == 410
    status = FetchStatus.GONE if gone else FetchStatus.ERROR
    failures = state.consecutive_failures + (0 if offline else 1)
    if offline:
        when: datetime | None = now + timedelta(seconds=settings.backoff_base)
        error = f"offline (every source failed this round; not counted): {error}"
    else:
        when = next_fetch(
            source, status, failures, result, None, now=now, settings=settings, rng=rng
        )
    outcome = FetchOutcome(
        source_id=source.id,
        status=status,
        error=error,
        next_fetch_at=when,
        elapsed=result.elapsed,
        bytes=len(result.content),
    )
    new_state = replace(
        state,
        next_fetch_at=when,
        last_fetch_at=now,
        last_status="offline" if offline else status.value,
        last_error=error,
        consecutive_failures=failures,
        fetch_count=state.fetch_count + 1,
    )
    return outcome, new_state


def body_hash(result: FetchResult) -> str | None:
    return hashlib.sha256(result.content).hexdigest() if result.content else None


UNDATED = "undated: "


def undated_note(reasons: Sequence[str]) -> str:
    """A successful fetch's note (its source's last error) on items whose date did not parse."""
    n = len(reasons)
    what = "1 item's date" if n == 1 else f"{n} items' dates"
    return f"{UNDATED}{what} did not parse (stored undated, sorted below dated ones): {reasons[0]}"


def is_undated_note(text: str | None) -> bool:
    return bool(text) and str(text).startswith(UNDATED)
