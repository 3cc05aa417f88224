"""Feeds over a real server: uvicorn on 127.0.0.1 with the daemon's settings
(``daemon.server_config``: the ``[server]`` limits, keep-alive) and the app, over the published
test world. Requests are raw bytes on real sockets, so pipelining, HEAD, conditional GETs, gzip,
keep-alive and a graceful stop are seen as a client sees them. Every request takes the one path:
uvicorn, the app, its routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from aggregator.clock import FakeClock
from aggregator.http.app import create_app
from aggregator.http.replies import conditional
from aggregator.publish.feeds import Rendered
from aggregator.runtime.daemon import server_config

from .feedworld import World, make_world
from .ops_stack import make_config, running_stack
from .origin import Origin
from .test_reload import atom

GET = b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\n\r\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def same_as(self, other: Answer) -> bool:
        """Equal but for the date (uvicorn's clock)."""
        mine = {k: v for k, v in self.headers.items() if k != "date"}
        theirs = {k: v for k, v in other.headers.items() if k != "date"}
        return (self.status, mine, self.body) == (other.status, theirs, other.body)


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Served:
    world: World
    server: uvicorn.Server
    port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    world = make_world(tmp_path)
    world.add("hn", 3)
    world.add("ruan", 2)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = world.feeds.settings.server.model_copy(update={"keep_alive_timeout": 0.3})
    server = _Quiet(server_config(create_app(world.feeds), settings))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # uvicorn starting on this loop
    try:
        yield Served(world, server, sock.getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def read_answer(reader: asyncio.StreamReader, head: bool = False) -> Answer:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    length = 0 if head or lines[0].split()[1] == "304" else int(headers.get("content-length", 0))
    return Answer(int(lines[0].split()[1]), headers, await reader.readexactly(length))


async def ask(served: Served, raw: bytes, heads: tuple[bool, ...] = (False,)) -> list[Answer]:
    """Send ``raw`` on a new connection and read one answer per entry of ``heads`` (True: HEAD)."""
    reader, writer = await served.connect()
    writer.write(raw)
    try:
        return [await read_answer(reader, head) for head in heads]
    finally:
        writer.close()


async def cached_on_a_connection(served: Served) -> Answer:
    """The plain GET of all.atom once the document is cached (the first one renders it)."""
    (first,) = await ask(served, GET)
    (again,) = await ask(served, GET)
    assert again.same_as(first)
    return again


async def test_a_cached_feed_is_answered_with_the_bytes_of_its_rendering(served: Served) -> None:
    """A cached feed gets the status, headers and body of the request that rendered it, with
    its content type, length and a date."""
    rendered = (await ask(served, GET))[0]
    reader, writer = await served.connect()
    writer.write(GET)
    again = await read_answer(reader)
    assert again.same_as(rendered)
    assert again.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert int(again.headers["content-length"]) == len(again.body) > 1000
    assert "date" in again.headers and "etag" in again.headers
    writer.close()


async def test_pipelined_feed_requests_are_answered_in_order(served: Served) -> None:
    """GET, HEAD, a conditional GET and a gzip GET sent at once come back in order, each right."""
    plain = await cached_on_a_connection(served)
    etag = plain.headers["etag"]
    raw = (
        GET
        + b"HEAD /feeds/all.atom HTTP/1.1\r\nHost: t\r\n\r\n"
        + b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\nIf-None-Match: "
        + etag.encode()
        + b"\r\n\r\n"
        + b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    got, head, not_modified, packed = await ask(served, raw, (False, True, False, False))
    assert got.same_as(plain)
    assert (head.status, head.body, head.headers["content-length"]) == (
        200,
        b"",
        str(len(plain.body)),
    )
    assert (not_modified.status, not_modified.body, not_modified.headers["etag"]) == (
        304,
        b"",
        etag,
    )
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["etag"] != etag


async def test_other_requests_between_feeds_are_answered_in_order(served: Served) -> None:
    """A cached feed, /healthz and the feed again, pipelined on one connection, come back in
    order, each right."""
    await cached_on_a_connection(served)
    reader, writer = await served.connect()
    writer.write(GET + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + GET)
    feed, health, feed_again = [await read_answer(reader) for _ in range(3)]
    assert (feed.status, health.status, feed_again.status) == (200, 200, 200)
    assert health.body.startswith(b"ok pid=")
    assert feed_again.same_as(feed)
    writer.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /feeds/nope.atom HTTP/1.1\r\nHost: t\r\n\r\n", 404),
        (b"GET /feeds/all.atom?filter=(a HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
        (b"GET /feeds/all.atom HTTP/1.0\r\n\r\n", 200),
        (b"GET /feeds/all.atom HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi", 200),
        (b"DELETE /feeds/all.atom HTTP/1.1\r\nHost: t\r\n\r\n", 405),
        (b"GET /feeds/all.atom HTTP/1.1\r\nHost t\r\n\r\n", 400),
    ],
)
async def test_unusual_requests_get_their_answer(served: Served, raw: bytes, status: int) -> None:
    """Unknown feeds (404), bad queries (400), Connection: close, HTTP/1.0, a body, other
    methods (405) and bytes that do not parse (400), after a feed was cached."""
    await cached_on_a_connection(served)
    (answer,) = await ask(served, raw)
    assert answer.status == status


async def test_a_request_in_pieces_is_answered_once(served: Served) -> None:
    """A request arriving a few bytes at a time is answered once it is complete."""
    plain = await cached_on_a_connection(served)
    reader, writer = await served.connect()
    for i in range(0, len(GET), 7):
        writer.write(GET[i : i + 7])
        await writer.drain()
        await asyncio.sleep(0)  # let the server read each piece on its own
    assert (await read_answer(reader)).same_as(plain)
    writer.close()


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(served: Served) -> None:
    """After its answer, an idle connection is closed once keep_alive_timeout (0.3 s here)
    passed."""
    await cached_on_a_connection(served)
    reader, writer = await served.connect()
    writer.write(GET)
    await read_answer(reader)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert 0.2 < time.monotonic() - started < 5
    writer.close()


async def test_shutdown_closes_idle_connections(served: Served) -> None:
    """A graceful stop closes idle keep-alive connections instead of waiting for them."""
    await cached_on_a_connection(served)
    reader, writer = await served.connect()
    writer.write(GET)
    await read_answer(reader)
    served.server.should_exit = True
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_pages_are_compressed_once(tmp_path: Path, origin: Origin, clock: FakeClock) -> None:
    """The operator's pages are gzip-compressed by the app's middleware; a feed's gzip body is
    the cached one from the feed reply, not compressed a second time."""
    path, _ = make_config(tmp_path, origin, {"good": atom("good", ["First story"])})
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            page = await http.get("/", headers={"Accept-Encoding": "gzip"})
            feed = await http.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
            plain = await http.get("/feeds/all.atom", headers={"Accept-Encoding": "identity"})
    assert page.headers["content-encoding"] == "gzip" and "First story" in page.text
    assert feed.headers["content-encoding"] == "gzip" and feed.content == plain.content
    assert "content-encoding" not in plain.headers and feed.headers["etag"] != plain.headers["etag"]


async def test_paths_no_route_takes_and_failing_routes(served: Served) -> None:
    """A path outside every route is 404 with the hint, a method a route does not take 405 with
    Allow, and a route that raises is 500 (uvicorn's) without stopping the server."""
    broken = Route("/broken", _raise)
    served.server.config.app.router.routes.append(broken)
    (missing,) = await ask(served, b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
    assert missing.status == 404 and b"/feeds/all.FMT" in missing.body
    (wrong,) = await ask(served, b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    assert wrong.status == 405
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD"}
    (failed,) = await ask(served, b"GET /broken HTTP/1.1\r\nHost: t\r\n\r\n")
    assert failed.status == 500
    assert (await cached_on_a_connection(served)).status == 200


async def _raise(request: Request) -> Response:
    raise RuntimeError("a route that fails")


async def test_a_middleware_changing_the_headers_does_not_change_the_next_reply(
    tmp_path: Path,
) -> None:
    """The headers of a cached feed reply are built once; what a middleware does to the list it
    is sent stays in that response."""
    world = make_world(tmp_path)
    world.add("hn", 2)
    app = create_app(world.feeds)

    async def tagging(scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-tag", b"1"))
            await send(message)

        await app(scope, receive, tagged)

    client = TestClient(tagging)
    answers = [
        client.get("/feeds/all.atom", headers={"Accept-Encoding": "identity"}) for _ in "123"
    ]
    assert [a.headers.get_list("x-tag") for a in answers] == [["1"]] * 3
    assert len({a.headers["etag"] for a in answers}) == 1


def test_a_documents_replies_are_built_once_and_go_with_it() -> None:
    """The 200 reply of a cached document is the same object on every request (its headers
    encoded once), and is freed with the document."""
    doc = Rendered(b"<feed/>" * 100, '"t"', None, "application/atom+xml", 60, b"gz", '"g"')
    plain = conditional({}, doc)
    assert conditional({"accept-encoding": "br"}, doc) is plain
    packed = conditional({"accept-encoding": "gzip"}, doc)
    assert packed.body == b"gz" and packed is not plain
    assert (b"content-length", b"700") in plain.raw_headers
    twin = Rendered(b"other", '"u"', None, "application/atom+xml", 60)
    assert conditional({}, twin).body == b"other"
    freed = weakref.ref(plain)
    del doc, plain, packed
    gc.collect()
    assert freed() is None


def test_the_feed_route_names_its_urls(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    router = create_app(world.feeds).router
    assert router.url_path_for("feed", rest="source/hn.atom") == "/feeds/source/hn.atom"
    assert router.url_path_for("healthz") == "/healthz"
