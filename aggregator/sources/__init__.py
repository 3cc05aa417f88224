"""Source adapters: one module per kind of source, all behind the ``Adapter`` protocol.

An adapter turns fetched bytes into ``Item`` records. It never fetches on its own: when it needs
more documents (a Qutoutiao article's detail JSON, say) its ``enrich`` is handed the pipeline's
fetch function, so those requests go through the same fetcher with its retries, limits and
politeness. The pipeline calls ``enrich`` only for items that are new or changed.

Each adapter also owns what the config knows about its kind: the model of its kind-specific keys
(``options_model``, validated when the config is read), its defaults for a source's category, site
name and placeholder image, and its default URL when a source gives none. ``KINDS`` names the
kinds; the config asks ``get_adapter`` for the rest, so reading the config does not import an
adapter whose kind no source uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..models import FetchResult, Item, ParsedFeed, Source

if TYPE_CHECKING:  # pydantic is for the config; a parser worker reading feeds never loads it
    from ..config.types import KindOptions

FetchFn = Callable[[str], Awaitable[FetchResult]]

KINDS = ("feed", "qutoutiao", "json", "html")


@dataclass(frozen=True)
class KindDefaults:
    """What a source of a kind has when its table does not say (the ``[[sources]]`` keys of the
    same names win)."""

    category: tuple[str, ...] = ()
    site_name: str | None = None
    hexo_placeholder_image: bool = False


NO_DEFAULTS = KindDefaults()


class Adapter(Protocol):
    kind: str

    @property
    def options_model(self) -> type[KindOptions]:
        """The model of the kind-specific keys of a ``[[sources]]`` table of this kind."""
        ...

    @property
    def defaults(self) -> KindDefaults: ...

    def default_url(self, options: Mapping[str, Any]) -> str | None:
        """The URL of a source that names none (from its options), or None: then it needs one."""
        ...

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
    # the HTML and JSON adapters.
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
