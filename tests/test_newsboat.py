"""A real feed reader: newsboat (Debian) subscribes to our RSS and Atom for all entries, one source
and one category, served by the app on 127.0.0.1, and reads the same items we published."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import uvicorn

from aggregator.http.app import create_app
from aggregator.models import Entry

from .feedworld import World, make_world
from .test_serving import _Quiet

NEWSBOAT = shutil.which("newsboat")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        NEWSBOAT is None, reason="Debian's newsboat is not installed (apt-get install newsboat)"
    ),
]
Item = tuple[str, str, int]  # title, link, publication time (Unix seconds)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[World, str, list[Entry]]]:
    """The app over a world of five entries (published hours before they were first seen, titles
    with markup characters and Chinese) on a free port of 127.0.0.1."""
    world = make_world(tmp_path)
    entries: list[Entry] = []
    titles = {
        "hn": ["Rust & C++: a comparison", "Café “quotes” — dashes"],
        "py": ["Python 3.14 released", "PEP 8 ’s update"],
        "ruan": ["科技爱好者周刊（第 300 期）"],
    }
    for source_id, names in titles.items():
        for name in names:
            world.clock.advance(600)
            (made,) = world.add(
                source_id, 1, title=name, published=world.clock.now() - timedelta(hours=3)
            )
            entries.append(made)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(world.feeds),
        log_level="warning",
        access_log=False,
        lifespan="off",
        log_config=None,
    )
    server = _Quiet(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # uvicorn starting on this loop
    try:
        yield world, f"http://127.0.0.1:{sock.getsockname()[1]}", entries
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _newsboat_reads(home: Path, url: str) -> set[Item]:
    """Run ``newsboat -x reload`` subscribed to ``url`` alone and read back its cache's items (one
    cache per feed: newsboat keeps an item once per guid, whichever feed it came from)."""
    home.mkdir()
    (home / "urls").write_text(url + "\n", encoding="utf-8")
    (home / "config").write_text("download-retries 1\ndownload-timeout 20\n", encoding="utf-8")
    cache = home / "cache.db"
    assert NEWSBOAT is not None
    proc = await asyncio.create_subprocess_exec(
        NEWSBOAT,
        "-u",
        str(home / "urls"),
        "-c",
        str(cache),
        "-C",
        str(home / "config"),
        "-x",
        "reload",
        env={"HOME": str(home), "TERM": "dumb", "LANG": "C.UTF-8"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out + err).decode(errors="replace")
    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT feedurl, title, url, pubDate FROM rss_item").fetchall()
    assert {feed for feed, *_ in rows} <= {url}
    return {(title, link, int(when)) for _, title, link, when in rows}


def _ours(entries: list[Entry]) -> set[Item]:
    return {(e.title, e.link or "", int(e.published.timestamp())) for e in entries if e.published}


async def test_newsboat_reads_our_items_from_every_kind_of_feed(
    served: tuple[World, str, list[Entry]], tmp_path: Path
) -> None:
    """For all entries, a source and a category, in RSS and in Atom, newsboat's items (title,
    link, date) are exactly the entries we published."""
    _, base, entries = served
    wanted = {
        "all": entries,
        "source/py": [e for e in entries if e.source_id == "py"],
        "category/Tech": [e for e in entries if e.category_path[:1] == ("Tech",)],
        "category/" + quote("科技"): [e for e in entries if e.category_path[:1] == ("科技",)],
    }
    urls = {
        f"{base}/feeds/{path}.{fmt}": ours
        for path, ours in wanted.items()
        for fmt in ("rss", "atom")
    }
    reads = [_newsboat_reads(tmp_path / f"reader-{n}", url) for n, url in enumerate(urls)]
    found = await asyncio.gather(*reads)
    for (url, ours), theirs in zip(urls.items(), found, strict=True):
        assert theirs == _ours(ours), url
