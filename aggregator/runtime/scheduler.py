"""The only user of APScheduler: a short dispatcher job and the maintenance jobs.

The database holds the schedule (each source's ``next_fetch_at``), so this module keeps no plan of
its own: every few seconds the dispatcher claims the sources that are due and runs them through
the pipeline. A restart loses nothing, and several processes can share one database.

Before each tick the scheduler measures the dispatch lag (how long the oldest due source has been
due: one indexed aggregate, in a thread) and hands it to ``on_lag`` (the metrics gauge).

The maintenance job is retention: every ``[retention] every`` seconds it prunes entries beyond the
configured limits (in a thread, so the event loop keeps serving). Several workers may run it; on
PostgreSQL one prunes and the others skip that round. A reload that changes ``every``
reschedules the job (``reschedule_retention``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ..clock import Clock
from ..config.settings import RetentionSettings
from ..logs import kv
from ..models import FetchOutcome, Source, SourceState
from ..pipeline.update import Pipeline
from ..store import PruneResult, Store
from ..store.guard import first_line, is_outage

log = logging.getLogger("aggregator.scheduler")
T = TypeVar("T")


class Dispatcher:
    """Claims due sources and runs them. A tick claims what is due (up to ``batch_size`` sources
    in flight), starts them and returns: a slow source holds only its own slot, never the next
    tick, so the other sources are fetched on time."""

    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        sources: Callable[[], Mapping[str, Source]],
        clock: Clock,
        owner: str,
        batch_size: int,
        lease: float,
        on_outcomes: Callable[[list[FetchOutcome]], None] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.sources = sources
        self.clock = clock
        self.owner = owner
        self.batch_size = batch_size
        self.lease = lease
        self.on_outcomes = on_outcomes
        self.timeout = timeout  # seconds a claim or release is awaited ([storage] request_timeout)
        self._claiming: asyncio.Future[list[SourceState]] | None = None
        self._lock = asyncio.Lock()  # one claim at a time
        self._batches: set[asyncio.Task[list[FetchOutcome]]] = set()
        self._in_flight = 0

    async def tick(self) -> list[FetchOutcome]:
        """Claim the sources due now, run them and return their outcomes (the CLI and tests
        wait for a round this way; the scheduler calls ``dispatch``)."""
        batch = await self.dispatch()
        return await batch if batch is not None else []

    async def dispatch(self) -> asyncio.Task[list[FetchOutcome]] | None:
        """Claim what is due now into the free slots and start it; returns the started batch
        (None when nothing was due) without waiting for it."""
        async with self._lock:
            free = self.batch_size - self._in_flight
            if free <= 0:
                return None
            configured = self.sources()
            claims = await self._claim(free)
            pairs = []
            for state in claims:
                source = configured.get(state.source_id)
                if source is None:  # removed from the config since the claim
                    await self._waited(
                        "release",
                        asyncio.to_thread(self.store.release, state.source_id, self.owner),
                    )
                    continue
                pairs.append((source, state))
            if not pairs:
                return None
            self._in_flight += len(pairs)
            batch = asyncio.create_task(self._run(pairs), name="batch")
            self._batches.add(batch)
            batch.add_done_callback(self._finished)
            return batch

    def _finished(self, batch: asyncio.Task[list[FetchOutcome]]) -> None:
        self._batches.discard(batch)
        if not batch.cancelled() and batch.exception() is not None:
            log.error("event=batch_failed", exc_info=batch.exception())

    async def _run(self, pairs: list[tuple[Source, SourceState]]) -> list[FetchOutcome]:
        try:
            outcomes = await self.pipeline.run_batch(pairs)
        finally:
            self._in_flight -= len(pairs)
        if self.on_outcomes:
            try:
                self.on_outcomes(outcomes)
            except Exception:  # a bug in a hook (feeds, WebSub) must not lose the outcomes
                log.exception("event=outcome_hook_failed")
        return outcomes

    async def _claim(self, limit: int) -> list[SourceState]:
        """The due sources, claimed in a thread and awaited at most ``timeout``; none (and one
        log line) when the database refuses or does not answer. A claim still running when the
        wait gives up is not started again: a later tick takes what it claimed."""
        if self._claiming is None:
            self._claiming = asyncio.ensure_future(
                asyncio.to_thread(
                    self.store.claim_due, self.clock.now(), limit, self.owner, self.lease
                )
            )
        claiming = self._claiming
        claims = await self._waited("claim", claiming)
        if claiming.done():
            self._claiming = None
        return claims or []

    async def _waited(self, what: str, work: Awaitable[T]) -> T | None:
        """``work`` (a store call in a thread) awaited at most ``timeout``; None with one log
        line when the database refuses or does not answer (the call goes on in its thread)."""
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(work)), self.timeout)
        except Exception as exc:
            if not is_outage(exc):
                raise
            error = (
                f"no answer in {self.timeout:g}s"
                if isinstance(exc, TimeoutError)
                else first_line(exc)
            )
            log.warning("%s", kv(event="db_error", where=f"dispatcher.{what}", error=error))
            return None

    async def idle(self) -> None:
        """Return once no batch is running."""
        async with self._lock:
            while self._batches:
                await asyncio.wait(set(self._batches))


class Retention:
    """The retention job: prune entries beyond the ``[retention]`` limits, tombstones left."""

    def __init__(
        self, store: Store, clock: Clock, settings: Callable[[], RetentionSettings]
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings  # read at each run, so a reload's new limits apply

    @property
    def every(self) -> float:
        return self.settings().every

    async def run(self) -> PruneResult | None:
        """Prune once (None when no limit is set)."""
        limits = self.settings()
        if not limits.max_entries_per_source and limits.max_age is None:
            return None
        result = await asyncio.to_thread(
            self.store.prune, self.clock.now(), limits.max_entries_per_source, limits.max_age
        )
        log.info(
            "event=retention removed=%d sources=%d skipped=%s",
            result.removed,
            result.sources,
            str(result.skipped).lower(),
        )
        return result


class Scheduler:
    """APScheduler around the dispatcher (and the retention job); started and stopped with the
    daemon in the roles that fetch."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        every: float,
        retention: Retention | None = None,
        on_lag: Callable[[float], None] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.every = every
        self.retention = retention
        self.on_lag = on_lag  # gets the dispatch lag in seconds before each tick
        self._lag: asyncio.Future[datetime | None] | None = None
        self._aps = AsyncIOScheduler(timezone="UTC")
        self._retention_every: float | None = None  # the interval the retention job runs at
        self.running = False

    def start(self) -> None:
        self._aps.add_job(
            self.tick,
            "interval",
            seconds=self.every,
            id="dispatcher",
            max_instances=1,
            coalesce=True,
            next_run_time=None,
        )
        if self.retention is not None:
            self._retention_every = self.retention.every
            self._aps.add_job(
                self._safe_retention,
                "interval",
                seconds=self._retention_every,
                id="retention",
                max_instances=1,
                coalesce=True,
            )
        self._aps.start()
        self._aps.modify_job("dispatcher", next_run_time=self.dispatcher.clock.now())
        self.running = True

    def retention_every(self) -> float | None:
        """Seconds between runs of the retention job as scheduled (None: no such job)."""
        job = self._aps.get_job("retention") if self.running else None
        return None if job is None else float(job.trigger.interval.total_seconds())

    def reschedule_retention(self) -> None:
        """Run the retention job at the retention settings' current ``every`` (after a reload),
        counting from now; nothing when it already runs at that interval."""
        if (
            not self.running
            or self.retention is None
            or self.retention.every == self._retention_every
        ):
            return
        self._retention_every = self.retention.every
        self._aps.reschedule_job("retention", trigger="interval", seconds=self._retention_every)
        log.info("event=retention_rescheduled every=%g", self._retention_every)

    def poke(self) -> None:
        """Run the dispatcher as soon as possible (after a reload or an admin action)."""
        if self.running:
            self._aps.modify_job("dispatcher", next_run_time=self.dispatcher.clock.now())

    async def tick(self) -> None:
        """One dispatcher tick, its lag measured first; a failure is logged, never raised."""
        try:
            await self._measure_lag()
            await self.dispatcher.dispatch()
        except asyncio.CancelledError:
            # shutdown() cancels a tick in progress (APScheduler's executor would log that as a
            # failed job, with a traceback): a stop, not an error. Started batches are the
            # daemon's to wait for.
            return
        except Exception:  # a bug in one tick must not kill the daemon; it is logged loudly
            log.exception("event=dispatcher_failed")

    async def _measure_lag(self) -> None:
        if self.on_lag is None:
            return
        now = self.dispatcher.clock.now()
        if self._lag is None or self._lag.done():  # never a second read stuck on a hang
            self._lag = asyncio.ensure_future(
                asyncio.to_thread(self.dispatcher.store.oldest_due, now)
            )
        try:
            oldest = await asyncio.wait_for(asyncio.shield(self._lag), self.dispatcher.timeout)
        except Exception:  # the database is away: the tick will say so; keep the last value
            log.debug("event=dispatch_lag_unknown", exc_info=True)
            return
        self.on_lag(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)

    async def _safe_retention(self) -> None:
        assert self.retention is not None
        try:
            await self.retention.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed prune is retried at the next run; the daemon goes on
            log.exception("event=retention_failed")

    def shutdown(self) -> None:
        if self.running:
            self._aps.shutdown(wait=False)
            self.running = False
