"""Store calls from async code: off the event loop, awaited no longer than a timeout, and what the
process does while the database is down.

Owns: running a blocking store call in a thread (``asyncio.to_thread``) and waiting for it at most
``[storage] request_timeout``, so a database that refuses or hangs never blocks the event loop;
telling an outage (an operational database error, a pool or connect timeout, no answer in time)
from a bug, which is raised as it is; the circuit: after an outage the guard is *down*, web
requests stop asking the database (``call`` raises ``StoreUnavailable`` at once, callers serve
what they have cached or answer 503) and one probe (``store.ping``) every ``retry`` seconds
finds out when it is back; the log: one line per failure (``event=db_error`` with the error's
first line), the traceback once per distinct error per ``TRACEBACK_EVERY`` seconds, and a line
when the database goes down and when it is back.

Does not own: what to serve instead (publish/feeds.py, http/replies.py), the connection timeouts
themselves (engine.py's ``make_engine``), which errors are outages (engine.py's ``converted``).

A thread stuck on a hung connection cannot be stopped from Python; the guard only stops waiting
for it. While down no new call starts a thread, and a probe starts only when the previous one has
returned, so a hang strands at most the calls that were running when it began and one probe.
The probe paces itself in wall time (``asyncio.sleep``), not on the injected clock: it waits for a
real server, like the timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from ..clock import Clock, SystemClock
from ..errors import StoreError, StoreOutage, StoreUnavailable
from ..logs import kv

__all__ = ["StoreGuard", "is_outage"]

T = TypeVar("T")
log = logging.getLogger("aggregator.store")

TRACEBACK_EVERY = 300.0  # seconds between two tracebacks of the same error
# The store raises StoreOutage for SQLAlchemy's operational, interface, disconnection and pool
# timeout errors (engine.py); any other StoreError is a bug, raised as it is.
_OUTAGES = (StoreOutage, TimeoutError, OSError)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unreachable or too slow (not a bug of ours)."""
    return isinstance(exc, _OUTAGES)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StoreGuard:
    """One process's view of whether the database answers; shared by its web side."""

    def __init__(
        self, ping: Callable[[], bool], timeout: float, clock: Clock | None = None
    ) -> None:
        self.ping = ping
        self.timeout = timeout
        self.retry = timeout  # seconds between two probes while down
        self.clock = clock or SystemClock()
        self.down_since: datetime | None = None
        self.errors = 0  # failures seen (outages, not bugs)
        self._tracebacks: dict[str, datetime] = {}
        self._probe: asyncio.Task[None] | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    @property
    def retry_after(self) -> int:
        """Seconds a client should wait before asking again (``Retry-After``)."""
        return math.ceil(self.retry)

    def unavailable(self, what: str = "the database is unreachable") -> StoreUnavailable:
        return StoreUnavailable(what, self.retry_after)

    async def call(self, where: str, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a thread, awaited at most ``timeout``; ``StoreUnavailable`` at once
        while down, or when the database refuses or does not answer in time."""
        if self.down:
            raise self.unavailable()
        return await self.wait(where, asyncio.ensure_future(asyncio.to_thread(fn, *args)))

    async def wait(self, where: str, work: Awaitable[T]) -> T:
        """Await ``work`` (a store call running in a thread) at most ``timeout``; it goes on
        running when the wait gives up. An outage becomes ``StoreUnavailable``; a bug is raised."""
        future = asyncio.ensure_future(work)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            self.failed(where, TimeoutError(f"no answer in {self.timeout:g}s"))
            raise self.unavailable("the database did not answer in time") from None
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.failed(where, exc)
            raise self.unavailable() from None
        self.recovered()
        return result

    async def ready(self) -> bool:
        """Whether the database answers a ping within ``timeout`` (False at once while down)."""
        try:
            ok = await self.call("readyz", self.ping)
        except StoreUnavailable:
            return False
        if not ok:
            self.failed("readyz", StoreError("ping failed"))
        return ok

    def failed(self, where: str, exc: BaseException) -> None:
        """Log ``exc`` in one line (its traceback if not logged lately) and go down."""
        self.errors += 1
        line = first_line(exc)
        now = self.clock.now()
        signature = f"{type(exc).__name__}: {line}"
        last = self._tracebacks.get(signature)
        trace = last is None or not 0 <= (now - last).total_seconds() < TRACEBACK_EVERY
        if trace:
            if len(self._tracebacks) >= 256:  # distinct errors are few; never let them pile up
                self._tracebacks.clear()
            self._tracebacks[signature] = now
        log.warning(
            "%s",
            kv(event="db_error", where=where, error=signature),
            exc_info=exc if trace and exc.__traceback__ else None,
        )
        if self.down_since is None:
            self.down_since = now
            log.warning("%s", kv(event="db_down", retry_every=self.retry))
            self._start_probe()

    def recovered(self) -> None:
        if self.down_since is not None:
            took = (self.clock.now() - self.down_since).total_seconds()
            self.down_since = None
            log.warning("%s", kv(event="db_up", down_for=took))

    def _start_probe(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next async call probes
            self.down_since = None
            return
        if self._probe is None or self._probe.done():
            self._probe = loop.create_task(self._probing())

    async def _probing(self) -> None:
        ping: asyncio.Future[bool] | None = None
        while self.down:
            await asyncio.sleep(self.retry)
            if ping is None or ping.done():  # never two probes stuck on one hang
                ping = asyncio.ensure_future(asyncio.to_thread(self.ping))
            try:
                if await asyncio.wait_for(asyncio.shield(ping), self.timeout):
                    self.recovered()
            except _OUTAGES as exc:  # still down; the probe's failures are not logged one by one
                log.debug("%s", kv(event="db_probe", error=first_line(exc)))
