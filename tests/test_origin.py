"""The fake origin itself: the tests lean on it, so it is checked too."""

from __future__ import annotations

import httpx

from .origin import Origin, Reply, Sequence_


def test_serves_routes_and_records_requests(origin: Origin) -> None:
    """A routed path answers its body; unknown paths answer 404; requests are recorded."""
    origin.route("/a.xml", Reply("<rss/>", etag='"v1"'))
    assert httpx.get(origin.url("/a.xml")).text == "<rss/>"
    assert httpx.get(origin.url("/nope")).status_code == 404
    assert [r.path for r in origin.requests] == ["/a.xml", "/nope"]


def test_conditional_get_and_sequences(origin: Origin) -> None:
    """A matching If-None-Match gets 304, and a sequence serves replies in order."""
    origin.route("/a.xml", Reply("<rss/>", etag='"v1"'))
    assert httpx.get(origin.url("/a.xml"), headers={"If-None-Match": '"v1"'}).status_code == 304
    origin.route("/s", Sequence_(Reply(status=500), Reply("ok")))
    assert [httpx.get(origin.url("/s")).status_code for _ in range(3)] == [500, 200, 200]


def test_acts_as_proxy_for_absolute_urls(origin: Origin) -> None:
    """Through the origin as HTTP proxy, a route keyed by absolute URL answers for that host."""
    origin.route(
        "http://example.invalid/list", Reply('{"code":0}', content_type="application/json")
    )
    with httpx.Client(proxy=origin.proxy_url) as client:
        assert client.get("http://example.invalid/list?x=1").json() == {"code": 0}
