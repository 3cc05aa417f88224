"""The real pipeline, fetcher and SQLite store against the fake origin, with a fake clock."""

from __future__ import annotations

import itertools
from datetime import timedelta

from aggregator.clock import FakeClock
from aggregator.models import FetchStatus, Selection

from .conftest import CORPUS
from .harness import ATOM, HOUR
from .origin import Origin, Reply, Sequence_


async def test_a_week_of_failures_backs_off_never_gives_up_and_recovers(
    origin: Origin, clock: FakeClock, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """A source failing for a simulated week is retried on a growing, capped schedule; when it
    recovers it is picked up at the next attempt and returns to its normal interval."""
    broken = True
    origin.route("/feed", lambda req: Reply(status=500) if broken else Reply(ATOM))
    h = await harness_factory([("s", origin.url("/feed"))])
    start = clock.now()
    gaps: list[float] = []
    while clock.now() - start < timedelta(days=7):
        assert await h.tick() == [FetchStatus.ERROR]
        state = h.state("s")
        gap = (state.next_fetch_at - clock.now()).total_seconds()
        gaps.append(gap)
        clock.set(state.next_fetch_at)
    assert gaps[:4] == [60, 120, 240, 480]
    assert max(gaps) == 24 * HOUR and gaps[-1] == 24 * HOUR
    assert all(b >= a for a, b in itertools.pairwise(gaps))
    failures = h.state("s").consecutive_failures
    assert failures == len(gaps) and h.state("s").last_error == "HTTP 500 Internal Server Error"
    broken = False
    assert await h.tick() == [FetchStatus.OK]
    state = h.state("s")
    assert state.consecutive_failures == 0 and h.entries("s") == 20
    assert (state.next_fetch_at - clock.now()).total_seconds() == 30 * 60


async def test_not_modified_costs_no_parse_and_no_writes(
    origin: Origin, clock: FakeClock, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """A 304 (ETag) and an unchanged 200 body are both 'not modified' and add nothing."""
    origin.route("/etag", Reply(ATOM, etag='"v1"'))
    origin.route("/same", Reply(ATOM))
    h = await harness_factory([("a", origin.url("/etag")), ("b", origin.url("/same"))])
    assert sorted(await h.tick()) == [FetchStatus.OK, FetchStatus.OK]
    clock.advance(31 * 60)
    assert await h.tick() == [FetchStatus.NOT_MODIFIED] * 2
    assert origin.hits("/etag")[-1].headers.get("if-none-match") == '"v1"'
    assert h.entries("a") == h.entries("b") == 20
    assert h.state("a").not_modified_count == 1 and h.state("a").fetch_count == 2


async def test_gone_stops_fetching(origin: Origin, clock: FakeClock, harness_factory) -> None:  # type: ignore[no-untyped-def]
    """410 Gone marks the source gone and it is not claimed again."""
    origin.route("/gone", Reply(status=410))
    h = await harness_factory([("g", origin.url("/gone"))])
    assert await h.tick() == [FetchStatus.GONE]
    clock.advance(30 * 24 * HOUR)
    assert await h.tick() == []
    assert h.state("g").last_status == "gone" and len(origin.hits("/gone")) == 1


async def test_html_page_is_not_a_feed(origin: Origin, clock: FakeClock, harness_factory) -> None:  # type: ignore[no-untyped-def]
    """An HTML page where a feed should be is a clear 'not a feed' error, retried with backoff."""
    origin.route(
        "/page", Reply("<!DOCTYPE html><html><body>Hi</body></html>", content_type="text/html")
    )
    h = await harness_factory([("p", origin.url("/page"))])
    assert await h.tick() == [FetchStatus.ERROR]
    state = h.state("p")
    assert "not a feed" in (state.last_error or "") and state.consecutive_failures == 1


async def test_permanent_redirect_moves_the_source(
    origin: Origin, clock: FakeClock, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """A 301 to the same target on consecutive fetches moves the source's effective URL."""
    new = origin.route("/new", Reply(ATOM))
    origin.route("/old", Reply(status=301, headers={"Location": new}))
    h = await harness_factory([("m", origin.url("/old"))])
    await h.tick()
    assert h.state("m").url == origin.url("/old")
    clock.advance(31 * 60)
    await h.tick()
    assert h.state("m").url == new and h.state("m").configured_url == origin.url("/old")
    clock.advance(31 * 60)
    await h.tick()
    assert origin.hits("/old").__len__() == 2 and len(origin.hits("/new")) == 3


async def test_offline_round_is_not_counted(clock: FakeClock, harness_factory) -> None:  # type: ignore[no-untyped-def]
    """When every source fails at the network level in one round, no failure is counted."""
    h = await harness_factory([("x", "http://127.0.0.1:9/a"), ("y", "http://127.0.0.2:9/b")])
    assert await h.tick() == [FetchStatus.ERROR, FetchStatus.ERROR]
    for sid in ("x", "y"):
        state = h.state(sid)
        assert state.consecutive_failures == 0 and state.last_status == "offline"


async def test_one_broken_source_does_not_stop_the_batch(origin: Origin, harness_factory) -> None:  # type: ignore[no-untyped-def]
    """A failing source is a value in the batch; the others are stored."""
    origin.route("/ok", Reply(ATOM))
    origin.route("/bad", Sequence_(Reply(b"<rss><channel><item>", content_type="application/xml")))
    h = await harness_factory([("ok", origin.url("/ok")), ("bad", "http://127.0.0.1:9/none")])
    outcomes = sorted(await h.tick())
    assert FetchStatus.OK in outcomes and FetchStatus.ERROR in outcomes
    assert h.state("bad").consecutive_failures == 1 and h.entries("ok") == 20


async def test_gb2312_feed_is_stored_without_mojibake(origin: Origin, harness_factory) -> None:  # type: ignore[no-untyped-def]
    """A GB2312 feed with no declared charset anywhere is stored as readable Chinese."""
    body = (CORPUS / "kurtmckee+feedparser/illformed/chardet/gb2312.xml").read_bytes()
    origin.route("/gb", Reply(body, content_type="application/xml"))
    h = await harness_factory([("gb", origin.url("/gb"))])
    await h.tick()
    entries = h.store.list_entries(Selection(source_ids=("gb",), limit=10))
    text = " ".join((e.title or "") + (e.content or "") for e in entries)
    assert entries and any("\u4e00" <= ch <= "\u9fff" for ch in text)
    assert "Ã" not in text and "\ufffd" not in text


async def test_relative_urls_in_content_resolve_against_xml_base_or_the_document(
    origin: Origin, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """Relative links and image sources (lazy ones too) in entry HTML resolve as feedparser
    would resolve them: against xml:base where the feed sets one, else the feed's own URL, not
    the item's link; the publisher's attribute order is kept."""
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://a.example/dir/"><title>A</title>'
        b"<id>urn:a</id><updated>2026-01-01T00:00:00Z</updated>"
        b'<entry xml:base="sub/"><id>urn:1</id><title>one</title><updated>2026-01-01T00:00:00Z</updated>'
        b'<link href="http://elsewhere.example/post"/><content type="html">'
        b'&lt;a href="q.html"&gt;q&lt;/a&gt;&lt;img width="3" data-src="i.png" alt="i"&gt;'
        b"</content></entry></feed>"
    )
    rss = (
        b'<rss version="2.0"><channel><title>R</title><link>http://r.example/</link><item>'
        b"<guid>1</guid><title>two</title><link>http://elsewhere.example/2</link><description>"
        b'&lt;img width="3" src="/img/x.png" alt="x"&gt;</description></item></channel></rss>'
    )
    origin.route("/atom", Reply(atom, content_type="application/atom+xml"))
    origin.route("/feeds/rss", Reply(rss, content_type="application/rss+xml"))
    h = await harness_factory([("a", origin.url("/atom")), ("r", origin.url("/feeds/rss"))])
    await h.tick()
    [a] = h.store.list_entries(Selection(source_ids=("a",), limit=5))
    [r] = h.store.list_entries(Selection(source_ids=("r",), limit=5))
    assert a.content == (
        '<a href="http://a.example/dir/sub/q.html" rel="noopener noreferrer">q</a>'
        '<img width="3" src="http://a.example/dir/sub/i.png" alt="i" referrerpolicy="no-referrer">'
    )
    assert r.summary is None and r.content == (
        f'<img width="3" src="{origin.url("/img/x.png")}" alt="x" referrerpolicy="no-referrer">'
    )
