"""Composition of a running service: settings, store, fetcher, pipeline, scheduler and server.

Owns: building these for one config and role, the command line's overrides of it (``--host``,
``--port``, applied again on every reload), the process's lifetime (start, serve, clean stop on
SIGTERM or SIGINT), and the live set of configured sources. Roles ``all`` and ``web`` serve
everything on ``server.port``; a ``worker`` serves only health and metrics, on
``server.worker_port`` when set. With ``[server] processes = N`` (N > 1) the daemon forks N - 1
read-only web processes onto its port first (``webprocs``): it forwards SIGTERM, SIGINT and
SIGHUP to them, replaces one that dies (with backoff) and reaps them before it exits; each
watches the config file itself (live reload reaches it) and stops when its parent is gone. Does
not own: what any of them do.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ..clock import Clock, SystemClock
from ..config.settings import ServerSettings, Settings
from ..errors import UsageError
from ..fetch import Fetcher
from ..http.app import create_app
from ..http.limits import Limits, connection_class
from ..http.operate import Operations, attach
from ..logs import kv, setup_logging
from ..models import FetchOutcome, Source
from ..pipeline.update import Pipeline
from ..publish.feeds import FeedService
from ..publish.opmlcache import OpmlDocument
from ..publish.websub import WebSubPublisher
from ..store import Store, open_store
from . import webprocs
from .owners import is_gone, owner_id
from .roles import Role
from .scheduler import Dispatcher, Retention, Scheduler
from .webprocs import WebProcesses

log = logging.getLogger("aggregator.daemon")
OutcomeHook = Callable[[list[FetchOutcome]], None]
Adjust = Callable[[Settings], Settings]
# What a worker's listener answers; everything else is 404 there (it serves no feeds).
WORKER_PATHS = ("/metrics", "/healthz", "/readyz")


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


def open_configured_store(settings: Settings, clock: Clock) -> Store:
    store = open_store(settings.storage.url, clock.now(), settings.storage)
    store.sync_sources(settings.source_records(), clock.now())
    return store


# Seconds a cached feed is served without asking the store whether anything changed: the longest
# a write by another process (a worker) takes to show in this process's feeds.
RECHECK_AFTER = 1.0


LoopFactory = Callable[[], asyncio.AbstractEventLoop] | None


def command_line(host: str | None, port: int | None, role: Role) -> Adjust | None:
    """The settings as ``run --host/--port`` changes them (for every load, reloads included):
    ``--port`` is ``server.port``, or ``server.worker_port`` for a worker. None: no change."""
    server: dict[str, object] = {}
    if host is not None:
        server["host"] = host
    if port is not None:
        server[role.port_key()] = port
    if not server:
        return None

    def adjust(settings: Settings) -> Settings:
        return settings.model_copy(update={"server": settings.server.model_copy(update=server)})

    return adjust


def listen_port(settings: Settings, role: Role) -> int | None:
    """The port this role serves HTTP on (None: a worker without ``worker_port``)."""
    return role.port(settings.server)


def run(
    settings: Settings,
    config_path: Path,
    role: Role = Role.ALL,
    loop_factory: LoopFactory = None,
    adjust: Adjust | None = None,
) -> int:
    """The daemon in ``role`` until SIGTERM or SIGINT, each process on its own event loop: with
    ``[server] processes = N > 1`` (roles that serve HTTP) N - 1 web processes are forked first
    onto sockets bound here, then this process serves beside them. Returns the exit code: 0
    after a clean stop of every process."""
    if adjust is not None:
        settings = adjust(settings)
    extra = role.extra_web_processes(settings.server)
    if extra == 0:
        return _on_loop(serve(settings, config_path, role=role, adjust=adjust), loop_factory)

    def web_process(sock: socket.socket, parent: int) -> int:
        return _on_loop(
            serve(settings, config_path, role=Role.WEB, sock=sock, parent=parent, adjust=adjust),
            loop_factory,
        )

    # Create or migrate the schema once, here: processes opening a new database at once would
    # race to create it. Closed before forking, so no process inherits a connection.
    open_store(settings.storage.url, SystemClock().now(), settings.storage).close()
    try:
        sock, web = webprocs.fork(
            settings.server.host, settings.server.port, extra + 1, web_process
        )
    except OSError as exc:
        raise cannot_listen(settings.server.host, settings.server.port, exc) from None
    web.respawn = (web_command(settings, config_path), sock)
    try:
        code = _on_loop(
            serve(settings, config_path, role=role, sock=sock, web=web, adjust=adjust), loop_factory
        )
    finally:
        web.signal(signal.SIGTERM)  # already stopping after a signal; not if serve() failed
        codes = web.wait()
    return code or max((1 for c in codes.values() if c != 0), default=0)


def web_command(settings: Settings, config_path: Path) -> list[str]:
    """``aggregator`` arguments for a web process like the forked ones: the same config file,
    with the host and port this daemon runs with (so its self links are the same)."""
    host, port = settings.server.host, settings.server.port
    return [
        "--config",
        str(config_path),
        "run",
        "--role",
        Role.WEB,
        "--host",
        host,
        "--port",
        str(port),
    ]


def run_web_child(
    settings: Settings,
    config_path: Path,
    listen_fd: int,
    parent_fd: int,
    loop_factory: LoopFactory = None,
    adjust: Adjust | None = None,
) -> int:
    """A replacement web process (``webprocs.WebProcesses.replace``): serve on the inherited
    listening socket until SIGTERM or the parent pipe's end-of-file."""
    if adjust is not None:
        settings = adjust(settings)
    sock = socket.socket(fileno=listen_fd)
    os.set_inheritable(parent_fd, False)
    return _on_loop(
        serve(settings, config_path, role=Role.WEB, sock=sock, parent=parent_fd, adjust=adjust),
        loop_factory,
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts or logs: a port in use (or any other
    reason the address cannot be had) is one clear error, not a traceback after ``started``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise cannot_listen(host, port, exc) from None


def cannot_listen(host: str, port: int, exc: OSError) -> UsageError:
    why = (
        "the port is in use (another process listens there)"
        if exc.errno == errno.EADDRINUSE
        else exc.strerror or str(exc)
    )
    return UsageError(
        f"cannot listen on {host}:{port}: {why}; stop the other process, or change "
        "[server] port or pass --port"
    )


def _on_loop(main: Coroutine[None, None, int], loop_factory: LoopFactory) -> int:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)


