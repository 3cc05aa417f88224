"""The daemon's HTTP/1.1 connections: a cached feed answered from the connection's data callback,
every other request handed, with its connection, to uvicorn.

Why: a cached 194 KB feed costs the server about 75 µs of CPU through uvicorn and the ASGI app, of
which about 30 µs is uvicorn's per-request machinery (a scope dict, a task, two ASGI messages,
header validation, two writes); answered here it costs about 45 µs, close to a bare asyncio
server writing the same bytes.

Owns: reading requests with httptools (the parser uvicorn uses); answering here only a GET or
HEAD of a ``/feeds/`` URL (or of ``/opml``) over HTTP/1.1 keep-alive, without a body, ``Expect``
or ``Upgrade``, whose document is cached and confirmed (``publish.http.cached_reply``,
``OpmlDocument.cached``), in one write of the same
status line, ``date`` and header lines uvicorn would send; keep-alive timeouts and graceful
shutdown of the connections that stay here. On the first request it does not answer (a miss,
another path, anything unusual, bytes that do not parse, or a client that stopped reading), the
connection goes to uvicorn's own protocol for good, with every byte of that request and what
follows, as uvicorn hands a connection to its WebSocket protocol. So each request is answered
once, in order, and everything but a cached feed behaves exactly as uvicorn does.

Both sides hold the limits of ``limits.py`` (request line and head size, head deadline, the
connection cap): a request with a body is handed over at the end of its head, so only heads are
ever buffered here.

Relies on what uvicorn gives any protocol class (``config``, ``server_state``, ``app_state``,
``_loop``) and on ``ServerState``'s ``connections`` (graceful shutdown calls ``shutdown()`` on
each), ``default_headers`` and ``total_requests``, as its own protocols do;
``tests/test_fastlane.py`` pins the behaviour over real sockets.

Does not own: which feeds exist or whether a document is fresh (publish/), the ASGI app
(server.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, cast
from urllib.parse import parse_qsl

import httptools
from uvicorn.config import Config
from uvicorn.server import ServerState

from ..publish.feeds import FeedService
from ..publish.opmlcache import OpmlDocument
from . import replies as feed_http
from .limits import Connections, GuardedHttpTools, HeadDeadline, Limits, Refused, refusal

log = logging.getLogger("aggregator.fastlane")

PREFIX = b"/feeds/"
OPML = b"/opml"
_CONDITIONS = frozenset({b"accept-encoding", b"if-none-match", b"if-modified-since"})
_NOT_HERE = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
_STATUS = {200: b"HTTP/1.1 200 OK\r\n", 304: b"HTTP/1.1 304 Not Modified\r\n"}


def protocol(
    feeds: FeedService, opml: OpmlDocument | None = None, limits: Limits | None = None
) -> type[asyncio.Protocol]:
    """The connection class to give uvicorn (``uvicorn.Config(http=...)``) for ``feeds`` (and
    the /opml document the app serves, when given), within ``limits`` (default: the ``[server]``
    settings; see limits.py)."""
    limits = limits or Limits.of(feeds.settings.server)
    shared = {"limits": limits, "registry": Connections(limits.max_connections)}
    uvicorn_side = type("GuardedConnection", (GuardedHttpTools,), shared)
    return type("FeedConnection", (FeedConnection,),
                {"feeds": feeds, "opml": opml, "uvicorn_side": uvicorn_side, **shared})


class _HandOver(Exception):
    """Raised from a parser callback: this request is uvicorn's."""


