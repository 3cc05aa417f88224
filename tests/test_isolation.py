"""Fault isolation: whatever one source sends, and whatever bug it meets in our code, only that
source fails, with a readable error; the batch, the dispatcher and the other sources go on.

The bugs are injected by making one stage raise for the bad source's items only (pytest's
``monkeypatch`` on the stage's function): the stand-in for any bug a source's bytes may reach.
Everything else is real: the fetcher, the fake origin, the SQLite store.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.categorize import Categorizer
from aggregator.cli import parser as cli
from aggregator.clock import FakeClock
from aggregator.content import clean as content
from aggregator.dedupe import matching as dedupe
from aggregator.fetch import Fetcher
from aggregator.models import FetchStatus
from aggregator.sources.feed import FeedAdapter
from aggregator.store.sql import SQLStore

from .harness import make_settings
from .origin import Origin, Reply, Request

MARK = "BOOM-7f3a"  # in every title and body of the bad source only


def rss(
    title: str, n: int = 3, date: str = "Sun, 01 Mar 2026 10:00:00 GMT", tag: str = "pubDate"
) -> str:
    items = "".join(
        f"<item><guid isPermaLink='false'>{title}-{i}</guid><title>{title} story {i}</title>"
        f"<link>http://example.com/{title}/{i}</link><description>{title} body {i} "
        f"{'lorem ipsum ' * 10}</description><{tag}>{date}</{tag}></item>"
        for i in range(n)
    )
    return (
        "<?xml version='1.0'?><rss version='2.0' xmlns:dc='http://purl.org/dc/elements/1.1/'>"
        f"<channel><title>{title}</title><link>http://example.com/{title}</link>"
        f"<description>d</description>{items}</channel></rss>"
    )


GOOD = ("alpha", "beta", "gamma")


@pytest.fixture
def world(origin: Origin, tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    """Three good sources and one bad one on the fake origin, and a way to run one round."""
    for name in GOOD:
        origin.route(f"/{name}", Reply(rss(name)))
    origin.route("/bad", Reply(rss(MARK)))
    sources = [(name, origin.url(f"/{name}")) for name in GOOD] + [("bad", origin.url("/bad"))]
    settings = make_settings(tmp_path, sources)  # type: ignore[arg-type]
    yield settings


async def one_round(settings: Any, clock: FakeClock) -> tuple[list[Any], SQLStore]:
    from aggregator.pipeline.update import Pipeline
    from aggregator.runtime.scheduler import Dispatcher
    from aggregator.store import open_store

    store = open_store(settings.storage.url, clock.now())
    store.sync_sources(settings.source_records(), clock.now())
    async with Fetcher(settings.fetch, clock) as fetcher:
        pipeline = Pipeline(settings, store, fetcher.fetch, clock, processes=1)
        by_id = {s.id: s for s in settings.source_records()}
        dispatcher = Dispatcher(store, pipeline, lambda: by_id, clock, "t", 100, 600)
        outcomes = await dispatcher.tick()
    return outcomes, store  # type: ignore[return-value]


def _entries(store: SQLStore, sid: str) -> int:
    from aggregator.models import Selection

    return len(store.list_entries(Selection(source_ids=(sid,), merge_duplicates=False, limit=100)))


def _raise_for_bad(original: Any, is_bad: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_bad(args, kwargs):
            raise ValueError("year -1 is out of range")
        return original(*args, **kwargs)

    return wrapper


def _async_raise_for_bad(original: Any, is_bad: Any) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_bad(args, kwargs):
            raise ValueError("year -1 is out of range")
        return await original(*args, **kwargs)

    return wrapper


def _mentions_mark(args: Any, kwargs: Any) -> bool:
    return MARK in repr(args) or MARK in repr(kwargs)


def _bad_source(args: Any, kwargs: Any) -> bool:
    return "source_id='bad'" in repr(args[:1])


STAGES = {
    "fetch": (Fetcher, "fetch", True, lambda a, k: "/bad" in repr(a)),
    "parse": (FeedAdapter, "parse", False, _mentions_mark),
    "enrich": (FeedAdapter, "enrich", True, _mentions_mark),
    "clean": (content, "clean", False, _mentions_mark),
    "categorize": (Categorizer, "decide", False, _mentions_mark),
    "dedupe": (dedupe, "find_duplicate", False, _bad_source),
    "store": (SQLStore, "apply", False, lambda a, k: "source_id='bad'" in repr(a)),
}


@pytest.mark.parametrize("stage", list(STAGES))
async def test_a_bug_at_any_stage_fails_only_its_source(
    stage: str,
    world: Any,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception raised while handling one source, at any stage from fetch to store, makes
    that source fail with 'internal error (ValueError: …)', backed off and logged once with its
    traceback; every other source of the batch is stored."""
    owner, name, is_async, is_bad = STAGES[stage]
    original = getattr(owner, name)
    wrap = _async_raise_for_bad if is_async else _raise_for_bad
    monkeypatch.setattr(owner, name, wrap(original, is_bad))
    with caplog.at_level(logging.ERROR, logger="aggregator"):
        outcomes, store = await one_round(world, clock)
    by_id = {o.source_id: o for o in outcomes}
    assert {sid: by_id[sid].status for sid in GOOD} == dict.fromkeys(GOOD, FetchStatus.OK)
    assert all(_entries(store, sid) == 3 for sid in GOOD)
    bad = store.get_state("bad")
    assert bad is not None
    assert by_id["bad"].status is FetchStatus.ERROR
    assert bad.last_status == "error" and bad.consecutive_failures == 1
    assert bad.last_error == "internal error (ValueError: year -1 is out of range)"
    assert bad.next_fetch_at is not None and (bad.next_fetch_at - clock.now()).total_seconds() == 60
    assert _entries(store, "bad") == 0
    traced = [r for r in caplog.records if "internal_error" in r.getMessage() and r.exc_info]
    assert len(traced) == 1 and "source=bad" in traced[0].getMessage()
    store.close()


