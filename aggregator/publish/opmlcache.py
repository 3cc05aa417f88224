"""The OPML list as served (``GET /opml``): rendered once, kept with its validators until what it
shows changes.

Why: rendered on every request, /opml managed about 120 requests a second at a 4 s median under
500 connections (``bench/cheap_endpoints.py``), each rendering holding the interpreter lock
against the event loop; served from here it costs what a cached feed costs.

Owns: when the document is rendered again: at once when the running config or the live set of
sources is another object (a reload swapped them), else when the stored fields the document
shows (each source's URL, title and site link) changed, which is read from the store at most
once per ``recheck_after`` seconds, in a worker thread, one read at a time (concurrent requests
share it). Unchanged bytes keep their ETag. While the store cannot be read, the last document
is served. Does not own: the document (opml.py) or HTTP (http/replies.py, http/app.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config.settings import Settings
from ..logs import kv
from ..models import Source, SourceState
from .feeds import FeedService, Rendered, cache_seconds, rendered
from .opml import OPML_TYPE, export_opml

log = logging.getLogger("aggregator.publish")

Shown = tuple[tuple[str, str | None, str | None, str | None], ...]


@dataclass(frozen=True)
class _Kept:
    settings: Settings
    sources: Mapping[str, Source]
    shown: Shown  # the stored fields the document was made from
    doc: Rendered
    checked_at: datetime


class OpmlDocument:
    """The /opml document of one feed service (its settings, sources, store and clock)."""

    def __init__(self, feeds: FeedService, recheck_after: float | None = None) -> None:
        self.feeds = feeds
        self.recheck_after = (
            feeds.recheck_after if recheck_after is None else timedelta(seconds=recheck_after)
        )
        self.renders = 0  # documents rendered (not served from the cache)
        self._kept: _Kept | None = None
        self._flight: asyncio.Future[Rendered] | None = None

    def cached(self) -> Rendered | None:
        """The document when it is current without asking the store (same config and sources,
        confirmed less than ``recheck_after`` ago); else None. No I/O."""
        kept = self._kept
        if kept is None or not self._same_config(kept):
            return None
        age = self.feeds.clock.now() - kept.checked_at
        return kept.doc if timedelta(0) <= age < self.recheck_after else None

    def last(self) -> Rendered | None:
        """The document as last rendered, however old (for a database outage); None before the
        first rendering."""
        kept = self._kept
        return kept.doc if kept is not None else None

    async def serve(self) -> Rendered:
        """The current document; a store read (and maybe a rendering) in a worker thread when
        the cached one needs confirming, shared by every request that arrives meanwhile."""
        hit = self.cached()
        if hit is not None:
            return hit
        if self._flight is None or self._flight.done():
            self._flight = asyncio.ensure_future(asyncio.to_thread(self.refresh))
        return await asyncio.shield(self._flight)

    def refresh(self) -> Rendered:
        """Read the stored fields the document shows; render again only if they or the config
        changed (blocking: call from a worker thread)."""
        settings, sources, now = self.feeds.settings, self.feeds.sources(), self.feeds.clock.now()
        kept = self._kept
        try:
            states = self.feeds.store.list_states(include_disabled=True)
        except Exception as exc:  # the database is away: the last document is still right enough
            if kept is None:
                raise
            log.warning("%s", kv(event="opml_stale", error=type(exc).__name__))
            return kept.doc
        shown = _shown(states)
        if kept is not None and self._same_config(kept) and kept.shown == shown:
            doc = kept.doc
        else:
            doc = self._render(settings, sources, states, kept)
        self._kept = _Kept(settings, sources, shown, doc, now)
        return doc

    def _render(
        self,
        settings: Settings,
        sources: Mapping[str, Source],
        states: list[SourceState],
        kept: _Kept | None,
    ) -> Rendered:
        body = export_opml(settings, sources, states)
        self.renders += 1
        if kept is not None and kept.doc.body == body:
            return kept.doc  # same bytes, same validators
        return rendered(body, OPML_TYPE, None, cache_seconds(settings.schedule.interval))

    def _same_config(self, kept: _Kept) -> bool:
        return kept.settings is self.feeds.settings and kept.sources is self.feeds.sources()


def _shown(states: list[SourceState]) -> Shown:
    return tuple((s.source_id, s.url, s.title, s.site_link) for s in states)