class FeedConnection(asyncio.Protocol):
    """One client connection, until it is handed to uvicorn."""

    feeds: ClassVar[FeedService]
    limits: ClassVar[Limits]
    registry: ClassVar[Connections]
    uvicorn_side: ClassVar[type[GuardedHttpTools]]
    opml: ClassVar[OpmlDocument | None] = None

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config  # what uvicorn gives any protocol class; kept for the hand-over
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.unanswered = bytearray()  # received bytes from the first request not answered yet
        self.paused = False  # the transport's buffer is full: the client is not reading
        self.idle: asyncio.TimerHandle | None = None
        self.deadline = HeadDeadline(self.loop, self.limits.header_timeout, self._too_slow)
        self.url = b""
        self.conditions: dict[str, str] = {}
        self.plain = True

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server_state.connections.add(self)  # type: ignore[arg-type]  # uvicorn calls shutdown()
        self.deadline.start()
        self.registry.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self.registry.discard(self)
        self.deadline.stop()
        self._stop_idle()

    def waiting(self) -> bool:
        return True  # a request is answered at once, from the data callback: never in progress

    def close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._stop_idle()
        self.deadline.start()  # a request is arriving: its head must be complete in time
        self.unanswered += data
        if len(self.unanswered) > self.limits.max_header_bytes:  # only heads are kept here
            self._refuse(431)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # also a _HandOver raised in a callback
            if isinstance(exc.__context__, Refused):
                self._refuse(exc.__context__.status)
                return
            if not isinstance(exc.__context__, _HandOver) and not isinstance(
                exc, httptools.HttpParserUpgrade
            ):
                log.debug("handing over a request the parser refused: %s", exc)
            self._hand_over()
            return
        if not self.unanswered:
            self.deadline.stop()
            self._start_idle()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: nothing is ever half answered here, so close."""
        if self.transport is not None:
            self.transport.close()

    # --- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.conditions = {}
        self.plain = True

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.max_request_line:
            raise Refused(414)
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in _CONDITIONS:
            self.conditions.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        elif name in _NOT_HERE:
            self.plain = False

    def on_headers_complete(self) -> None:
        if not self.plain:
            raise _HandOver  # a body (or Expect, Upgrade) is uvicorn's, before it is read here

    def on_message_complete(self) -> None:
        reply = self._reply()
        if reply is None:
            raise _HandOver
        assert self.transport is not None
        head = _STATUS[reply.status] + _defaults(self.server_state) + reply.wire_head + b"\r\n"
        if reply.body and self.parser.get_method() == b"GET":
            self.transport.writelines((head, reply.body))
        else:
            self.transport.write(head)
        self.server_state.total_requests += 1
        self._answered()

    # --- here or there --------------------------------------------------------------------------

    def _reply(self) -> feed_http.Reply | None:
        p = self.parser
        if (not self.plain or self.paused or p.get_method() not in (b"GET", b"HEAD")
                or p.get_http_version() != "1.1" or not p.should_keep_alive() or p.should_upgrade()):
            return None
        if self.url == OPML and self.opml is not None:
            doc = self.opml.cached()
            return None if doc is None else feed_http.conditional(self.conditions, doc)
        if not self.url.startswith(PREFIX):
            return None
        server = self.feeds.settings.server
        if server.access_key and "feeds" in server.private:
            return None  # private feeds: uvicorn's side checks the key (web/access.py)
        url = httptools.parse_url(self.url)
        rest = url.path.decode("utf-8", "replace").removeprefix(PREFIX.decode())
        params = parse_qsl(url.query.decode("latin-1"), keep_blank_values=True) if url.query else ()
        reply = feed_http.cached_reply(self.feeds, rest, params, self.conditions)
        return reply if reply is not None and reply.status in _STATUS else None

    def _answered(self) -> None:
        """Forget the bytes of the request just answered (no body: they end at its blank line)."""
        start = len(self.unanswered) - len(self.unanswered.lstrip(b"\r\n"))
        end = self.unanswered.find(b"\r\n\r\n", start)
        del self.unanswered[: end + 4 if end >= 0 else len(self.unanswered)]

    def _hand_over(self) -> None:
        """From now on uvicorn's protocol serves this connection, from the unanswered request."""
        assert self.transport is not None
        self._stop_idle()
        self.server_state.connections.discard(self)
        self.registry.discard(self)
        uvicorn_side = self.uvicorn_side(
            config=self.config, server_state=self.server_state, app_state=self.app_state,
            _loop=self.loop, head_deadline=self.deadline.at,
        )
        self.deadline.stop()
        uvicorn_side.connection_made(self.transport)
        self.transport.set_protocol(uvicorn_side)
        if self.paused:
            uvicorn_side.pause_writing()
        rest = bytes(self.unanswered.lstrip(b"\r\n"))
        self.unanswered.clear()
        if rest:
            uvicorn_side.data_received(rest)

    def _refuse(self, status: int) -> None:
        """Answer ``status`` (408, 414, 431) and close: the client broke a limit."""
        self._stop_idle()
        self.deadline.stop()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(refusal(status))
            self.transport.close()

    def _too_slow(self) -> None:
        self._refuse(408)

    def _start_idle(self) -> None:
        self.idle = self.loop.call_later(self.config.timeout_keep_alive, self._close_idle)

    def _stop_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None

    def _close_idle(self) -> None:
        self.idle = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


_defaults_seen: tuple[list[tuple[bytes, bytes]] | None, bytes] = (None, b"")


def _defaults(state: ServerState) -> bytes:
    """uvicorn's default header lines (``date``, refreshed by its server once a second)."""
    global _defaults_seen
    headers = state.default_headers
    if _defaults_seen[0] is not headers:
        _defaults_seen = (headers, b"".join(n + b": " + v + b"\r\n" for n, v in headers))
    return _defaults_seen[1]
