"""The fetcher against the fake origin: retries, limits, redirects, politeness, private addresses."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from aggregator.clock import FakeClock
from aggregator.config.settings import FetchSettings
from aggregator.fetch import Fetcher

from .origin import Origin, Reply, Request, Sequence_

MiB = 1024 * 1024


def settings(**overrides: Any) -> FetchSettings:
    """Settings for the local origin: private addresses allowed, no politeness gap."""
    values: dict[str, Any] = {"allow_private_networks": True, "per_host_delay": 0}
    values.update(overrides)
    return FetchSettings(**values)


@pytest.fixture
async def fetcher(clock: FakeClock) -> AsyncIterator[Fetcher]:
    async with Fetcher(settings(), clock, rng=random.Random(1)) as f:
        yield f


async def fetch_with(clock: FakeClock, url: str, **overrides: Any) -> Any:
    async with Fetcher(settings(**overrides), clock, rng=random.Random(1)) as f:
        return await f.fetch(url)


# Conditional GET


async def test_etag_round_trip_gives_304(origin: Origin, fetcher: Fetcher) -> None:
    """A stored ETag is sent as If-None-Match and a 304 comes back as not-modified, no error."""
    url = origin.route("/feed.xml", Reply("<rss/>", etag='"v1"'))
    first = await fetcher.fetch(url)
    assert first.ok and first.content == b"<rss/>" and first.headers["etag"] == '"v1"'
    second = await fetcher.fetch(url, etag=first.headers["etag"])
    assert second.status_code == 304 and second.not_modified and second.error is None
    assert second.content == b""
    assert origin.hits("/feed.xml")[-1].headers["if-none-match"] == '"v1"'


async def test_last_modified_round_trip_gives_304(origin: Origin, fetcher: Fetcher) -> None:
    """A stored Last-Modified is sent as If-Modified-Since and answered with 304."""
    stamp = "Wed, 01 Jan 2025 00:00:00 GMT"
    url = origin.route("/feed.xml", Reply("<rss/>", last_modified=stamp))
    result = await fetcher.fetch(url, last_modified=stamp)
    assert result.status_code == 304 and result.error is None
    assert origin.hits("/feed.xml")[0].headers["if-modified-since"] == stamp


async def test_headers_are_lower_case_and_user_agent_is_sent(
    origin: Origin, clock: FakeClock
) -> None:
    """Response header keys come back lower-case, and the configured User-Agent is sent."""
    url = origin.route("/f", Reply("x", headers={"X-Thing": "1"}))
    result = await fetch_with(clock, url, user_agent="agg-test/1.0")
    assert result.headers["x-thing"] == "1" and result.headers["content-type"] == "application/xml"
    assert origin.hits("/f")[0].headers["user-agent"] == "agg-test/1.0"


# Retries within one fetch


async def test_500_then_200_is_retried_with_fake_backoff(origin: Origin, clock: FakeClock) -> None:
    """A 500 is retried after a backoff slept on the fake clock; the 200 that follows wins."""
    url = origin.route("/f", Sequence_(Reply(status=500), Reply("<rss/>")))
    result = await fetch_with(clock, url, retry_base_delay=2)
    assert result.ok and result.content == b"<rss/>"
    assert len(origin.hits("/f")) == 2
    assert len(clock.slept) == 1 and 1.0 <= clock.slept[0] <= 2.0


async def test_persistent_500_gives_up_after_max_retries(origin: Origin, clock: FakeClock) -> None:
    """A 500 that never clears ends as an error with the status after 1 + max_retries tries."""
    url = origin.route("/f", Reply(status=500))
    result = await fetch_with(clock, url, max_retries=3, retry_base_delay=1, retry_max_delay=60)
    assert result.status_code == 500 and result.error == "HTTP 500 Internal Server Error"
    assert len(origin.hits("/f")) == 4
    assert len(clock.slept) == 3 and clock.slept[2] > clock.slept[0]


async def test_backoff_is_capped_by_retry_max_delay(origin: Origin, clock: FakeClock) -> None:
    """Exponential backoff never waits longer than retry_max_delay."""
    url = origin.route("/f", Reply(status=503))
    await fetch_with(clock, url, max_retries=6, retry_base_delay=10, retry_max_delay=30)
    assert len(clock.slept) == 6 and max(clock.slept) <= 30


@pytest.mark.parametrize("status", [404, 403, 401])
async def test_4xx_is_not_retried(origin: Origin, clock: FakeClock, status: int) -> None:
    """A 4xx other than 408/429 is answered at once, with no retry."""
    url = origin.route("/f", Reply(status=status))
    result = await fetch_with(clock, url)
    assert result.status_code == status and result.error is not None
    assert result.error.startswith(f"HTTP {status}") and len(origin.hits("/f")) == 1
    assert clock.slept == []


async def test_408_is_retried(origin: Origin, clock: FakeClock) -> None:
    """A 408 Request Timeout is retried like a network timeout."""
    url = origin.route("/f", Sequence_(Reply(status=408), Reply("ok")))
    assert (await fetch_with(clock, url)).ok and len(origin.hits("/f")) == 2


async def test_410_is_gone_without_retry(origin: Origin, clock: FakeClock) -> None:
    """A 410 comes back as the error '410 Gone' after one request."""
    url = origin.route("/f", Reply(status=410))
    result = await fetch_with(clock, url)
    assert result.status_code == 410 and result.error == "410 Gone" and not result.ok
    assert len(origin.hits("/f")) == 1


# 429 and Retry-After


async def test_429_short_retry_after_seconds_is_slept_then_retried(
    origin: Origin, clock: FakeClock
) -> None:
    """A 429 with a short Retry-After in seconds is waited out on the fake clock and retried."""
    url = origin.route(
        "/f", Sequence_(Reply(status=429, headers={"Retry-After": "7"}), Reply("ok"))
    )
    result = await fetch_with(clock, url, retry_base_delay=1, retry_max_delay=60)
    assert result.ok and clock.slept == [7.0]


async def test_429_short_retry_after_date_is_slept_then_retried(
    origin: Origin, clock: FakeClock
) -> None:
    """A 429 with a short Retry-After as an HTTP date is waited out on the fake clock."""
    when = format_datetime(clock.now() + timedelta(seconds=20), usegmt=True)
    url = origin.route(
        "/f", Sequence_(Reply(status=429, headers={"Retry-After": when}), Reply("ok"))
    )
    result = await fetch_with(clock, url, retry_base_delay=1, retry_max_delay=60)
    assert result.ok and clock.slept == [20.0]


@pytest.mark.parametrize("form", ["seconds", "date"])
async def test_429_long_retry_after_stops_and_holds_the_url(
    origin: Origin, clock: FakeClock, form: str
) -> None:
    """A long Retry-After (either form) stops retrying, is returned, and holds the URL back."""
    start = clock.now()
    value = (
        "3600" if form == "seconds" else format_datetime(start + timedelta(hours=1), usegmt=True)
    )
    url = origin.route(
        "/f", Sequence_(Reply(status=429, headers={"Retry-After": value}), Reply("ok"))
    )
    other = origin.route("/other", Reply("ok"))
    async with Fetcher(settings(retry_max_delay=60), clock) as f:
        first = await f.fetch(url)
        assert first.status_code == 429 and first.error and clock.slept == []
        assert first.retry_after == start + timedelta(hours=1)
        held = await f.fetch(url)
        assert held.status_code is None and held.error and "held back" in held.error
        assert held.retry_after == first.retry_after and len(origin.hits("/f")) == 1
        assert (await f.fetch(other)).ok  # only that URL is held
        clock.advance(3601)
        assert (await f.fetch(url)).ok and len(origin.hits("/f")) == 2


async def test_429_holds_the_whole_host_when_configured(origin: Origin, clock: FakeClock) -> None:
    """With retry_after_per_host, a 429's Retry-After holds back every URL of that host."""
    url = origin.route("/f", Reply(status=429, headers={"Retry-After": "600"}))
    other = origin.route("/other", Reply("ok"))
    async with Fetcher(settings(retry_after_per_host=True), clock) as f:
        await f.fetch(url)
        held = await f.fetch(other)
        assert held.error and "held back" in held.error and origin.hits("/other") == []


