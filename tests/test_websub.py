"""WebSub publisher: feeds advertise the hub, and changes are pinged to a fake hub on loopback."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import parse_qs

from lxml import etree

from aggregator.clock import FakeClock
from aggregator.fetch import Fetcher
from aggregator.models import FetchOutcome, FetchStatus
from aggregator.pipeline.update import Pipeline
from aggregator.publish.websub import HubClient, WebSubPublisher
from aggregator.runtime.scheduler import Dispatcher

from .conftest import CORPUS
from .feedworld import BASE, World, make_world
from .origin import Origin, Reply, Sequence_

ATOM = "{http://www.w3.org/2005/Atom}"
OPERATOR = """
[[feeds]]
id = "py-only"
sources = ["py"]
formats = ["atom"]
"""


def with_hub(tmp_path: Path, origin: Origin) -> World:
    world = make_world(tmp_path, OPERATOR)
    settings = world.settings.model_copy(
        update={"publish": world.settings.publish.model_copy(update={"hub": origin.url("/hub")})}
    )
    world.feeds.update(settings)
    world.settings = settings
    return world


def pinged(origin: Origin) -> list[str]:
    """The hub.url of every publish ping the fake hub received, in order."""
    urls = []
    for request in origin.hits("/hub"):
        form = parse_qs(request.body.decode())
        assert request.method == "POST" and form["hub.mode"] == ["publish"]
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        urls += form["hub.url"]
    return urls


def test_feeds_advertise_the_hub_and_themselves(tmp_path: Path, origin: Origin) -> None:
    """With a hub configured, every format links rel=hub and rel=self (the topic URL)."""
    world = with_hub(tmp_path, origin)
    world.add("hn", 1)
    client = world.client()
    for fmt in ("rss", "atom"):
        root = etree.fromstring(client.get(f"/feeds/source/hn.{fmt}").content)
        links = {link.get("rel"): link.get("href") for link in root.iter(f"{ATOM}link")}
        assert links["hub"] == origin.url("/hub")
        assert links["self"] == f"{BASE}/feeds/source/hn.{fmt}"
    doc = client.get("/feeds/source/hn.json").json()
    assert doc["hubs"] == [{"type": "WebSub", "url": origin.url("/hub")}]
    assert doc["feed_url"] == f"{BASE}/feeds/source/hn.json"


def test_no_hub_no_links_and_no_publisher(tmp_path: Path) -> None:
    """Without publish.hub, feeds carry no hub link and there is nothing to ping."""
    world = make_world(tmp_path)
    world.add("hn", 1)
    assert b'rel="hub"' not in world.client().get("/feeds/all.atom").content
    assert WebSubPublisher.configured(world.feeds, world.clock) is None


async def test_ping_posts_hub_mode_publish(origin: Origin, clock: FakeClock) -> None:
    """A ping is a form POST with hub.mode=publish and hub.url=<feed URL>."""
    origin.route("/hub", Reply(status=204, content_type=None))
    hub = HubClient(origin.url("/hub"), clock)
    result = await hub.ping(f"{BASE}/feeds/all.atom")
    await hub.aclose()
    assert result.ok and result.attempts == 1 and result.status == 204
    assert pinged(origin) == [f"{BASE}/feeds/all.atom"]


async def test_ping_retries_with_backoff_until_the_hub_accepts(
    origin: Origin, clock: FakeClock
) -> None:
    """5xx and 429 are retried with growing delays (on the fake clock), then the ping succeeds."""
    origin.route("/hub", Sequence_(Reply(status=503), Reply(status=429), Reply(status=202)))
    hub = HubClient(origin.url("/hub"), clock, base_delay=2.0, max_delay=60.0)
    result = await hub.ping(f"{BASE}/feeds/all.rss")
    await hub.aclose()
    assert result.ok and result.attempts == 3
    assert len(clock.slept) == 2 and 1.0 <= clock.slept[0] <= 2.0 and 2.0 <= clock.slept[1] <= 4.0
    assert len(pinged(origin)) == 3


async def test_ping_gives_up_on_client_errors_and_after_the_last_attempt(
    origin: Origin, clock: FakeClock
) -> None:
    """A 4xx is not retried; a hub that keeps failing is tried `attempts` times, then reported."""
    origin.route("/hub", Reply(status=400))
    hub = HubClient(origin.url("/hub"), clock, attempts=4)
    refused = await hub.ping("https://x.example/feed")
    assert not refused.ok and refused.attempts == 1 and refused.error == "hub answered 400"
    origin.route("/hub", Reply(status=500))
    failing = await hub.ping("https://x.example/feed")
    await hub.aclose()
    assert not failing.ok and failing.attempts == 4 and len(clock.slept) == 3


async def test_unreachable_hub_is_retried_then_reported(clock: FakeClock) -> None:
    """Connection errors are retried like 5xx and end as a failed ping, not an exception."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    hub = HubClient(f"http://127.0.0.1:{port}/hub", clock, attempts=2)
    result = await hub.ping("https://x.example/feed")
    await hub.aclose()
    assert not result.ok and result.attempts == 2 and result.status is None and result.error


