"""A daemon's components assembled in-process, as ``daemon.serve`` assembles them, for the tests of
reload, the status pages, admin actions and metrics: a real store, fetcher and pipeline talking
to the fake origin, the real operating surface (``operate.attach``), and the app served by uvicorn
on 127.0.0.1. Time is a FakeClock; the dispatcher is ticked by the test instead of APScheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from aggregator.clock import FakeClock
from aggregator.config import loading as config_mod
from aggregator.config.settings import Settings
from aggregator.fetch import Fetcher
from aggregator.http.app import create_app
from aggregator.http.operate import Operations, attach
from aggregator.models import FetchOutcome
from aggregator.pipeline.update import Pipeline
from aggregator.publish.feeds import FeedService
from aggregator.runtime.daemon import LiveSources, open_configured_store
from aggregator.runtime.scheduler import Dispatcher, Retention, Scheduler
from aggregator.store import Store

from .origin import Origin

HEAD = """[server]
host = "127.0.0.1"
port = {port}
{server_extra}
[storage]
url = "sqlite:///{db}"
[fetch]
allow_private_networks = true
per_host_delay = 0
max_retries = 0
[schedule]
interval = "30m"
jitter = 0
[logging]
level = "INFO"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def source_block(sid: str, url: str, **extra: str) -> str:
    lines = ["[[sources]]", f'id = "{sid}"', f'url = "{url}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def config_text(tmp: Path, port: int, sources: str, server_extra: str = "") -> str:
    return HEAD.format(port=port, db=tmp / "agg.db", server_extra=server_extra) + sources


@dataclass
class Stack:
    path: Path
    settings: Settings
    clock: FakeClock
    store: Store
    live: LiveSources
    pipeline: Pipeline
    dispatcher: Dispatcher
    feeds: FeedService
    ops: Operations
    scheduler: Scheduler  # not started: the tests tick the dispatcher themselves
    base: str = ""
    pokes: list[int] = field(default_factory=list)
    ready: dict[str, bool] = field(default_factory=lambda: {"scheduler": True})

    async def tick(self) -> list[FetchOutcome]:
        return await self.dispatcher.tick()

    def write(self, text: str) -> None:
        """Replace the config file (a new mtime is forced so the watcher sees a change)."""
        old = self.path.stat().st_mtime_ns
        self.path.write_text(text, encoding="utf-8")
        st = self.path.stat()
        if st.st_mtime_ns == old:
            import os

            os.utime(self.path, ns=(st.st_atime_ns, old + 1_000_000))

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=10, follow_redirects=False)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def running_stack(path: Path, clock: FakeClock, serve: bool = True) -> AsyncIterator[Stack]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # a reload re-runs setup_logging
    try:
        async with _running_stack(path, clock, serve) as stack:
            yield stack
    finally:
        root.handlers[:], root.level = handlers, level


@contextlib.asynccontextmanager
async def _running_stack(path: Path, clock: FakeClock, serve: bool) -> AsyncIterator[Stack]:
    settings = config_mod.load(path)
    store = open_configured_store(settings, clock)
    live = LiveSources(settings)
    async with Fetcher(settings.fetch, clock) as fetcher:
        pipeline = Pipeline(
            settings, store, fetcher.fetch, clock, rng=random.Random(1), owner="test", processes=1
        )
        dispatcher = Dispatcher(
            store,
            pipeline,
            live.get,
            clock,
            "test",
            settings.schedule.batch_size,
            settings.schedule.lease,
        )
        feeds = FeedService(settings, store, live.get)
        pokes: list[int] = []
        ready = {"scheduler": True}
        app = create_app(feeds, ready=lambda: ready["scheduler"])
        scheduler = Scheduler(
            dispatcher,
            settings.schedule.dispatch_every,
            Retention(store, clock, lambda: live.settings.retention),
        )
        ops = attach(
            app,
            settings=settings,
            config_path=path,
            store=store,
            clock=clock,
            update_sources=live.update,
            sources=live.get,
            pipeline=pipeline,
            feeds=feeds,
            dispatcher=dispatcher,
            poke=lambda: pokes.append(1),
            scheduler=scheduler,
        )
        stack = Stack(
            path,
            settings,
            clock,
            store,
            live,
            pipeline,
            dispatcher,
            feeds,
            ops,
            scheduler,
            pokes=pokes,
            ready=ready,
        )
        server: _QuietServer | None = None
        task = None
        if serve:
            port = settings.server.port
            server = _QuietServer(
                uvicorn.Config(
                    app,
                    host="127.0.0.1",
                    port=port,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    log_config=None,
                )
            )
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)  # uvicorn binding its socket on this loop
            stack.base = f"http://127.0.0.1:{port}"
        try:
            yield stack
        finally:
            if server is not None and task is not None:
                server.should_exit = True
                await task
            scheduler.shutdown()
            store.close()


def make_config(
    tmp: Path,
    origin: Origin,
    feeds: dict[str, bytes],
    server_extra: str = "",
    extra: dict[str, dict[str, str]] | None = None,
) -> tuple[Path, str]:
    """Serve each feed body at /ID on the origin and write a config naming them; return the path
    and the text (for edits)."""
    from .origin import Reply

    blocks = ""
    for sid, body in feeds.items():
        url = origin.route(f"/{sid}", Reply(body, content_type="application/atom+xml"))
        blocks += source_block(sid, url, **(extra or {}).get(sid, {}))
    text = config_text(tmp, free_port(), blocks, server_extra)
    path = tmp / "aggregator.toml"
    path.write_text(text, encoding="utf-8")
    return path, text