async def test_503_long_retry_after_is_returned_without_retry(
    origin: Origin, clock: FakeClock
) -> None:
    """A 503 with a long Retry-After is not retried and its time is returned."""
    url = origin.route("/f", Reply(status=503, headers={"Retry-After": "86400"}))
    result = await fetch_with(clock, url)
    assert result.status_code == 503 and result.retry_after == clock.now() + timedelta(days=1)
    assert len(origin.hits("/f")) == 1


# Network failures


async def test_dropped_connection_is_retried(origin: Origin, clock: FakeClock) -> None:
    """A connection closed without an answer is retried, and the next answer is used."""
    url = origin.route("/f", Sequence_(Reply(drop=True), Reply("ok")))
    result = await fetch_with(clock, url)
    assert result.ok and result.content == b"ok" and len(clock.slept) == 1


async def test_always_dropped_connection_is_a_network_error(
    origin: Origin, clock: FakeClock
) -> None:
    """A connection that is always dropped ends as an error with no status code."""
    url = origin.route("/f", Reply(drop=True))
    result = await fetch_with(clock, url, max_retries=2)
    assert result.status_code is None and result.error
    assert "connection dropped" in result.error and len(origin.hits("/f")) == 3


async def test_connection_refused_is_a_network_error(clock: FakeClock) -> None:
    """A port nobody listens on gives a readable connect error, retried, status None."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await fetch_with(clock, f"http://127.0.0.1:{port}/f", max_retries=1)
    assert result.status_code is None and result.error
    assert result.error.startswith("could not connect to 127.0.0.1") and len(clock.slept) == 1


async def test_slow_body_is_cut_by_the_total_timeout(origin: Origin, clock: FakeClock) -> None:
    """A body that drips in slower than the total timeout allows ends as a timeout error."""
    url = origin.route("/f", Reply(b"x" * 50 * 1024, chunk_delay=0.05))
    started = time.monotonic()
    result = await fetch_with(clock, url, timeout=0.5, max_retries=0)
    assert time.monotonic() - started < 2.0
    assert result.status_code is None and result.error and result.error.startswith("timed out")


# Body limits


async def test_declared_oversized_body_is_refused(origin: Origin, clock: FakeClock) -> None:
    """A Content-Length above the limit is refused before the body is read."""
    url = origin.route("/f", Reply(b"x" * (2 * MiB)))
    result = await fetch_with(clock, url, max_body_bytes=MiB)
    assert result.status_code == 200 and not result.ok and result.content == b""
    assert result.error and result.error.startswith("body too large")


async def test_streamed_oversized_body_is_cut_off(origin: Origin, clock: FakeClock) -> None:
    """A chunked body without Content-Length is cut off once it passes the limit."""
    url = origin.route("/f", Reply(b"x" * (3 * MiB), chunked=True))
    result = await fetch_with(clock, url, max_body_bytes=MiB)
    assert result.error == f"body too large: more than {MiB} bytes" and result.content == b""


async def test_gzip_bomb_is_cut_off_on_decoded_size(origin: Origin, clock: FakeClock) -> None:
    """A small gzip body that inflates past the limit is cut off by its decoded size."""
    url = origin.route("/f", Reply(b"\0" * (4 * MiB), gzip=True))
    result = await fetch_with(clock, url, max_body_bytes=MiB)
    assert len(origin.hits("/f")) == 1 and result.status_code == 200
    assert result.error == f"body too large: more than {MiB} bytes after decompression"


async def test_gzip_bomb_never_inflates_past_the_limit_in_memory(
    origin: Origin, clock: FakeClock
) -> None:
    """A 60 MB gzip bomb (60 KB on the wire, one read's worth) is inflated only up to the limit:
    the fetch's peak of traced memory stays near the limit, not the bomb's size."""
    import gzip as gz
    import tracemalloc

    url = origin.route(
        "/f", Reply(gz.compress(b" " * (60 * MiB)), headers={"Content-Encoding": "gzip"})
    )
    tracemalloc.start()
    try:
        result = await fetch_with(clock, url, max_body_bytes=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error == f"body too large: more than {MiB} bytes after decompression"
    assert peak < 8 * MiB, f"{peak / MiB:.0f} MiB traced while reading a 1 MiB-limited body"


async def test_gzip_body_within_limit_is_decoded(origin: Origin, clock: FakeClock) -> None:
    """A gzip body under the limit comes back decompressed."""
    body = b"<rss>" + b"a" * 100_000 + b"</rss>"
    url = origin.route("/f", Reply(body, gzip=True, chunked=True))
    result = await fetch_with(clock, url, max_body_bytes=MiB)
    assert result.ok and result.content == body


# Redirects


async def test_permanent_redirect_chain_is_followed_and_recorded(
    origin: Origin, fetcher: Fetcher
) -> None:
    """A chain of 301 and 308 is followed to the end and reported as a permanent move."""
    origin.route("/old", Reply(status=301, headers={"Location": "/middle"}))
    origin.route("/middle", Reply(status=308, headers={"Location": origin.url("/new")}))
    new = origin.route("/new", Reply("<rss/>"))
    result = await fetcher.fetch(origin.url("/old"))
    assert result.ok and result.url == new and result.permanent_redirect == new


async def test_temporary_hop_means_no_permanent_redirect(origin: Origin, fetcher: Fetcher) -> None:
    """A chain with a 302 in it is followed but not reported as a permanent move."""
    origin.route("/old", Reply(status=301, headers={"Location": "/middle"}))
    origin.route("/middle", Reply(status=302, headers={"Location": "/new"}))
    new = origin.route("/new", Reply("<rss/>"))
    result = await fetcher.fetch(origin.url("/old"))
    assert result.ok and result.url == new and result.permanent_redirect is None


async def test_redirect_loop_is_an_error(origin: Origin, fetcher: Fetcher) -> None:
    """Two URLs redirecting to each other end as a 'redirect loop' error after one visit each."""
    origin.route("/a", Reply(status=301, headers={"Location": "/b"}))
    origin.route("/b", Reply(status=301, headers={"Location": "/a"}))
    result = await fetcher.fetch(origin.url("/a"))
    assert result.error and result.error.startswith("redirect loop")
    assert len(origin.hits("/a")) == 1 and len(origin.hits("/b")) == 1


async def test_too_many_redirects_is_an_error(origin: Origin, clock: FakeClock) -> None:
    """A chain longer than max_redirects ends as an error without following the rest."""
    for i in range(5):
        origin.route(f"/r{i}", Reply(status=302, headers={"Location": f"/r{i + 1}"}))
    origin.route("/r5", Reply("ok"))
    result = await fetch_with(clock, origin.url("/r0"), max_redirects=2)
    assert result.error == "too many redirects (more than 2)" and origin.hits("/r3") == []


async def test_conditional_headers_follow_redirects(origin: Origin, fetcher: Fetcher) -> None:
    """Validators are sent to the redirect target too, so a moved feed can still answer 304."""
    origin.route("/old", Reply(status=301, headers={"Location": "/new"}))
    origin.route("/new", Reply("<rss/>", etag='"v2"'))
    result = await fetcher.fetch(origin.url("/old"), etag='"v2"')
    assert result.status_code == 304 and result.permanent_redirect == origin.url("/new")


# Private addresses and the proxy


async def test_private_address_is_refused_by_default(origin: Origin, clock: FakeClock) -> None:
    """By default a loopback URL is refused with a clear error and no request is sent."""
    url = origin.route("/f", Reply("ok"))
    async with Fetcher(FetchSettings(), clock) as f:
        result = await f.fetch(url)
    assert result.status_code is None and origin.requests == []
    assert result.error == (
        "refusing private address 127.0.0.1 for host 127.0.0.1; "
        "set fetch.allow_private_networks = true to allow"
    )


async def test_hostname_resolving_to_loopback_is_refused(origin: Origin, clock: FakeClock) -> None:
    """A hostname that resolves to a loopback address is refused too."""
    origin.route("/f", Reply("ok"))
    async with Fetcher(FetchSettings(), clock) as f:
        result = await f.fetch(f"http://localhost:{origin.port}/f")
    assert result.error and result.error.startswith("refusing private address")
    assert "for host localhost" in result.error and origin.requests == []


async def test_proxy_is_used_for_requests(origin: Origin, clock: FakeClock) -> None:
    """With a proxy configured, requests go through it and hostnames are not resolved locally."""
    origin.route(
        "http://feeds.example.invalid/list", Reply('{"code":0}', content_type="application/json")
    )
    async with Fetcher(FetchSettings(proxy=origin.proxy_url), clock) as f:
        result = await f.fetch("http://feeds.example.invalid/list?page=1")
    assert result.ok and result.content == b'{"code":0}'
    assert origin.requests[0].target == "http://feeds.example.invalid/list?page=1"


async def test_proxy_still_refuses_private_literal_and_redirects_to_it(
    origin: Origin, clock: FakeClock
) -> None:
    """Through a proxy, a literal private IP is still refused, also as a redirect target."""
    origin.route(
        "http://feeds.example.invalid/moved",
        Reply(status=301, headers={"Location": "http://169.254.169.254/latest/meta-data"}),
    )
    async with Fetcher(FetchSettings(proxy=origin.proxy_url), clock) as f:
        direct = await f.fetch("http://10.1.2.3/feed")
        redirected = await f.fetch("http://feeds.example.invalid/moved")
    assert direct.error and direct.error.startswith("refusing private address 10.1.2.3")
    assert redirected.error and "169.254.169.254" in redirected.error
    assert [r.target for r in origin.requests] == ["http://feeds.example.invalid/moved"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.invalid/feed", "not an http(s) URL"),
        ("javascript:alert(1)", "not an http(s) URL"),
        ("http://[::1/feed", "invalid URL"),
        ("http://example.invalid:99999/feed", "invalid URL"),
    ],
)
async def test_bad_urls_are_error_results(clock: FakeClock, url: str, message: str) -> None:
    """A URL that is not http(s) or is malformed is an error result, not an exception."""
    result = await fetch_with(clock, url)
    assert result.status_code is None and result.error and result.error.startswith(message)


async def test_malformed_redirect_location_is_an_error(origin: Origin, fetcher: Fetcher) -> None:
    """A redirect to a malformed Location ends as an error result naming it."""
    url = origin.route("/f", Reply(status=301, headers={"Location": "http://[::1/x"}))
    result = await fetcher.fetch(url)
    assert result.error and result.error.startswith("invalid redirect Location")
    assert len(origin.hits("/f")) == 1  # not retried


# Politeness and concurrency


def concurrency_probe(delay: float) -> tuple[Callable[[Request], Reply], list[int]]:
    """A route handler that records the peak number of requests it serves at once."""
    lock, state, peak = threading.Lock(), [0], [0]

    def handler(request: Request) -> Reply:
        with lock:
            state[0] += 1
            peak[0] = max(peak[0], state[0])
        time.sleep(delay)
        with lock:
            state[0] -= 1
        return Reply("ok")

    return handler, peak


async def test_per_host_concurrency_is_bounded(origin: Origin, clock: FakeClock) -> None:
    """No more than per_host_concurrency requests to one host are in flight at once."""
    handler, peak = concurrency_probe(0.1)
    url = origin.route("/slow", handler)
    async with Fetcher(settings(per_host_concurrency=2), clock) as f:
        results = await asyncio.gather(*(f.fetch(url) for _ in range(6)))
    assert all(r.ok for r in results) and peak[0] == 2


async def test_global_concurrency_is_bounded(origin: Origin, clock: FakeClock) -> None:
    """Across hosts, no more than `concurrency` requests are in flight at once."""
    handler, peak = concurrency_probe(0.1)
    origin.route("/slow", handler)
    urls = [origin.url("/slow"), f"http://localhost:{origin.port}/slow"] * 2
    async with Fetcher(settings(concurrency=1, per_host_concurrency=2), clock) as f:
        results = await asyncio.gather(*(f.fetch(u) for u in urls))
    assert all(r.ok for r in results) and peak[0] == 1


async def test_per_host_gap_is_kept_on_the_clock(origin: Origin, clock: FakeClock) -> None:
    """Two requests to one host start at least per_host_delay apart (a fake-clock sleep);
    another host does not wait."""
    url = origin.route("/f", Reply("ok"))
    async with Fetcher(settings(per_host_delay=5), clock) as f:
        await f.fetch(url)
        await f.fetch(f"http://localhost:{origin.port}/f")
        assert clock.slept == []
        await f.fetch(url)
    assert clock.slept == [5.0]


async def test_elapsed_is_reported(origin: Origin, clock: FakeClock) -> None:
    """The time a fetch took, backoff included, is reported in elapsed (fake clock here)."""
    url = origin.route("/f", Sequence_(Reply(status=502), Reply("ok")))
    result = await fetch_with(clock, url)
    assert result.ok and result.elapsed == pytest.approx(sum(clock.slept))


# POST (WebSub pings)


async def test_post_sends_a_form_and_is_retried_like_a_fetch(
    origin: Origin, clock: FakeClock
) -> None:
    """A form POST goes through the same retries: a 503 is retried after a fake backoff."""
    url = origin.route("/hub", Sequence_(Reply(status=503), Reply(status=204, content_type=None)))
    async with Fetcher(settings(retry_base_delay=2), clock, rng=random.Random(1)) as f:
        posted = await f.post(url, {"hub.mode": "publish", "hub.url": "https://x.example/f"})
    assert (posted.status, posted.error, posted.attempts) == (204, None, 2)
    assert len(clock.slept) == 1
    last = origin.hits("/hub")[-1]
    assert (
        last.method == "POST"
        and last.body == b"hub.mode=publish&hub.url=https%3A%2F%2Fx.example%2Ff"
    )


async def test_post_obeys_the_address_policy(origin: Origin, clock: FakeClock) -> None:
    """Without allow_private_networks a POST to a loopback address is refused, never sent."""
    url = origin.route("/hub", Reply(status=204, content_type=None))
    async with Fetcher(settings(allow_private_networks=False), clock) as f:
        posted = await f.post(url, {"a": "b"})
    assert posted.status is None and posted.error and posted.attempts == 1
    assert origin.hits("/hub") == []