async def serve(
    settings: Settings,
    config_path: Path,
    clock: Clock | None = None,
    role: Role = Role.ALL,
    sock: socket.socket | None = None,
    parent: int | None = None,
    web: WebProcesses | None = None,
    adjust: Adjust | None = None,
) -> int:
    """Run the daemon in ``role`` until SIGTERM or SIGINT; return the exit code. ``sock``: a
    bound socket to serve on instead of binding ``[server]`` host and port (``worker_port`` for
    a worker; a worker without one has no HTTP); ``parent``: a pipe whose end-of-file means the
    parent process is gone (stop then); ``web``: forked web processes to pass signals on to;
    ``adjust``: the command line's overrides, applied again to every reloaded config."""
    clock = clock or SystemClock()
    port = listen_port(settings, role)
    if sock is None and port is not None:
        sock = bind(settings.server.host, port)
    setup_logging(settings.logging)
    if not role.fetches:  # a reader: never writes sources or entries
        store = open_store(settings.storage.url, clock.now(), settings.storage)
    else:
        store = open_configured_store(settings, clock)
        store.release_orphaned(is_gone)  # a crashed predecessor's sources are due again at once
    live = LiveSources(settings)
    owner = owner_id()
    async with Fetcher(settings.fetch, clock) as fetcher:
        pipeline = Pipeline(settings, store, fetcher.fetch, clock, owner=owner)
        dispatcher = Dispatcher(
            store,
            pipeline,
            live.get,
            clock,
            owner,
            settings.schedule.batch_size,
            settings.schedule.lease,
            timeout=settings.storage.request_timeout,
        )
        retention = Retention(store, clock, lambda: live.settings.retention)
        scheduler = Scheduler(dispatcher, settings.schedule.dispatch_every, retention)
        feeds = FeedService(settings, store, live.get, clock, recheck_after=RECHECK_AFTER)
        opml = OpmlDocument(feeds)
        app = create_app(
            feeds, ready=(lambda: scheduler.running) if role.fetches else None, opml=opml
        )
        ops = attach(
            app,
            settings=settings,
            config_path=config_path,
            store=store,
            clock=clock,
            update_sources=live.update,
            sources=live.get,
            pipeline=pipeline,
            feeds=feeds,
            dispatcher=dispatcher,
            poke=scheduler.poke,
            sync_store=role.fetches,
            role=role,
            process=owner,
            scheduler=scheduler if role.fetches else None,
            adjust=adjust,
        )
        dispatcher.on_outcomes = _then_changed(feeds, dispatcher.on_outcomes)
        websub = WebSubPublisher.configured(feeds, clock) if role.fetches else None
        if websub is not None:  # chained after the hooks attach() installed; primed before ticks
            dispatcher.on_outcomes = websub.hook(dispatcher.on_outcomes)
            await websub.prime()
        server = _Server(
            server_config(
                app if role.serves_feeds else _only(app, WORKER_PATHS), settings.server, port
            )
        )
        _on_signals(server, web)
        if role.fetches:
            scheduler.start()
        ops.start()
        _lifelines(server, ops, web, parent)
        port = sock.getsockname()[1] if sock is not None else port
        log.info(
            "%s",
            kv(
                event="started",
                role=str(role),
                pid=os.getpid(),
                sources=len(live.by_id),
                listen=f"http://{settings.server.host}:{port}" if port is not None else "none",
                processes=1 + len(web.pids) if web else None,
                store=settings.storage.url.split("@")[-1],
                config=config_path,
            ),
        )
        try:
            if port is not None:  # returns once a signal sets should_exit
                await server.serve(sockets=[sock] if sock is not None else None)
            while port is None and not server.should_exit:  # a worker without a listener
                await asyncio.sleep(0.2)
        finally:
            await ops.stop()
            await _stop(scheduler, dispatcher, store, owner, websub)
            pipeline.close()  # its worker processes
            if web is not None:
                _report(web, await asyncio.to_thread(web.wait))
    return 0


