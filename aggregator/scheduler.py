"""The only user of APScheduler: a short dispatcher job and the maintenance jobs.

The database holds the schedule (each source's ``next_fetch_at``), so this module keeps no plan of
its own: every few seconds the dispatcher claims the sources that are due and runs them through
the pipeline. A restart loses nothing, and several processes can share one database.

The maintenance job is retention: every ``[retention] every`` seconds it prunes entries beyond the
configured limits (in a thread, so the event loop keeps serving). Several workers may run it; on
PostgreSQL one prunes and the others skip that round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from .clock import Clock
from .config import RetentionSettings
from .logs import kv
from .models import FetchOutcome, Source, SourceState
from .pipeline import Pipeline
from .store import PruneResult, Store
from .store.guard import first_line, is_outage

log = logging.getLogger("aggregator.scheduler")
T = TypeVar("T")


class Dispatcher:
    """Claims due sources and runs them; one tick at a time, never overlapping itself."""

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
        self._lock = asyncio.Lock()
        self.ticks = 0

    async def tick(self) -> list[FetchOutcome]:
        """Run every source that is due now; return their outcomes."""
        async with self._lock:
            self.ticks += 1
            configured = self.sources()
            claims = await self._claim()
            pairs = []
            for state in claims:
                source = configured.get(state.source_id)
                if source is None:  # removed from the config since the claim
                    await self._waited("release", asyncio.to_thread(
                        self.store.release, state.source_id, self.owner))
                    continue
                pairs.append((source, state))
            if not pairs:
                return []
            outcomes = await self.pipeline.run_batch(pairs)
            if self.on_outcomes:
                self.on_outcomes(outcomes)
            return outcomes


    async def _claim(self) -> list[SourceState]:
        """The due sources, claimed in a thread and awaited at most ``timeout``; none (and one
        log line) when the database refuses or does not answer. A claim still running when the
        wait gives up is not started again: a later tick takes what it claimed."""
        if self._claiming is None:
            self._claiming = asyncio.ensure_future(asyncio.to_thread(
                self.store.claim_due, self.clock.now(), self.batch_size, self.owner, self.lease))
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
            error = f"no answer in {self.timeout:g}s" if isinstance(exc, TimeoutError) else first_line(exc)
            log.warning("%s", kv(event="db_error", where=f"dispatcher.{what}", error=error))
            return None

    async def idle(self) -> None:
        """Return once no tick is running."""
        async with self._lock:
            return


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
            result.removed, result.sources, str(result.skipped).lower(),
        )
        return result


class Scheduler:
    """APScheduler around the dispatcher (and the retention job); started and stopped with the
    daemon in the roles that fetch."""

    def __init__(
        self, dispatcher: Dispatcher, every: float, retention: Retention | None = None
    ) -> None:
        self.dispatcher = dispatcher
        self.every = every
        self.retention = retention
        self._aps = AsyncIOScheduler(timezone="UTC")
        self.running = False

    def start(self) -> None:
        self._aps.add_job(
            self._safe_tick,
            "interval",
            seconds=self.every,
            id="dispatcher",
            max_instances=1,
            coalesce=True,
            next_run_time=None,
        )
        if self.retention is not None:
            self._aps.add_job(
                self._safe_retention, "interval", seconds=self.retention.every, id="retention",
                max_instances=1, coalesce=True,
            )
        self._aps.start()
        self._aps.modify_job("dispatcher", next_run_time=self.dispatcher.clock.now())
        self.running = True

    def job_ids(self) -> list[str]:
        return [job.id for job in self._aps.get_jobs()]

    def poke(self) -> None:
        """Run the dispatcher as soon as possible (after a reload or an admin action)."""
        if self.running:
            self._aps.modify_job("dispatcher", next_run_time=self.dispatcher.clock.now())

    async def _safe_tick(self) -> None:
        try:
            await self.dispatcher.tick()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one tick must not kill the daemon; it is logged loudly
            log.exception("event=dispatcher_failed")

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