ABSURD = [
    ("pubDate", "0000-00-00"),
    ("pubDate", "0001-01-01T00:00:00+01:00"),
    ("pubDate", "9999-12-31T23:59:59-05:00"),
    ("dc:date", "0000-01-01"),
]


@pytest.mark.parametrize(("tag", "date"), ABSURD)
async def test_an_absurd_date_never_stops_the_other_sources(
    tag: str, date: str, origin: Origin, world: Any, clock: FakeClock
) -> None:
    """A feed whose dates are out of range (years 0, 1, 9999 with offsets) cannot stop the batch:
    the good sources are stored and the bad one ends with an outcome of its own."""
    origin.route("/bad", Reply(rss(MARK, date=date, tag=tag)))
    outcomes, store = await one_round(world, clock)
    by_id = {o.source_id: o for o in outcomes}
    assert set(by_id) == {*GOOD, "bad"}
    assert all(by_id[sid].status is FetchStatus.OK and _entries(store, sid) == 3 for sid in GOOD)
    assert by_id["bad"].status in (FetchStatus.OK, FetchStatus.ERROR)
    store.close()


async def test_an_empty_200_body_is_an_error(origin: Origin, world: Any, clock: FakeClock) -> None:
    """A 200 with an empty body is 'empty response', counted and backed off; never 'unchanged'."""
    origin.route("/bad", Reply(b"", content_type="application/rss+xml"))
    outcomes, store = await one_round(world, clock)
    bad = store.get_state("bad")
    assert [o.error for o in outcomes if o.source_id == "bad"] == ["empty response"]
    assert bad is not None and bad.last_status == "error" and bad.last_error == "empty response"
    assert bad.consecutive_failures == 1
    store.close()


