"""Limits that hold an HTTP/1.1 server up against hostile clients, on uvicorn's httptools
connection class (the class ``uvicorn.Config(http=...)`` takes; ``connection_class`` builds it).

Owns, per process (``[server]`` settings):

- the size of a request line (``max_request_line``, else 414) and of a request head, request line
  and headers together (``max_header_bytes``, else 431), counted as the bytes arrive, before any
  parser keeps them: a client that sends 300 MB of headers costs at most one read beyond the cap
  (httptools has no limit of its own; uvicorn's ``h11_max_incomplete_event_size`` bounds only
  its h11 protocol, which the daemon sets too);
- a deadline for a request's head (``header_timeout``) from the moment the connection opens or the
  request's first byte arrives, so a client that sends nothing, or a header a byte at a time, is
  closed (idle keep-alive connections are closed by ``keep_alive_timeout``, uvicorn's
  ``timeout_keep_alive``);
- a cap on open connections (``max_connections``): when a new connection passes it, the oldest
  connection still waiting for a request head is closed (else the new one), so a flood of half-open
  connections can never keep ``/healthz`` or a feed reader out (uvicorn's ``limit_concurrency``
  would answer 503 to the newcomer instead, however idle the others).

Also sends the writes of one event-loop turn together (``Coalescing``): uvicorn writes a response's
head and its body separately, two system calls and two packets where one of each does.

``GuardedHttpTools`` wraps uvicorn's ``HttpToolsProtocol`` at ``connection_made``,
``data_received``, the parser callbacks for the URL and headers, ``send_400_response`` and
``connection_lost``, and reads whether an answer is in progress (``cycle``, ``pipeline``);
``tests/test_server_limits.py`` pins that over real sockets for each uvicorn release. Does not
own: answering requests (the ASGI app).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config.settings import ServerSettings

PIECE = 4096  # bytes fed to the parser at a time, so a head is cut within this much of its cap
HOLD = 16 * 1024  # writes held for the rest of a loop turn while they sum to less than this
_REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class Limits:
    max_request_line: int = 8 * 1024
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    max_connections: int = 1000

    @classmethod
    def of(cls, server: ServerSettings) -> Limits:
        return cls(
            server.max_request_line,
            server.max_header_bytes,
            server.header_timeout,
            server.max_connections,
        )


def connection_class(limits: Limits) -> type[GuardedHttpTools]:
    """The connection class for ``uvicorn.Config(http=...)`` of one server, within ``limits``,
    its connections counted together."""
    shared = {"limits": limits, "registry": Connections(limits.max_connections)}
    return type("GuardedConnection", (GuardedHttpTools,), shared)


class Refused(Exception):
    """Raised from a parser callback: answer ``status`` and close."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Guarded(Protocol):
    def waiting(self) -> bool: ...
    def close_now(self) -> None: ...


class Connections:
    """The open connections of one process, oldest first, held to ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open: dict[Guarded, None] = {}

    def admit(self, conn: Guarded) -> None:
        """Count ``conn``; past the cap, close the oldest one waiting for a request (or ``conn``)."""
        self.open[conn] = None
        if len(self.open) <= self.cap:
            return
        victim = next((c for c in self.open if c is not conn and c.waiting()), conn)
        self.open.pop(victim, None)
        victim.close_now()

    def discard(self, conn: Guarded) -> None:
        self.open.pop(conn, None)


def refusal(status: int) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection."""
    body = b"%d %s\n" % (status, _REASONS[status])
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
    )


class HeadDeadline:
    """A timer that closes a connection whose request head did not arrive in time."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, expire: Callable[[], None]
    ) -> None:
        self.loop, self.seconds, self.expire = loop, seconds, expire
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Arm the deadline, unless it is already running."""
        if self.handle is None:
            self.handle = self.loop.call_later(self.seconds, self._fire)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _fire(self) -> None:
        self.handle = None
        self.expire()


class Coalescing(asyncio.Transport):
    """``transport`` with the small writes of one event-loop turn held and sent together with
    the next write (one ``writev``), or at the end of the turn: a response's head leaves with its
    body. Writes are never reordered; ``close`` sends what is held first."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.transport, self.loop = transport, loop
        self.held: list[bytes] = []
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.held and len(data) >= HOLD:
            self.transport.write(data)
            return
        self.held.append(bytes(data))
        self.size += len(data)
        if self.size >= HOLD:
            self.flush()
        elif len(self.held) == 1:
            self.loop.call_soon(self.flush)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        held, self.held, self.size = self.held, [], 0
        if not held or self.transport.is_closing():
            return
        if len(held) == 1:
            self.transport.write(held[0])
        else:
            self.transport.writelines(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.held, self.size = [], 0
        self.transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + self.size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol within ``limits``; ``registry`` counts the connections."""

    limits: ClassVar[Limits]
    registry: ClassVar[Connections]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_head = True  # between requests or inside a request line and headers
        self.head_bytes = 0
        self.deadline = HeadDeadline(self.loop, self.limits.header_timeout, self._too_slow)
        self.refused: int | None = None  # the status a parser callback refused the request with
        self.pending: int | None = None  # a refusal to send once the answer in progress is out

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(Coalescing(transport, self.loop))
        self.deadline.start()
        self.registry.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        self.deadline.stop()
        super().connection_lost(exc)

    def waiting(self) -> bool:
        return self.in_head and (self.cycle is None or self.cycle.response_complete)

    def close_now(self) -> None:
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.waiting():  # bytes between requests (even bare line breaks) start the clock
            self.deadline.start()
        for start in range(0, len(data), PIECE):
            piece = data[start : start + PIECE]
            if self.in_head:
                self.head_bytes += len(piece)
                if self.head_bytes > self.limits.max_header_bytes:
                    self._refuse(431)
                    return
            self._feed(piece)
            if self.transport.is_closing():
                return

    def _feed(self, piece: bytes) -> None:
        self.refused = None
        super().data_received(piece)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which our own refusals (raised from a parser
        callback) also arrive as."""
        if self.refused is not None:
            self._refuse(self.refused)
        else:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.deadline.start()  # a request's first byte: its head must follow in time

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.max_request_line:
            self.refused = 414
            raise Refused(414)
        super().on_url(url)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.deadline.stop()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head, self.head_bytes = True, 0

    def _too_slow(self) -> None:
        if self.waiting() and not self.transport.is_closing():
            self._refuse(408)

    def on_response_complete(self) -> None:
        if self.pending is None or self.pipeline:
            super().on_response_complete()
            return
        self.server_state.total_requests += 1
        self._refuse(self.pending)

    def _refuse(self, status: int) -> None:
        """Answer ``status`` and close; after the answer in progress, if there is one."""
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete or self.pipeline:
            self.pending = status
            self.flow.pause_reading()  # the parser is spent: nothing more is read
            return
        self.transport.write(refusal(status))
        self.transport.close()
