"""Hostile sources for the fake origin: about thirty ways a server can misbehave, each a route.

Shared by tests/test_hostile.py (one round, every case on its own) and bench/hostile.py (the daemon
for minutes with these beside good sources: schedule kept, memory bounded).
"""

from __future__ import annotations

import gzip
import json
import random
import threading

from .origin import Origin, Reply, Request, Sequence_


def rss(title: str, items: str) -> str:
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><link>http://example.com/</link><description>d</description>"
        f"{items}</channel></rss>"
    )


def item(
    i: int,
    title: str = "Story",
    date: str = "Sun, 01 Mar 2026 10:00:00 GMT",
    guid: str | None = None,
) -> str:
    return (
        f"<item><guid isPermaLink='false'>{guid or f'g{i}'}</guid><title>{title} {i}</title>"
        f"<link>http://example.com/{i}</link><description>Body {i}</description>"
        f"<pubDate>{date}</pubDate></item>"
    )


def good(n: int) -> str:
    return rss(f"good {n}", "".join(item(i, f"Good {n}") for i in range(3)))


BOMB = gzip.compress(b"<rss>" + b" " * (40 * 1024 * 1024) + b"</rss>")
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10)
    )
    + ']><rss version="2.0"><channel><title>&lol9;</title>'
    + item(1)
    + "</channel></rss>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<rss version="2.0"><channel><title>&xxe;</title><link>http://example.com/</link>'
    "<description>d</description>" + item(1, "&xxe;") + "</channel></rss>"
)


def hostile_routes(origin: Origin, hold: threading.Event) -> dict[str, Reply | object]:
    def slow_headers(request: Request) -> Reply:
        hold.wait(3)
        return Reply(good(0))

    rng = random.Random(7)
    dup_guids = rss("dups", "".join(item(i, guid="same") for i in range(5)))
    deep = rss("deep", "<x>" * 5000 + "</x>" * 5000 + item(1))
    return {
        "slow-body": Reply(good(0) + " " * 8192, chunk_delay=0.5),  # 9 chunks, 4.5 s
        "slow-headers": slow_headers,
        "gzip-bomb": Reply(BOMB, headers={"Content-Encoding": "gzip"}),
        "huge-body": Reply(b"<rss>" + b"x" * (3 * 1024 * 1024) + b"</rss>"),
        "redirect-loop": Reply(status=302, headers={"Location": origin.url("/h/redirect-loop")}),
        "429": Reply("slow down", status=429, headers={"Retry-After": "3600"}),
        "503": Reply("maintenance", status=503, headers={"Retry-After": "120"}),
        "410": Reply(status=410),
        "404": Reply("nope", status=404),
        "500-then-200": Sequence_(Reply(status=500), Reply(good(1))),
        "html-page": Reply("<!doctype html><html><body>hi</body></html>", content_type="text/html"),
        "truncated": Reply(good(2), declared_length=len(good(2)) + 500),
        "reset": Reply(drop=True),
        "empty": Reply(b""),
        "binary": Reply(
            bytes(rng.randrange(256) for _ in range(4096)), content_type="application/octet-stream"
        ),
        "laughs": Reply(LAUGHS),
        "xxe": Reply(XXE),
        "nul-bytes": Reply(good(3).replace("Body", "Bo\x00dy")),
        "deep-nesting": Reply(deep),
        "duplicate-guids": Reply(dup_guids),
        "date-year-0": Reply(rss("d0", item(1, date="0000-00-00"))),
        "date-year-1": Reply(rss("d1", item(1, date="0001-01-01T00:00:00+01:00"))),
        "date-9999": Reply(rss("d9", item(1, date="9999-12-31T23:59:59-05:00"))),
        "date-1900": Reply(rss("d19", item(1, date="Mon, 01 Jan 1900 00:00:00 GMT"))),
        "huge-title": Reply(rss("t", item(1, title="T" * 300_000))),
        "json-not-feed": Reply(json.dumps({"hello": "world"}), content_type="application/json"),
        "json-feed-overflow": Reply(
            json.dumps(
                {
                    "version": "https://jsonfeed.org/version/1.1",
                    "title": "j",
                    "items": [
                        {"id": "1", "content_text": "x", "date_published": "99999-01-01T00:00:00Z"},
                        {"id": "2", "content_text": "y", "date_published": "0000-01-01T00:00:00Z"},
                    ],
                }
            ),
            content_type="application/feed+json",
        ),
        "local-path-body": Reply("/etc/passwd", content_type="application/xml"),
        "wrong-charset": Reply(
            good(4).encode("utf-16"), content_type="application/xml; charset=utf-8"
        ),
        "lying-json-type": Reply(good(5), content_type="application/json"),
    }


def many_items(count: int) -> bytes:
    """An RSS feed of ``count`` items (100,000 make about 12 MB)."""
    items = "".join(
        f"<item><guid>m{i}</guid><title>Item {i}</title><link>http://e.com/{i}</link>"
        f"<pubDate>Sun, 01 Mar 2026 {i % 24:02}:{i % 60:02}:00 GMT</pubDate></item>"
        for i in range(count)
    )
    return rss("many", items).encode()


def many_attributes(count: int) -> bytes:
    """An RSS feed with ``count`` attributes on one element: feedparser's cost grows with the
    square of the count (50,000 took 24 s of CPU)."""
    attrs = " ".join(f'a{i}="{i}"' for i in range(count))
    return rss("attrs", f"<item {attrs}><title>t</title><guid>x</guid></item>").encode()
