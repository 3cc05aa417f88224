"""Limits against hostile clients, on a real uvicorn server with the daemon's settings
(``daemon.server_config``, its connection class from ``http/limits.py``): header floods, long
request lines, slow heads, half-open connection floods; /healthz keeps answering through all of
them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.http.app import create_app
from aggregator.http.limits import Coalescing, Limits
from aggregator.runtime.daemon import server_config

from .feedworld import World, make_world
from .test_serving import _Quiet

LIMITS = Limits(
    max_request_line=1024, max_header_bytes=8192, header_timeout=0.5, max_connections=50
)
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


@dataclass
class Served:
    world: World
    port: int
    connection_class: type

    async def ask(self, raw: bytes, timeout: float = 5.0) -> bytes:
        """Send ``raw`` on a new connection; everything the server sends until it closes or goes
        quiet for 0.3 s (a kept-alive connection)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(raw)
        got = b""
        try:
            async with asyncio.timeout(timeout):
                while chunk := await _read(reader, 0.3 if got else timeout):
                    got += chunk
        finally:
            writer.close()
        return got

    async def healthy(self) -> bool:
        return (await self.ask(HEALTHZ)).startswith(b"HTTP/1.1 200")


async def _read(reader: asyncio.StreamReader, quiet: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(65536), quiet)
    except (TimeoutError, ConnectionError):
        return b""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    world = make_world(tmp_path)
    world.add("hn", 2)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = world.feeds.settings.server.model_copy(update={"keep_alive_timeout": 0.3})
    config = server_config(create_app(world.feeds), settings, limits=LIMITS)
    server = _Quiet(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield Served(world, sock.getsockname()[1], config.http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def _flood(port: int, head: bytes, total: int) -> int:
    """Send ``head`` and then header bytes up to ``total``; how many were sent before the server
    closed the connection."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        chunk = b"X-Flood: " + b"a" * 65000 + b"\r\n"
        try:
            s.sendall(head)
            while sent < total:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
    return sent


@pytest.mark.parametrize(
    "head",
    [
        b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n",
        HEALTHZ + b"GET /healthz HTTP/1.1\r\nHost: t\r\n",
    ],
    ids=["feed", "healthz", "after-an-answer"],
)
async def test_a_header_flood_is_cut_off(served: Served, head: bytes) -> None:
    """A client sending endless headers is cut off within a few reads of the cap, not buffered."""
    sent = await asyncio.to_thread(_flood, served.port, head, 64 * 1024 * 1024)
    assert sent < 16 * 1024 * 1024
    assert await served.healthy()


@pytest.mark.parametrize("path", [b"/feeds/all.atom", b"/healthz"])
async def test_oversized_heads_get_431_and_long_lines_414(served: Served, path: bytes) -> None:
    """A head past max_header_bytes is answered 431, a request line past max_request_line 414."""
    big = b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    assert (await served.ask(big)).startswith(b"HTTP/1.1 431")
    long_line = b"GET " + path + b"?q=" + b"a" * 2000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    assert (await served.ask(long_line)).startswith(b"HTTP/1.1 414")
    assert (await served.ask(HEALTHZ + long_line)).count(b"HTTP/1.1 ") == 2  # 200, then 414


async def test_slow_and_silent_clients_are_closed(served: Served) -> None:
    """A connection that sends nothing, or a head a byte at a time, is closed at header_timeout."""
    started = time.monotonic()
    assert (await served.ask(b"")).startswith(b"HTTP/1.1 408")
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    answer = asyncio.create_task(reader.read(65536))
    for _ in range(20):  # 2 s of dribbling, four times the deadline
        if answer.done():
            break
        with contextlib.suppress(ConnectionError):
            writer.write(b"X: a\r\n")
        await asyncio.sleep(0.1)
    writer.close()
    assert (await answer).startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    "first", [HEALTHZ, b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\n\r\n"], ids=["healthz", "feed"]
)
async def test_blank_lines_do_not_keep_a_connection_open(served: Served, first: bytes) -> None:
    """After an answer, a client sending only line breaks (no request) is closed at header_timeout,
    although every byte resets the keep-alive timer."""
    await served.ask(first)  # a feed is then cached
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(first)
    assert (await _read(reader, 2.0)).startswith(b"HTTP/1.1 200")
    closed = asyncio.create_task(reader.read())
    for _ in range(20):  # 2 s of blank lines every 0.1 s
        if closed.done():
            break
        with contextlib.suppress(ConnectionError):
            writer.write(b"\r\n")
        await asyncio.sleep(0.1)
    writer.close()
    assert closed.done()


async def test_half_open_connections_never_keep_healthz_out(served: Served) -> None:
    """A thousand connections that send nothing: at most max_connections stay open, the oldest
    are closed, and /healthz and a feed are answered throughout."""
    opened = []
    for _ in range(1000):
        opened.append(await asyncio.open_connection("127.0.0.1", served.port))
        if len(opened) % 250 == 0:
            assert await served.healthy()
            assert (
                await served.ask(b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\n\r\n")
            ).startswith(b"HTTP/1.1 200")
    await asyncio.sleep(0.05)
    registry = served.connection_class.registry  # type: ignore[attr-defined]
    assert len(registry.open) <= LIMITS.max_connections
    closed = [r for r, _ in opened if r.at_eof() or await _read(r, 0.001) != b"" or r.at_eof()]
    assert len(closed) >= 1000 - LIMITS.max_connections
    for _, w in opened:
        w.close()


async def test_private_feeds_are_checked_when_cached(served: Served) -> None:
    """With feeds private, a cached feed is not answered without the key."""
    get = b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\n\r\n"
    assert (await served.ask(get)).startswith(b"HTTP/1.1 200")  # cached now
    settings = served.world.feeds.settings
    server = settings.server.model_copy(update={"access_key": "k", "private": ("feeds",)})
    served.world.feeds.update(settings.model_copy(update={"server": server}))
    assert (await served.ask(get)).startswith(b"HTTP/1.1 403")
    assert (await served.ask(get.replace(b".atom", b".atom?key=k"))).startswith(b"HTTP/1.1 200")


class _Recording(asyncio.Transport):
    """A transport that records what it is asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[bytes]] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append([bytes(data)])

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.calls.append([bytes(d) for d in list_of_data])

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_a_head_and_its_body_leave_in_one_write() -> None:
    """The writes of one event-loop turn go out together (one writev), in order; a big write
    with nothing held goes straight out; a head alone (HEAD, 304) leaves at the end of the turn."""
    sent = _Recording()
    out = Coalescing(sent, asyncio.get_running_loop())
    head, body = b"HTTP/1.1 200 OK\r\ncontent-length: 99999\r\n\r\n", b"x" * 99999
    out.write(head)
    out.write(body)
    assert sent.calls == [[head, body]]
    out.write(body)
    assert sent.calls[-1] == [body]
    out.write(head)
    assert len(sent.calls) == 2
    await asyncio.sleep(0)
    assert sent.calls[-1] == [head]


async def test_closing_sends_what_is_held_and_nothing_follows_a_close() -> None:
    sent = _Recording()
    out = Coalescing(sent, asyncio.get_running_loop())
    out.write(b"408 answer")
    out.close()
    assert sent.calls == [[b"408 answer"]] and sent.closed
    out.write(b"late")
    await asyncio.sleep(0)
    assert sent.calls == [[b"408 answer"]]
