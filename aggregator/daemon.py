"""Composition of a running service: settings, store, fetcher, pipeline, scheduler and server.

Owns: building these for one config, the process's lifetime (start, serve, clean stop on SIGTERM
or SIGINT), and the live set of configured sources. Does not own: what any of them do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from .clock import Clock, SystemClock
from .config import Settings
from .fetch import Fetcher
from .logs import kv, setup_logging
from .models import Source
from .operate import attach
from .pipeline import Pipeline
from .publish.feeds import FeedService
from .publish.websub import WebSubPublisher
from .scheduler import Dispatcher, Retention, Scheduler
from .server import create_app
from .store import Store, open_store

log = logging.getLogger("aggregator.daemon")


@dataclass
class LiveSources:
    """The configured sources, swapped whole on reload; readers always see one consistent set."""

    settings: Settings
    by_id: Mapping[str, Source] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.update(self.settings)

    def update(self, settings: Settings) -> None:
        self.settings = settings
        self.by_id = {s.id: s for s in settings.source_records()}

    def get(self) -> Mapping[str, Source]:
        return self.by_id


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_configured_store(settings: Settings, clock: Clock) -> Store:
    store = open_store(settings.storage.url, clock.now())
    store.sync_sources(settings.source_records(), clock.now())
    return store


ROLES = ("all", "worker", "web")  # worker: scheduler only; web: read-only HTTP server only


async def serve(
    settings: Settings, config_path: Path, clock: Clock | None = None, role: str = "all"
) -> int:
    """Run the daemon in ``role`` until SIGTERM or SIGINT; return the exit code."""
    clock = clock or SystemClock()
    setup_logging(settings.logging)
    if role == "web":  # a reader: never writes sources or entries
        store = open_store(settings.storage.url, clock.now())
    else:
        store = open_configured_store(settings, clock)
    live = LiveSources(settings)
    owner = owner_id()
    async with Fetcher(settings.fetch, clock) as fetcher:
        pipeline = Pipeline(settings, store, fetcher.fetch, clock, owner=owner)
        dispatcher = Dispatcher(
            store, pipeline, live.get, clock, owner,
            settings.schedule.batch_size, settings.schedule.lease,
        )
        retention = Retention(store, clock, lambda: live.settings.retention)
        scheduler = Scheduler(dispatcher, settings.schedule.dispatch_every, retention)
        feeds = FeedService(settings, store, live.get, clock)
        app = create_app(feeds, ready=(lambda: scheduler.running) if role != "web" else None)
        ops = attach(
            app, settings=settings, config_path=config_path, store=store, clock=clock,
            update_sources=live.update, sources=live.get, pipeline=pipeline, feeds=feeds,
            dispatcher=dispatcher, poke=scheduler.poke, sync_store=role != "web",
        )
        websub = WebSubPublisher.configured(feeds, clock) if role != "web" else None
        if websub is not None:  # chained after the hooks attach() installed; primed before ticks
            dispatcher.on_outcomes = websub.hook(dispatcher.on_outcomes)
            await websub.prime()
        server = _Server(
            uvicorn.Config(
                app, host=settings.server.host, port=settings.server.port,
                log_level="warning", access_log=False, lifespan="off", log_config=None,
            )
        )
        _on_signals(server)
        if role != "web":
            scheduler.start()
        ops.start()
        log.info("%s", kv(
            event="started", role=role, sources=len(live.by_id),
            listen=f"http://{settings.server.host}:{settings.server.port}" if role != "worker" else "none",
            store=settings.storage.url.split("@")[-1], config=config_path,
        ))
        try:
            if role != "worker":
                await server.serve()  # returns once a signal sets should_exit
            while role == "worker" and not server.should_exit:  # no HTTP listener in a worker
                await asyncio.sleep(0.2)
        finally:
            await ops.stop()
            await _stop(scheduler, dispatcher, store, owner, websub)
    return 0


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture: uvicorn re-raises a captured SIGTERM after
    serving, which would end the process by signal instead of exiting 0 after a clean stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _on_signals(server: uvicorn.Server) -> None:
    loop = asyncio.get_running_loop()

    def stop(signame: str) -> None:
        log.info("%s", kv(event="signal", signal=signame, action="stop"))
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)


async def _stop(
    scheduler: Scheduler, dispatcher: Dispatcher, store: Store, owner: str,
    websub: WebSubPublisher | None = None,
) -> None:
    """Stop taking work, let the running tick finish briefly, then give back leases."""
    scheduler.shutdown()
    try:
        await asyncio.wait_for(dispatcher.idle(), timeout=10)
    except TimeoutError:
        log.warning("%s", kv(event="shutdown_abandoned", reason="in-flight fetches took over 10s"))
    if websub is not None:  # pings of the last tick, before the store closes
        await websub.aclose()
    store.release_all(owner)
    store.close()
    log.info("%s", kv(event="stopped"))