def server_config(
    app: ASGIApp, server: ServerSettings, port: int | None = None, limits: Limits | None = None
) -> uvicorn.Config:
    """uvicorn's settings for serving ``app`` (on ``port``, when it binds the socket itself):
    quiet (our own logs and metrics), no lifespan, every connection within the ``[server]``
    limits (``limits``: others, for tests), through uvicorn's public options and
    ``http/limits.py``'s connection class."""
    return uvicorn.Config(
        app,
        host=server.host,
        port=port or 0,
        log_level="warning",
        access_log=False,
        lifespan="off",
        log_config=None,
        server_header=False,
        http=connection_class(limits or Limits.of(server)),
        timeout_keep_alive=server.keep_alive_timeout,  # type: ignore[arg-type]  # a float works
        h11_max_incomplete_event_size=server.max_header_bytes,
    )


def _only(app: ASGIApp, paths: tuple[str, ...]) -> ASGIApp:
    """``app`` answering only ``paths``; a plain 404 for anything else."""

    async def only(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in paths:
            await app(scope, receive, send)
            return
        body = f"404 Not Found: a worker serves only {', '.join(paths)}\n".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return only


def _then_changed(feeds: FeedService, hook: OutcomeHook | None) -> OutcomeHook:
    """The dispatcher's outcome hook, then: cached feeds look at the store again (this process's
    writes show at once; WebSub, chained after, compares freshly confirmed documents)."""

    def both(outcomes: list[FetchOutcome]) -> None:
        if hook is not None:
            hook(outcomes)
        feeds.changed()

    return both


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture: uvicorn re-raises a captured SIGTERM after
    serving, which would end the process by signal instead of exiting 0 after a clean stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _on_signals(server: uvicorn.Server, web: WebProcesses | None = None) -> None:
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        log.info("%s", kv(event="signal", signal=sig.name, action="stop"))
        server.should_exit = True
        if web is not None:
            web.signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)


def _lifelines(
    server: uvicorn.Server, ops: Operations, web: WebProcesses | None, parent: int | None
) -> None:
    """A web process stops when its parent is gone; a parent passes SIGHUP on, and logs and
    replaces a web process that exits on its own (with backoff: ``webprocs``)."""
    loop = asyncio.get_running_loop()
    if parent is not None:

        def orphaned() -> None:
            loop.remove_reader(parent)
            log.warning("%s", kv(event="parent_gone", action="stop"))
            server.should_exit = True

        loop.add_reader(parent, orphaned)
    if web is not None:

        def hangup() -> None:  # replaces the handler ops.start() installed, and does its work
            log.info("%s", kv(event="signal", signal="SIGHUP", action="reload"))
            ops.reloader.reload("SIGHUP")
            web.signal(signal.SIGHUP)

        loop.add_signal_handler(signal.SIGHUP, hangup)
        _watch(web, server)


def _watch(web: WebProcesses, server: uvicorn.Server, every: float = 1.0) -> None:
    loop = asyncio.get_running_loop()

    def look() -> None:
        if server.should_exit:  # stopping: serve() reaps and reports them
            return
        for pid, code in web.poll():
            delay = web.restart_delay(pid)
            log.error(
                "%s",
                kv(
                    event="web_process_exited",
                    pid=pid,
                    code=code,
                    restart_in=f"{delay:g}s" if web.respawn else None,
                ),
            )
            if web.respawn is not None:
                loop.call_later(delay, replace, pid)
        loop.call_later(every, look)

    def replace(dead: int) -> None:
        if server.should_exit:
            return
        try:
            pid = web.replace(dead)
        except OSError as exc:
            delay = web.restart_delay(dead)
            log.error(
                "%s",
                kv(
                    event="web_process_restart_failed",
                    replacing=dead,
                    error=str(exc),
                    retry_in=f"{delay:g}s",
                ),
            )
            loop.call_later(delay, replace, dead)
            return
        log.warning("%s", kv(event="web_process_restarted", pid=pid, replacing=dead))

    loop.call_later(every, look)


def _report(web: WebProcesses, codes: Mapping[int, int]) -> None:
    for pid, code in sorted(codes.items()):
        log.info("%s", kv(event="web_process_stopped", pid=pid, code=code))


async def _stop(
    scheduler: Scheduler,
    dispatcher: Dispatcher,
    store: Store,
    owner: str,
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