def test_fetch_and_check_commands_go_on_past_a_bug(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`aggregator fetch` stores the good sources, reports the bad one and exits 1 (some sources
    failed); `aggregator check --source` prints the bad source's error and exits 1, with no
    traceback."""
    config = tmp_path / "agg.toml"
    config.write_text(_toml(world), encoding="utf-8")
    monkeypatch.setattr(FeedAdapter, "parse", _raise_for_bad(FeedAdapter.parse, _mentions_mark))
    # three sources: the command parses in its own process then (the injected bug lives here)
    chosen = ["--source", "alpha", "--source", "beta", "--source", "bad"]
    assert cli.main(["--config", str(config), "fetch", *chosen]) == 1
    out = capsys.readouterr().out
    assert "3 sources, 6 new entries, 1 failed" in out and "internal error" in out
    assert cli.main(["--config", str(config), "check", "--source", "bad"]) == 1
    out = capsys.readouterr().out
    assert "bad: error — internal error (ValueError: year -1 is out of range)" in out
    assert cli.main(["--config", str(config), "check", "--source", "alpha"]) == 0


def _toml(settings: Any) -> str:
    lines = [
        "[storage]",
        f'url = "{settings.storage.url}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "max_retries = 0",
    ]
    for s in settings.source_records():
        lines += ["[[sources]]", f'id = "{s.id}"', f'url = "{s.url}"']
    return "\n".join(lines) + "\n"


class Gate:
    """An origin handler that holds its answer until the test opens the gate."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.open = threading.Event()

    def __call__(self, request: Request) -> Reply:
        self.open.wait(10)
        return Reply(self.body)


async def test_a_slow_source_does_not_hold_the_next_round(
    origin: Origin, tmp_path: Path, clock: FakeClock
) -> None:
    """While one source hangs, the dispatcher's next ticks claim and fetch the others when they
    are due again: a round is not as long as its slowest source."""
    from aggregator.pipeline.update import Pipeline
    from aggregator.runtime.scheduler import Dispatcher
    from aggregator.store import open_store

    gate = Gate(rss("slow"))
    origin.route("/slow", gate)
    origin.route("/fast", Reply(rss("fast")))
    settings = make_settings(
        tmp_path, [("slow", origin.url("/slow")), ("fast", origin.url("/fast"))]
    )
    store = open_store(settings.storage.url, clock.now())
    store.sync_sources(settings.source_records(), clock.now())
    by_id = {s.id: s for s in settings.source_records()}
    try:
        async with Fetcher(settings.fetch, clock) as fetcher:
            pipeline = Pipeline(settings, store, fetcher.fetch, clock, processes=1)
            # a lease longer than the simulated time, so the hanging source stays claimed
            dispatcher = Dispatcher(store, pipeline, lambda: by_id, clock, "t", 100, 4 * 3600)
            first = await dispatcher.dispatch()
            assert first is not None
            for done in range(1, 4):
                await _until(lambda n=done: store.get_state("fast").fetch_count == n)  # type: ignore[union-attr,misc]
                clock.advance(31 * 60)  # the 30-minute interval
                second = await dispatcher.dispatch()
                assert second is not None and [o.source_id for o in await second] == ["fast"]
            assert len(origin.hits("/fast")) == 4 and len(origin.hits("/slow")) == 1
            gate.open.set()
            await dispatcher.idle()
            assert sorted(o.source_id for o in first.result()) == ["fast", "slow"]
            assert store.get_state("slow").last_status == "ok"  # type: ignore[union-attr]
    finally:
        gate.open.set()
        store.close()


async def test_a_source_over_its_budget_fails_and_frees_its_lease(
    origin: Origin, tmp_path: Path, clock: FakeClock
) -> None:
    """A source whose answer takes longer than its budget (90% of the lease) fails with 'took too
    long' and its outcome is stored while the lease still holds; the others are stored."""
    from aggregator.pipeline.update import Pipeline
    from aggregator.store import open_store

    gate = Gate(rss("slow"))
    origin.route("/slow", gate)
    origin.route("/fast", Reply(rss("fast")))
    settings = make_settings(
        tmp_path,
        [("slow", origin.url("/slow")), ("fast", origin.url("/fast"))],
        extra='lease = "1s"',
    )
    store = open_store(settings.storage.url, clock.now())
    store.sync_sources(settings.source_records(), clock.now())
    try:
        async with Fetcher(settings.fetch, clock) as fetcher:
            pipeline = Pipeline(settings, store, fetcher.fetch, clock, processes=1)
            claims = store.claim_due(clock.now(), 10, "t", 1.0)
            by_id = {s.id: s for s in settings.source_records()}
            outcomes = await asyncio.wait_for(
                pipeline.run_batch([(by_id[c.source_id], c) for c in claims]), timeout=5
            )
        status = {o.source_id: (o.status, o.error) for o in outcomes}
        assert status["fast"] == (FetchStatus.OK, None)
        assert status["slow"][0] is FetchStatus.ERROR
        assert status["slow"][1] == "took too long (over its budget of 1 s, 90% of the lease)"
        slow = store.get_state("slow")
        assert slow is not None and slow.last_error == status["slow"][1]
        assert slow.consecutive_failures == 1
    finally:
        gate.open.set()
        store.close()


async def _until(check: Any, timeout: float = 5.0) -> None:
    """Wait (polling the event loop) until ``check()`` is true."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                if check():
                    return
            except AttributeError:
                pass
            await asyncio.sleep(0.01)
