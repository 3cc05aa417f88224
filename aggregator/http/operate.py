"""The operating surface of a running daemon, composed: live reload, metrics and the status pages.

Owns: wiring a ``Reloader`` (config watcher and SIGHUP), a ``Metrics`` registry (dispatcher
outcomes, render timing) and the web routes onto the components ``runtime.daemon.serve`` built. Does
not own: those components, or what reloading, counting and showing mean (runtime/reload.py,
metrics.py, routes.py and status.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..clock import Clock
from ..config.settings import Settings
from ..logs import kv
from ..models import Source
from ..pipeline.update import Pipeline
from ..publish.feeds import FeedService
from ..runtime.reload import Reloader, appliers
from ..runtime.roles import Role
from ..runtime.scheduler import Dispatcher, Scheduler
from ..store import Store
from .app import App
from .metrics import Metrics
from .routes import WebContext, routes

log = logging.getLogger("aggregator.operate")

WATCH_EVERY = 2.0  # seconds between looks at the config file


@dataclass
class Operations:
    reloader: Reloader
    metrics: Metrics
    web: WebContext
    _watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self, every: float = WATCH_EVERY) -> None:
        """Watch the config file and reload on SIGHUP (call on the running loop)."""
        loop = asyncio.get_running_loop()
        self._watcher = loop.create_task(self.reloader.watch(every), name="config-watcher")
        with contextlib.suppress(
            NotImplementedError, RuntimeError
        ):  # no signals off the main thread
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        log.info("%s", kv(event="signal", signal="SIGHUP", action="reload"))
        self.reloader.reload("SIGHUP")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


def attach(
    app: App,
    *,
    settings: Settings,
    config_path: Path,
    store: Store,
    clock: Clock,
    update_sources: Callable[[Settings], None],
    sources: Callable[[], Mapping[str, Source]],
    pipeline: Pipeline,
    feeds: FeedService,
    dispatcher: Dispatcher,
    poke: Callable[[], None] | None,
    sync_store: bool = True,
    role: Role = Role.ALL,
    process: str | None = None,
    scheduler: Scheduler | None = None,
    adjust: Callable[[Settings], Settings] | None = None,
) -> Operations:
    """Mount the status pages, admin actions and /metrics on ``app``, count the dispatcher's
    outcomes (and the scheduler's dispatch lag) and time feed rendering, and prepare the
    reloader (``start`` begins watching). ``sync_store=False`` (a read-only web process) reloads
    without writing source rows; ``role`` and ``process`` label the metrics; ``adjust`` is the
    command line's overrides, applied to every reloaded config."""
    metrics = Metrics(store, role=role, process=process, per_source=role.serves_feeds)
    metrics.instrument(feeds)
    dispatcher.on_outcomes = metrics.observe
    if scheduler is not None:
        scheduler.on_lag = metrics.dispatch_lag.set
    reloader = Reloader(
        config_path,
        settings,
        store,
        clock,
        appliers(update_sources, pipeline, feeds, dispatcher, scheduler),
        poke=poke,
        sync_store=sync_store,
        adjust=adjust,
    )
    ctx = WebContext(
        store=store,
        feeds=feeds,
        clock=clock,
        settings=lambda: reloader.settings,
        sources=sources,
        reload=reloader.state,
        poke=poke,
        metrics=metrics,
    )
    app.router.routes.extend(routes(ctx))
    return Operations(reloader, metrics, ctx)
