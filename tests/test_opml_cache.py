"""/opml is cached like the feeds: rendered once, confirmed against the store at most every
``recheck_after`` seconds, kept with its ETag while unchanged (304s), rendered again after a
reload or when a source's stored URL, title or site link changed, and answered again without a
rendering once cached."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from aggregator.clock import FakeClock
from aggregator.http.app import create_app
from aggregator.models import FetchOutcome, FetchStatus
from aggregator.publish.opmlcache import OpmlDocument
from aggregator.runtime.daemon import server_config

from .feedworld import World, make_world
from .ops_stack import make_config, running_stack, source_block
from .origin import Origin, Reply
from .test_reload import atom
from .test_serving import _Quiet, read_answer

OPML = b"GET /opml HTTP/1.1\r\nHost: t\r\nAccept-Encoding: identity\r\n\r\n"


def stored_site_link(world: World, source_id: str, link: str) -> None:
    """A fetch stored a new site link for the source (as a worker would)."""
    state = world.store.get_state(source_id)
    assert state is not None
    outcome = FetchOutcome(source_id, FetchStatus.OK)
    world.store.apply(replace(state, site_link=link), [], [], outcome, world.clock.now())


async def test_opml_is_rendered_once_and_rechecked_against_the_store(tmp_path: Path) -> None:
    """The document is rendered once; within recheck_after it is served without the store;
    after it, a store read that finds nothing changed keeps the same document (same ETag);
    a changed site link is rendered into a new one."""
    world = make_world(tmp_path)
    doc = OpmlDocument(world.feeds, recheck_after=60)
    first = await doc.serve()
    assert doc.cached() is first
    stored_site_link(world, "hn", "https://news.example.com/")
    world.clock.advance(30)
    assert await doc.serve() is first and doc.renders == 1  # not asked again yet
    world.clock.advance(31)
    second = await doc.serve()
    assert b'htmlUrl="https://news.example.com/"' in second.body and second.etag != first.etag
    world.clock.advance(61)
    assert await doc.serve() is second and doc.renders == 2


async def test_concurrent_requests_share_one_refresh(tmp_path: Path) -> None:
    """Requests arriving while the document is being confirmed wait for that one read."""
    world = make_world(tmp_path)
    doc = OpmlDocument(world.feeds, recheck_after=60)
    got = await asyncio.gather(*(doc.serve() for _ in range(20)))
    assert all(d is got[0] for d in got) and doc.renders == 1


async def test_a_reload_changes_the_served_opml_and_304s_hold_until_then(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """Over HTTP: a second /opml has the first one's ETag and a conditional request is 304;
    after a reload that adds a source the document lists it under a new ETag."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    url_b = origin.route("/b", Reply(atom("b", ["B1"]), content_type="application/atom+xml"))
    async with running_stack(path, clock) as st, st.client() as http:
        first = await http.get("/opml")
        again = await http.get("/opml", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.headers["etag"] == first.headers["etag"]
        st.write(text + source_block("b", url_b))
        assert st.ops.reloader.check() is True
        after = await http.get("/opml", headers={"If-None-Match": first.headers["etag"]})
        assert after.status_code == 200 and after.headers["etag"] != first.headers["etag"]
        assert url_b.encode() in after.content


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, OpmlDocument]]:
    world = make_world(tmp_path)
    doc = OpmlDocument(world.feeds, recheck_after=60)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = _Quiet(server_config(create_app(world.feeds, opml=doc), world.feeds.settings.server))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # uvicorn starting on this loop
    try:
        yield sock.getsockname()[1], doc
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_a_cached_opml_is_answered_again_without_a_rendering(
    served: tuple[int, OpmlDocument],
) -> None:
    """Once rendered, /opml is answered on another connection with the same bytes and headers,
    from the cached document."""
    port, doc = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(OPML)
        first = await read_answer(reader)  # not cached yet: rendered
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)
        writer2.write(OPML)
        again = await read_answer(reader2)
        assert again.same_as(first) and again.status == 200 and doc.renders == 1
        writer2.close()
    finally:
        writer.close()