async def test_changes_ping_exactly_the_feeds_that_changed(tmp_path: Path, origin: Origin) -> None:
    """New entries of one source ping every URL of each feed showing them, once per change."""
    origin.route("/hub", Reply(status=204, content_type=None))
    world = with_hub(tmp_path, origin)
    publisher = WebSubPublisher.configured(world.feeds, world.clock)
    assert publisher is not None
    await publisher.prime()
    world.add("hn", 2)
    await publisher.announce([FetchOutcome("hn", FetchStatus.OK, added=2)])
    expected = {
        f"{BASE}/feeds/{name}.{fmt}"
        for name in ("all", "source/hn", "category/Tech", "category/Tech/News")
        for fmt in ("rss", "atom", "json")
    }
    assert set(pinged(origin)) == expected and len(pinged(origin)) == len(expected)
    # Nothing new: no pings. A change to py only: py's feeds and the operator feed of py.
    await publisher.announce([FetchOutcome("hn", FetchStatus.OK, updated=1)])
    assert len(pinged(origin)) == len(expected)
    world.add("py", 1)
    await publisher.announce([FetchOutcome("py", FetchStatus.OK, added=1)])
    await publisher.aclose()
    later = set(pinged(origin)[len(expected) :])
    assert later == {
        f"{BASE}/feeds/{name}.{fmt}"
        for name in ("all", "source/py", "category/Tech", "category/Tech/Python")
        for fmt in ("rss", "atom", "json")
    } | {f"{BASE}/feeds/py-only.atom"}


async def test_a_failed_announcement_is_repeated_after_the_next_change(
    tmp_path: Path, origin: Origin
) -> None:
    """Feeds whose ping failed are not marked announced: the next tick pings them again."""
    origin.route("/hub", Reply(status=400))
    world = with_hub(tmp_path, origin)
    publisher = WebSubPublisher(world.feeds, HubClient(origin.url("/hub"), world.clock, attempts=1))
    world.add("py", 1)
    await publisher.announce([FetchOutcome("py", FetchStatus.OK, added=1)])
    first = len(pinged(origin))
    origin.route("/hub", Reply(status=204, content_type=None))
    await publisher.announce(
        [FetchOutcome("py", FetchStatus.OK, updated=1)]
    )  # same bytes as before
    await publisher.aclose()
    assert len(pinged(origin)) == 2 * first


async def test_a_dispatcher_tick_that_stores_entries_pings_the_hub(
    tmp_path: Path, origin: Origin
) -> None:
    """The real pipeline, run by the dispatcher, stores a fetched feed; the hook pings its feeds."""
    origin.route("/hub", Reply(status=204, content_type=None))
    feed_url = origin.route(
        "/feed.xml",
        Reply(
            (CORPUS / "miniflux+v2/small_atom.xml").read_bytes(),
            content_type="application/atom+xml",
        ),
    )
    extra = f"""
[fetch]
allow_private_networks = true
per_host_delay = 0
max_retries = 0

[[sources]]
id = "local"
url = "{feed_url}"
category = "Local"
"""
    world = make_world(tmp_path, extra)
    settings = world.settings.model_copy(
        update={"publish": world.settings.publish.model_copy(update={"hub": origin.url("/hub")})}
    )
    world.feeds.update(settings)
    publisher = WebSubPublisher.configured(world.feeds, world.clock)
    assert publisher is not None
    async with Fetcher(settings.fetch, world.clock) as fetcher:
        pipeline = Pipeline(settings, world.store, fetcher.fetch, world.clock, processes=1)
        dispatcher = Dispatcher(
            world.store,
            pipeline,
            lambda: world.sources,
            world.clock,
            "test",
            10,
            60,
            on_outcomes=publisher.hook(None),
        )
        world.store.sync_sources(settings.source_records(), world.clock.now())
        world.sources.update({s.id: s for s in settings.source_records()})
        world.clock.advance(1)
        outcomes = await dispatcher.tick()
        await publisher.aclose()  # waits for the announcement the hook started
    assert {o.source_id: o.added > 0 for o in outcomes}["local"]
    assert f"{BASE}/feeds/source/local.atom" in pinged(origin)
    assert f"{BASE}/feeds/category/Local.json" in pinged(origin)
    assert not any("/source/hn." in url for url in pinged(origin))  # its source did not change
