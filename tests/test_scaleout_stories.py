"""Scale-out on PostgreSQL with shared stories: two workers and a web process, a hundred sources
that carry the same stories, two rounds. No source is fetched twice in a round, every story has
exactly one primary and is served once, and no entry is missing.

Real `python run.py --role …` subprocesses against the fake origin; the database is read directly
to count fetches, entries and primaries.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from .origin import Origin, Reply
from .pg import pg_schema
from .test_scaleout import Fleet, free_port, query, wait_for

pytestmark = pytest.mark.slow

SOURCES = 100
COPIES = 4  # sources carrying each story
STORIES = (250, 350)  # stories in all after round 1 and after round 2


def carriers(story: int) -> list[int]:
    """The sources that carry ``story``: four, spread so that each source carries as many."""
    return [(story + k * (SOURCES // COPIES)) % SOURCES for k in range(COPIES)]


WORDS = [
    "harbour",
    "council",
    "budget",
    "river",
    "school",
    "train",
    "storm",
    "museum",
    "election",
    "bridge",
    "market",
    "farmers",
    "festival",
    "hospital",
    "court",
    "airport",
    "library",
    "energy",
    "water",
    "police",
    "forest",
    "coast",
    "wind",
    "grain",
    "mayor",
    "strike",
    "vaccine",
    "satellite",
    "orchestra",
    "glacier",
    "tunnel",
    "refinery",
    "harvest",
]


def story(s: int) -> tuple[str, str]:
    """Story ``s``'s title and text: words of its own (not one template with other numbers)."""
    rng = random.Random(s)
    title = " ".join(rng.choice(WORDS) for _ in range(6)).capitalize()
    text = " ".join(rng.choice(WORDS) for _ in range(60))
    return title, text


def feed(source: int, stories: int) -> str:
    items = "".join(
        f"<item><guid isPermaLink='false'>src{source}-story{s}</guid><title>{story(s)[0]}</title>"
        f"<link>http://news.example.com/{s}</link><description>{story(s)[1]}</description>"
        f"<pubDate>Sun, 01 Mar 2026 {s % 24:02}:{s % 60:02}:00 GMT</pubDate></item>"
        for s in range(stories)
        if source in carriers(s)
    )
    return (
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>Outlet {source}</title>"
        f"<link>http://outlet{source}.example.com/</link><description>d</description>{items}"
        "</channel></rss>"
    )


def test_two_workers_publish_each_shared_story_once_over_two_rounds(
    tmp_path: Path, origin: Origin
) -> None:
    """Two workers and a web process on one PostgreSQL database, 100 sources carrying 250 then
    350 stories four times each: each round fetches every source exactly once, every story has
    one primary, /feeds/all.json lists each story once, and every copy is stored."""
    published = {"stories": STORIES[0]}

    def answer(source: int) -> Any:
        return lambda request: Reply(feed(source, published["stories"]))

    with ExitStack() as stack:
        url = stack.enter_context(pg_schema())
        port = free_port()
        lines = [
            "[server]",
            'host = "127.0.0.1"',
            f"port = {port}",
            "[storage]",
            f'url = "{url}"',
            "[fetch]",
            "allow_private_networks = true",
            "per_host_delay = 0",
            "max_retries = 0",
            "concurrency = 50",
            "per_host_concurrency = 50",
            "[schedule]",
            'dispatch_every = "0.2s"',
            'interval = "1h"',
            "batch_size = 10",
            "[publish]",
            "default_limit = 2000",
            "max_limit = 2000",
        ]
        for i in range(SOURCES):
            lines += [
                "[[sources]]",
                f'id = "s{i}"',
                f'url = "{origin.route(f"/s/{i}", answer(i))}"',
            ]
        config = tmp_path / "stories.toml"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        fleet = Fleet(config, tmp_path)
        stack.callback(fleet.close)
        fleet.start("web", "web")
        fleet.start("worker1", "worker")
        fleet.start("worker2", "worker")

        for round_, stories in enumerate(STORIES, start=1):
            published["stories"] = stories
            if round_ > 1:
                query(url, "UPDATE sources SET next_fetch_at = now() RETURNING id")
            wait_for(
                f"round {round_}",
                fleet,
                lambda r=round_: (
                    query(
                        url,
                        "SELECT count(*) FROM sources WHERE fetch_count = %s AND lease_owner IS NULL",
                        r,
                    )
                    == [(SOURCES,)]
                ),
                90,
            )
            check_round(url, origin, port, fleet, round_, stories)


def check_round(
    url: str, origin: Origin, port: int, fleet: Fleet, round_: int, stories: int
) -> None:
    hits = {i: len(origin.hits(f"/s/{i}")) for i in range(SOURCES)}
    assert {i: n for i, n in hits.items() if n != round_} == {}, "a source was fetched twice"
    assert query(url, "SELECT count(*) FROM fetch_log") == [(SOURCES * round_,)]
    assert query(url, "SELECT count(*) FROM entries") == [(stories * COPIES,)], (
        "an entry is missing"
    )
    primaries = query(
        url,
        "SELECT canonical_url, count(*) FROM entries WHERE duplicate_of IS NULL "
        "GROUP BY canonical_url HAVING count(*) > 1",
    )
    assert primaries == [], "a story has more than one primary"
    assert query(url, "SELECT count(*) FROM entries WHERE duplicate_of IS NULL") == [(stories,)]
    expected = {f"http://news.example.com/{s}" for s in range(stories)}

    def served() -> list[str] | None:
        items = httpx.get(f"http://127.0.0.1:{port}/feeds/all.json", timeout=10).json()["items"]
        links = [i["url"] for i in items]
        return links if set(links) == expected else None

    links = wait_for(f"round {round_} served", fleet, served, 15)
    assert len(links) == len(set(links)) == stories, "a story is served twice"
