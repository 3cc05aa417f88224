"""The update pipeline: the one place that knows the order of the stages.

For each claimed source::

    fetch (conditional GET) ─► unchanged? (304, same body hash) ─► adapter.parse ─► identify
    (keys, tombstones, re-keyed ids) ─► only new/changed items: adapter.enrich ─► content.clean
    ─► categorize (rules may drop) ─► dedupe across sources ─► store.apply ─► schedule next fetch

Every failure of one source becomes a ``FetchOutcome`` value, so one broken source never stops a
batch. An unexpected exception in any stage of one source (a bug, or input that reaches one) is
that source's failure too: status ``error``, ``last_error`` ``internal error (ValueError: …)``,
backed off like any failure, its traceback logged once at ERROR; the other sources go on. A
source's fetch and processing are bounded by its budget (90% of the lease): past it the source
fails with ``took too long``, so no source keeps its lease longer than the lease time. When every
source of a round fails with a network error the machine is offline, and the round is not counted
against the sources.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ..categorize import Categorizer, Decision, Fields
from ..clock import Clock
from ..config.settings import Settings
from ..content import clean as content
from ..content import urls
from ..dedupe import fingerprint
from ..errors import AggregatorError
from ..logs import kv
from ..models import (
    DetailAttempt,
    Drop,
    Entry,
    FeedHints,
    FetchOutcome,
    FetchResult,
    FetchStatus,
    Identity,
    Item,
    ParsedFeed,
    RequestOptions,
    Source,
    SourceState,
)
from ..sources import get_adapter
from ..store import CandidateLookup, Store
from . import decide, details
from .decide import Identified, Known, undated_note
from .workers import RELEASE_AFTER, Offload, Prepared, release_memory

log = logging.getLogger("aggregator.pipeline")

FetchFn = Callable[..., Awaitable[FetchResult]]


NO_DETAIL_CHANGES = details.DetailChanges()


@dataclass(frozen=True)
class Processed:
    """What one source's fetch would write: used for real runs and for dry runs alike."""

    outcome: FetchOutcome
    state: SourceState
    new: tuple[Entry, ...] = ()
    changed: tuple[Entry, ...] = ()
    dropped: tuple[Drop, ...] = ()  # entries the categorize rules or filters dropped, with why
    details: details.DetailChanges = NO_DETAIL_CHANGES  # failed and recovered detail fetches


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        fetch: FetchFn,
        clock: Clock,
        rng: random.Random | None = None,
        owner: str | None = None,  # the lease owner the dispatcher claimed with; None: no lease
        processes: int | None = None,  # worker processes; None: [content] processes
    ) -> None:
        self.settings = settings
        self.store = store
        self.fetch = fetch
        self.clock = clock
        self.rng = rng or random.Random()
        self.owner = owner
        self._write_lock = asyncio.Lock()
        self._quiet: list[tuple[Processed, asyncio.Future[None]]] = []  # see _store_quiet
        self._quiet_writer: asyncio.Future[None] | None = None
        self._slots = asyncio.Semaphore(4)  # sources between parse and store at once (see _finish)
        self._processes = processes
        self.offload = Offload(
            settings.content.processes if processes is None else processes, settings.logging
        )
        self.use_settings(settings)

    def use_settings(self, settings: Settings) -> None:
        """Take new settings (a live reload); batches already running finish with the old ones
        where they already read them."""
        self.settings = settings
        self.categorizer = Categorizer.from_settings(settings.categorize)
        self.clean_options = content.CleanOptions(
            image_proxy=settings.content.image_proxy,
            image_proxy_scope=settings.content.image_proxy_scope,
        )
        if self._processes is None:
            self.offload.resize(settings.content.processes)
        self._slots = asyncio.Semaphore(max(4, 2 * self.offload.processes))

    def close(self) -> None:
        """Stop the worker processes (waits for jobs they are running)."""
        self.offload.close()

    # --- batches ------------------------------------------------------------------------------

    async def run_batch(
        self,
        claims: Sequence[tuple[Source, SourceState]],
        progress: Callable[[FetchOutcome], None] | None = None,
    ) -> list[FetchOutcome]:
        """Fetch and process claimed sources concurrently; one outcome per source.

        A source is processed as soon as its answer arrives: any answer shows the machine is
        online. Only a network failure waits for the whole round, to tell a dead source from a
        dead network (``_looks_offline``)."""
        fetches = [asyncio.ensure_future(self._fetch(src, st)) for src, st in claims]
        everything = asyncio.gather(*fetches)
        # a fetch cut off by its source's budget is cancelled, which fails the gather: read
        # its outcome so that is not reported as an error nobody retrieved
        everything.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return list(
                await asyncio.gather(
                    *(
                        self._one(s, st, f, everything, progress)
                        for (s, st), f in zip(claims, fetches)
                    )
                )
            )
        finally:
            everything.cancel()  # only when a job was cancelled: it is done otherwise

    async def _one(
        self,
        source: Source,
        state: SourceState,
        fetch: asyncio.Future[FetchResult],
        everything: asyncio.Future[list[FetchResult]],
        progress: Callable[[FetchOutcome], None] | None,
    ) -> FetchOutcome:
        """One source of a batch, from its answer to its stored outcome; never raises (but for
        cancellation): whatever goes wrong becomes this source's failed outcome."""
        budget = self.budget()
        result = FetchResult(url=state.url, status_code=None)
        deadline = asyncio.timeout(budget)
        try:
            async with deadline:
                result = await fetch
                offline = False
                if result.error is not None and result.status_code is None:
                    offline = decide.looks_offline(await asyncio.shield(everything))
                processed = await self._process_slot(source, state, result, offline)
        except TimeoutError as exc:
            if not deadline.expired():  # raised by something inside: a bug like any other
                processed = self._internal_error(source, state, result, exc, "process")
            else:
                error = f"took too long (over its budget of {budget:g} s, 90% of the lease)"
                processed = self._failed(source, state, result, error, False)
        except Exception as exc:  # noqa: BLE001 (a bug: logged with its traceback, fails only this source)
            processed = self._internal_error(source, state, result, exc, "process")
        outcome = await self._record(source, state, result, processed, progress)
        if len(result.content) >= RELEASE_AFTER:
            release_memory()  # this process's copies of a large body, back to the system
        return outcome

    def budget(self) -> float:
        """Seconds one source's fetch and processing may take: 90% of the lease, so its outcome
        is stored while it still holds the lease."""
        return max(1.0, 0.9 * self.settings.schedule.lease)

    async def _process_slot(
        self, source: Source, state: SourceState, result: FetchResult, offline: bool
    ) -> Processed:
        # A few sources at a time from parse to store, so stored sources free their memory and
        # the store's work overlaps the worker processes' (the pool's queue is first come,
        # first served: without this every parse would queue before any cleaning).
        async with self._slots:
            return await self.process(source, state, result, offline=offline)

    async def _record(
        self,
        source: Source,
        state: SourceState,
        result: FetchResult,
        processed: Processed,
        progress: Callable[[FetchOutcome], None] | None,
    ) -> FetchOutcome:
        """Store one source's results; a bug while storing them fails only this source (its
        failure is stored instead, when the store still can)."""
        try:
            processed = await self._write(processed)
        except Exception as exc:  # noqa: BLE001 (logged with its traceback; other sources go on)
            processed = self._internal_error(source, state, result, exc, "store")
            try:
                await self._store_quiet(processed)
            except Exception as again:  # noqa: BLE001 (the store itself is failing: the lease expires)
                log.error(
                    "%s",
                    kv(
                        source=source.id,
                        event="outcome_not_stored",
                        error=f"{type(again).__name__}: {again}",
                    ),
                )
        _log_outcome(processed.outcome)
        if progress:
            progress(processed.outcome)
        return processed.outcome

    async def _write(self, processed: Processed) -> Processed:
        if not (processed.new or processed.changed or processed.dropped):
            await self._store_quiet(processed)
        else:
            async with self._write_lock:  # a story arriving from two sources at once merges
                # in a thread: SQLite and the database driver work without the GIL, so the
                # event loop goes on fetching and feeding the workers meanwhile
                processed = await asyncio.to_thread(self._store, processed)
        if processed.details:
            change = processed.details
            await asyncio.to_thread(
                self.store.save_detail_attempts,
                processed.state.source_id,
                change.failed,
                change.cleared,
            )
        return processed

    def _internal_error(
        self,
        source: Source,
        state: SourceState,
        result: FetchResult,
        exc: BaseException,
        stage: str,
    ) -> Processed:
        """A bug met while handling one source: its traceback logged once, the source failed."""
        return self._failed(source, state, result, _log_bug(source, stage, exc), False)

    def _store(self, processed: Processed) -> Processed:
        """Store one fetch; its new entries' duplicates are decided inside the store's
        transaction (``merge``), so workers storing one story at once make one primary."""
        stored = processed

        def merge(new: Sequence[Entry], lookup: CandidateLookup) -> Sequence[Entry]:
            nonlocal stored
            stored = self._merged(replace(processed, new=tuple(new)), lookup)
            return stored.new

        self.store.apply(
            processed.state,
            processed.new,
            processed.changed,
            processed.outcome,
            self.clock.now(),
            self.owner,
            dropped=processed.dropped,
            merge=merge,
        )
        return stored

    async def _store_quiet(self, processed: Processed) -> None:
        """Store a fetch that brought no entries together with the others that arrive while the
        store is busy: one transaction for all of them (group commit). Returns once it is stored."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._quiet.append((processed, done))
        if self._quiet_writer is None or self._quiet_writer.done():
            self._quiet_writer = asyncio.ensure_future(self._write_quiet())
        await done

    async def _write_quiet(self) -> None:
        while self._quiet:
            async with self._write_lock:
                group, self._quiet = self._quiet, []
                try:
                    await asyncio.to_thread(
                        self.store.apply_quiet,
                        [(p.state, p.outcome) for p, _ in group],
                        self.clock.now(),
                        self.owner,
                    )
                except Exception as exc:  # noqa: BLE001 (handed on: each waiting fetch gets the error)
                    for _, waiter in group:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
            for _, waiter in group:
                if not waiter.done():  # its caller may have been cancelled meanwhile
                    waiter.set_result(None)

    async def dry_run(self, source: Source, state: SourceState) -> Processed:
        """Everything a fetch of one source would store, without storing it; a bug met on the
        way is the dry run's failed outcome, as it would be the fetch's."""
        result = await self._fetch(source, state)
        try:
            return self._merged(await self.process(source, state, result))
        except Exception as exc:  # noqa: BLE001 (logged with its traceback)
            return self._internal_error(source, state, result, exc, "process")

    def _merged(self, processed: Processed, lookup: CandidateLookup | None = None) -> Processed:
        if not processed.new:
            return processed
        new, merged = self.find_duplicates(processed.new, lookup)
        outcome = replace(processed.outcome, merged=merged)
        return replace(processed, new=tuple(new), outcome=outcome)

    async def _fetch(self, source: Source, state: SourceState) -> FetchResult:
        """The source's document; a bug in fetching is this source's failed fetch, never raised.
        Without validators when details are due for a retry (they need the items again)."""
        try:
            url = get_adapter(source.kind).request_url(source, state.url)
            if details.retry_due(state, self.clock.now()):
                return await self.fetch(url, **_request(source))
            return await self.fetch(
                url, etag=state.etag, last_modified=state.last_modified, **_request(source)
            )
        except Exception as exc:  # noqa: BLE001 (a bug: logged with its traceback)
            return FetchResult(url=state.url, status_code=0, error=_log_bug(source, "fetch", exc))

    # --- one source ---------------------------------------------------------------------------

    async def process(
        self, source: Source, state: SourceState, result: FetchResult, offline: bool = False
    ) -> Processed:
        started = self.clock.now()
        if result.error is not None:
            return self._failed(source, state, result, result.error, offline)
        if not result.not_modified and not result.content.strip():
            return self._failed(source, state, result, "empty response", False)
        unchanged = decide.unchanged(state, result)
        if unchanged and not (details.retry_due(state, started) and result.content):
            return self._unchanged(source, state, result)
        tracking = self.settings.dedupe.tracking_params
        try:
            parsed, identified = await self.offload.identify(source, result, tracking)
        except AggregatorError as exc:
            return self._failed(source, state, result, str(exc), False)
        return await self._ingest(source, state, result, parsed, identified, started)

    async def _ingest(
        self,
        source: Source,
        state: SourceState,
        result: FetchResult,
        parsed: ParsedFeed,
        identified: Sequence[Identified],
        started: datetime,
    ) -> Processed:
        now = self.clock.now()
        # the store's look-ups in a thread: a slow or hung database never blocks the event loop
        keyed, known, attempts = await asyncio.to_thread(self._lookup, source, identified, state)
        retry = details.due(attempts, keyed, now)
        fresh = decide.fresh(keyed, known)
        todo = {k: ki for k, ki in keyed.items() if k in fresh or k in retry}
        enriched = await self._enrich(source, list(todo.values()))
        detail_changes = details.changes(
            attempts, keyed, list(zip(todo, enriched)), now, self.settings.schedule
        )
        _log_details(source, detail_changes)
        prepared = await self.offload.prepare(
            enriched, parsed.link or result.url, self.clean_options
        )
        new: list[Entry] = []
        changed: list[Entry] = []
        dropped: list[Drop] = []
        for (key, (identity, _)), item, ready in zip(todo.items(), enriched, prepared):
            if key not in fresh and item.detail_error:
                continue  # a retry that failed again: the stored entry is as it was
            entry, decision = self._entry(
                source, key, _absolute(item, result.url), identity, ready, now
            )
            if decision.dropped:
                why = str(decision.dropped_by) if decision.dropped_by else "dropped"
                dropped.append(Drop(source.id, key, entry.title, entry.link, why, now))
            elif key in known:
                changed.append(replace(entry, id=known[key].id, first_seen=None))
            else:
                new.append(entry)
        outcome = FetchOutcome(
            source_id=source.id,
            status=FetchStatus.OK,
            added=len(new),
            updated=len(changed),
            undated=len(parsed.undated),
            next_fetch_at=self._next(source, FetchStatus.OK, 0, result, parsed.hints),
            elapsed=(self.clock.now() - started).total_seconds() + result.elapsed,
            bytes=len(result.content),
        )
        state = details.summarized(
            self._succeeded(state, result, outcome, parsed), attempts, detail_changes
        )
        if parsed.undated:
            log.warning(
                "%s",
                kv(
                    source=source.id,
                    event="undated",
                    items=len(parsed.undated),
                    first=parsed.undated[0],
                ),
            )
            state = replace(state, last_error=undated_note(parsed.undated))
        return Processed(outcome, state, tuple(new), tuple(changed), tuple(dropped), detail_changes)

    async def _enrich(self, source: Source, todo: Sequence[Identified]) -> list[Item]:
        """The items completed by the adapter's ``enrich`` (detail fetches) within the source's
        enrichment budget (half its budget); those still unfinished then keep what the document
        gave and are marked for a retry at a later fetch."""
        if not todo:
            return []
        adapter = get_adapter(source.kind)
        fetch = functools.partial(self._extra_fetch, request=source.request)
        tasks = [asyncio.ensure_future(adapter.enrich(source, item, fetch)) for _, item in todo]
        budget = self.budget() / 2
        try:
            _done, pending = await asyncio.wait(tasks, timeout=budget)
        finally:
            for task in tasks:
                task.cancel()  # a no-op for finished ones
        late = f"detail not fetched within the source's enrichment budget ({budget:g} s)"
        return [
            replace(item, detail_error=late) if task in pending else task.result()
            for (_, item), task in zip(todo, tasks)
        ]

    def _lookup(
        self, source: Source, identified: Sequence[Identified], state: SourceState
    ) -> tuple[dict[str, Identified], Known, dict[str, DetailAttempt]]:
        """The live items by key (re-keyed where the source changed its id scheme), what the
        store knows of them (key -> entry id, content hash, canonical URL) and its failed
        detail fetches."""
        keyed = self._alive(source, identified)
        known = self.store.known(source.id, keyed)
        keyed, old_keys = self._rekey(source, keyed, known)
        if old_keys:
            known.update(self.store.known(source.id, old_keys))
        attempts = self.store.detail_attempts(source.id) if state.details_missing else {}
        return keyed, known, attempts

    def _alive(self, source: Source, identified: Sequence[Identified]) -> dict[str, Identified]:
        """The identified items by key, tombstoned keys left out (fingerprints are computed
        later, only for new and changed items)."""
        keyed = {identity.key: (identity, item) for identity, item in identified}
        dead = self.store.tombstoned(source.id, keyed)
        return {k: v for k, v in keyed.items() if k not in dead}

    def _rekey(
        self, source: Source, keyed: dict[str, Identified], known: Known
    ) -> tuple[dict[str, Identified], list[str]]:
        """When most keys are new, recognize entries the source already has under other keys (a
        publisher that changed its id scheme) and use their old keys; also return those old keys."""
        if not decide.rekey_wanted(keyed, known):
            return keyed, []
        stored = self.store.source_identities(source.id)

        def text_of(key: str) -> int | None:  # only for items no URL or hash recognized
            item = keyed[key][1]
            return fingerprint.stored_signature(item.title, item.content or item.summary)[0]

        mapping = decide.rekeyed(keyed, known, stored, text_of)
        if not mapping:
            return keyed, []
        log.info("%s", kv(source=source.id, event="rekeyed", entries=len(mapping)))
        return decide.renamed(keyed, mapping), list(mapping.values())

    def _entry(
        self,
        source: Source,
        key: str,
        item: Item,
        identity: Identity,
        ready: Prepared,
        now: datetime,
    ) -> tuple[Entry, Decision]:
        link, title = item.link, ready.title
        decision = self.categorizer.decide(
            source.id,
            Fields(title, ready.text, item.author, link),
            source.category,
            item.categories,
        )
        entry = Entry(
            source_id=source.id,
            key=key,
            title=title,
            link=link,
            content=ready.html or None,
            summary=ready.summary,
            author=item.author,
            published=item.published or item.updated,  # Atom may carry only <updated>
            updated=item.updated,
            categories=decision.categories,
            category_path=decision.category_path,
            enclosures=item.enclosures,
            image=item.image or urls.public_link(ready.image),  # else the content's
            content_hash=identity.content_hash,
            canonical_url=identity.canonical_url,
            fingerprint=ready.fingerprint,
            first_seen=now,
            changed_at=now,
            text_length=ready.weight,
            band_keys=ready.band_keys,
            explanation=tuple(str(step) for step in decision.explanation),
        )
        return entry, decision

    def find_duplicates(
        self, new: Sequence[Entry], lookup: CandidateLookup | None = None
    ) -> tuple[list[Entry], int]:
        """New entries (of one source) with ``duplicate_of`` and ``merge_reason`` set where
        another source already has the story; and how many were merged. ``lookup`` reads the
        candidates (the store's, inside its writing transaction); by default a read of its own."""
        if not new:
            return [], 0
        found = (lookup or self.store.duplicate_candidates_many)(
            new[0].source_id, [(e.canonical_url, e.content_hash, e.band_keys) for e in new]
        )
        return decide.duplicates(new, found, self.settings.dedupe)

    async def _extra_fetch(self, url: str, request: RequestOptions | None = None) -> FetchResult:
        """An extra document of a source (a detail, an article page), with its request options."""
        return await self.fetch(url, **({"request": request} if request is not None else {}))

    # --- source state transitions -------------------------------------------------------------

    def _next(
        self,
        source: Source,
        status: FetchStatus,
        failures: int,
        result: FetchResult | None,
        hints: FeedHints | None,
    ) -> datetime | None:
        return decide.next_fetch(
            source,
            status,
            failures,
            result,
            hints,
            now=self.clock.now(),
            settings=self.settings.schedule,
            rng=self.rng,
        )

    def _succeeded(
        self,
        state: SourceState,
        result: FetchResult,
        outcome: FetchOutcome,
        parsed: ParsedFeed | None,
    ) -> SourceState:
        new_state = decide.succeeded(
            state,
            result,
            outcome,
            parsed,
            now=self.clock.now(),
            redirects_needed=self.settings.fetch.permanent_redirect_after,
        )
        _log_moved(state, new_state)
        return new_state

    def _unchanged(self, source: Source, state: SourceState, result: FetchResult) -> Processed:
        outcome, new_state = decide.not_modified(
            source,
            state,
            result,
            now=self.clock.now(),
            settings=self.settings.schedule,
            rng=self.rng,
            redirects_needed=self.settings.fetch.permanent_redirect_after,
        )
        _log_moved(state, new_state)
        return Processed(outcome, new_state)

    def _failed(
        self, source: Source, state: SourceState, result: FetchResult, error: str, offline: bool
    ) -> Processed:
        return Processed(
            *decide.failed(
                source,
                state,
                result,
                error,
                offline,
                now=self.clock.now(),
                settings=self.settings.schedule,
                rng=self.rng,
            )
        )


def _request(source: Source) -> dict[str, RequestOptions]:
    """The source's own request options as the fetch function's keyword (none when it sets none)."""
    return {"request": source.request} if source.request is not None else {}


def _absolute(item: Item, document_url: str) -> Item:
    """The item with its link and enclosure URLs resolved against its base (else the document's
    URL) and kept only when they are web links (urls.public_link: the one URL policy)."""
    base = item.base or document_url
    link = urls.public_link(item.link, base) if item.link else None
    enclosures = tuple(
        replace(e, url=u) for e in item.enclosures if (u := urls.public_link(e.url, base))
    )
    image = urls.public_link(item.image, base) if item.image else None
    if (link, enclosures, image) == (item.link, item.enclosures, item.image):
        return item
    return replace(item, link=link, enclosures=enclosures, image=image)


def _log_bug(source: Source, stage: str, exc: BaseException) -> str:
    """Log a bug met at ``stage`` of one source, with its traceback; its ``last_error`` text."""
    error = internal_error(exc)
    log.error(
        "%s", kv(source=source.id, event="internal_error", stage=stage, error=error), exc_info=exc
    )
    return error


def internal_error(exc: BaseException) -> str:
    """How a bug met while handling a source reads in its ``last_error``."""
    text = " ".join(str(exc).split())
    text = text[:300] + "…" if len(text) > 300 else text
    return (
        f"internal error ({type(exc).__name__}: {text})"
        if text
        else f"internal error ({type(exc).__name__})"
    )


def _log_moved(before: SourceState, after: SourceState) -> None:
    if after.url != before.url:
        log.warning(
            "%s", kv(source=before.source_id, event="moved", **{"from": before.url}, to=after.url)
        )


def _log_details(source: Source, change: details.DetailChanges) -> None:
    for a in change.failed:
        retry = a.retry_at.isoformat() if a.retry_at else "never (attempts used up)"
        log.warning(
            "%s",
            kv(
                source=source.id,
                event="detail_failed",
                key=a.key,
                attempt=a.attempts,
                retry=retry,
                error=a.error,
            ),
        )


def _log_outcome(o: FetchOutcome) -> None:
    level = logging.WARNING if o.status in (FetchStatus.ERROR, FetchStatus.GONE) else logging.INFO
    log.log(
        level,
        "%s",
        kv(
            source=o.source_id,
            event="fetched",
            outcome=o.status.value,
            added=o.added,
            updated=o.updated,
            merged=o.merged,
            bytes=o.bytes,
            elapsed=o.elapsed,
            error=o.error,
        ),
    )
