"""What a large or hostile document costs in memory: entity declarations cannot make the parser
expand text, a large body crosses to a worker process without a pickled copy, and a worker gives
back what a big document took."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

from aggregator.models import FetchResult, Source
from aggregator.sources.feed import FeedAdapter

from .hostile import LAUGHS

SOURCE = Source(id="s", url="http://127.0.0.1/feed")
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def parse(body: bytes) -> list[str | None]:
    result = FetchResult(url=SOURCE.url, status_code=200, content=body, fetched_at=NOW)
    return [i.title for i in FeedAdapter().parse(SOURCE, result).items]


def traced_peak(body: bytes) -> tuple[list[str | None], int]:
    """The titles of ``body``'s items and the most memory Python held while parsing it."""
    parse(body)  # imports and caches first
    tracemalloc.start()
    try:
        titles = parse(body)
        return titles, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_nested_entity_declarations_are_not_expanded() -> None:
    """A billion-laughs document (990 bytes) parses with its item, without the 60 MB of
    expanded text expat produced before its own amplification limit stopped it."""
    titles, peak = traced_peak(LAUGHS.encode())
    assert titles == ["Story 1"]
    assert peak < 5_000_000


def test_safe_entity_declarations_still_apply() -> None:
    """An entity declared as a character reference or short text is still expanded, wherever
    the declarations stand in the prolog."""
    doc = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY nbsp "&#160;"><!ENTITY co "ACME">]>'
           '<rss version="2.0"><channel><title>t</title><item><title>a&nbsp;b &co;</title>'
           "<guid>1</guid></item></channel></rss>")
    assert parse(doc.encode()) == ["a\xa0b ACME"]
