"""Source adapters: one module per kind of source, all behind the ``Adapter`` protocol.

An adapter turns fetched bytes into ``Item`` records. It never fetches on its own: when it needs
more documents (a Qutoutiao article's detail JSON, say) its ``enrich`` is handed the pipeline's
fetch function, so those requests go through the same fetcher with its retries, limits and
politeness. The pipeline calls ``enrich`` only for items that are new or changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ..models import FetchResult, Item, ParsedFeed, Source

FetchFn = Callable[[str], Awaitable[FetchResult]]


class Adapter(Protocol):
    kind: str

    def request_url(self, source: Source, effective_url: str) -> str:
        """The URL to fetch for this source (usually the effective URL itself)."""
        ...

    def parse(self, source: Source, result: FetchResult) -> ParsedFeed:
        """Items from a fetched document; raises ParseError or NotAFeedError."""
        ...

    async def enrich(self, source: Source, item: Item, fetch: FetchFn) -> Item:
        """Complete a new or changed item (full content from another document); never raises
        for a failed extra fetch: the item is returned as it was."""
        ...


def get_adapter(kind: str) -> Adapter:
    """The adapter for a source kind (the config has already checked that the kind exists)."""
    # Imported on first use of a kind: a parser worker that only ever sees feeds does not load
    # the HTML and JSON adapters (and the config module they read their options from).
    if kind == "feed":
        from .feed import FeedAdapter

        return FeedAdapter()
    if kind == "qutoutiao":
        from .qutoutiao import QutoutiaoAdapter

        return QutoutiaoAdapter()
    if kind == "json":
        from .json_api import JsonAdapter

        return JsonAdapter()
    if kind == "html":
        from .html_page import HtmlAdapter

        return HtmlAdapter()
    raise KeyError(kind)
