"""Published feeds as bytes: one page of a feed, rendered once, cached until its selection changes.

Owns: turning a ``FeedSpec`` (catalog.py), a format and a ``FeedQuery`` (query.py) into a
``Rendered`` document with its validators (strong ETag over the bytes, Last-Modified, max-age); the
rendered-bytes cache, bounded in bytes, checked against the store's newest change of the feed's
selection whenever the store's change token moved (on SQLite a one-row read, done on the event
loop: a hit needs no thread and no aggregate); and single flight: concurrent requests for the same
uncached document share one rendering, which runs in a worker thread so the event loop keeps
serving. Does not own: which feeds exist (catalog.py), document syntax (render.py), HTTP
(http/replies.py and http/app.py).

Through a database outage (``self.guard``, store/guard.py: the rendering is awaited at most
``[storage] request_timeout``, and after a failure the store is not asked until a probe answers)
a document rendered before is served as it was, same bytes and ETag, and one never rendered
raises ``StoreUnavailable`` (HTTP 503 with Retry-After); once the database answers again,
documents are confirmed and refreshed as usual.

With ``recheck_after`` (the daemon: ``RECHECK_AFTER``), a cached document confirmed against the
store less than that many seconds ago is served without asking the store again, so a busy server
reads the store a few times a second instead of once per request. A write in another process (a
worker, or another web process's admin action) therefore shows in ``serve`` within that bound;
``changed()`` makes writes of this process show at once. ``render`` always asks the store.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from ..clock import Clock, SystemClock
from ..config.settings import Settings
from ..errors import SelectionError, StoreUnavailable
from ..models import Entry, Source, SourceState
from ..store import ReadStore
from ..store.guard import StoreGuard, is_outage
from .catalog import FORMATS, Catalog, FeedSpec, source_title
from .pages import Page, collect
from .query import Cursor, FeedQuery, admit_all, parse_query
from .render import CONTENT_TYPES, FeedMeta, SourceRef, render, tag_authority
from .variants import converter, reshape

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "FeedService",
    "FeedSpec",
    "Rendered",
    "cache_seconds",
    "rendered",
]

CACHE_BYTES = 64 << 20  # rendered documents kept, plain and gzip together
RESOLVED_MAX = 4096  # URL paths remembered with their feed (a client can invent many spellings)
_COUNT_LOCK = threading.Lock()
_EMPTY = FeedQuery()


@dataclass(frozen=True)
class Rendered:
    body: bytes
    etag: str  # strong, over ``body``
    last_modified: datetime | None
    content_type: str
    max_age: int  # seconds; RSS <ttl> says the same in minutes
    gzip_body: bytes = b""
    gzip_etag: str = ""  # strong, over ``gzip_body`` (a different representation, another tag)

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzip_body)


@dataclass(frozen=True)
class _Cached:
    valid_for: tuple[Any, ...]  # (store stamp, feed spec, filter_time window)
    rendered: Rendered
    token: int | None = None  # the store's change token when valid_for was last confirmed
    checked_at: datetime | None = None  # when valid_for was last confirmed (before the reads)
    epoch: int = 0  # FeedService.changed() calls before that confirmation


def cache_seconds(interval: float) -> int:
    """Cache-Control max-age for a feed whose sources are fetched every ``interval`` seconds:
    half the interval (a new entry waits that long on average), between 1 minute and 1 hour."""
    return int(max(60.0, min(3600.0, interval / 2)))


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def rendered(
    body: bytes, content_type: str, last_modified: datetime | None, max_age: int
) -> Rendered:
    """A document with its validators, plain and gzip (compressed the same way every time)."""
    packed = gzip.compress(body, compresslevel=6, mtime=0)
    return Rendered(
        body, strong_etag(body), last_modified, content_type, max_age, packed, strong_etag(packed)
    )


class FeedService:
    def __init__(
        self,
        settings: Settings,
        store: ReadStore,
        sources: Callable[[], Mapping[str, Source]],
        clock: Clock | None = None,
        cache_bytes: int = CACHE_BYTES,
        recheck_after: float = 0.0,
        guard: StoreGuard | None = None,
    ) -> None:
        self.store = store
        self.guard = guard or StoreGuard(store.ping, settings.storage.request_timeout, clock)
        self.sources = sources
        self.clock = clock or SystemClock()
        self.cache_bytes = cache_bytes
        self.recheck_after = timedelta(seconds=recheck_after)
        self._settings = settings
        # the sources' stored records as the last render read them: feed titles are resolved from
        # these on the event loop, which must never wait for the database
        self._known: dict[str, SourceState] | None = None
        self.catalog = Catalog(settings, sources, self._state, self._states)
        self.renders = 0  # documents rendered (not served from the cache)
        self._cache: OrderedDict[tuple[Any, ...], _Cached] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[tuple[Any, ...], asyncio.Future[Rendered]] = {}
        self._epoch = 0
        self._resolved: dict[str, tuple[FeedSpec, str]] = {}
        self._resolved_for: Mapping[str, Source] | None = None

    def _read_states(self) -> dict[str, SourceState]:
        """The sources' stored records by id, read now (in a thread of the guard where it
        matters); the last ones read when the database does not answer."""
        try:
            known = {s.source_id: s for s in self.store.list_states(include_disabled=True)}
        except Exception as exc:
            if not is_outage(exc):
                raise
            return dict(self._known or {})
        self._known = known
        return known

    def _states(self) -> list[SourceState]:
        return list(self._read_states().values())

    def _state(self, source_id: str) -> SourceState | None:
        """A source's stored record as last read (read once when nothing was read yet)."""
        known = self._known if self._known is not None else self._read_states()
        return known.get(source_id)

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self.update(settings)

    def update(self, settings: Settings) -> None:
        """Use a reloaded configuration (cached documents are re-validated against it)."""
        self._settings = settings
        self.catalog = Catalog(settings, self.sources, self._state, self._states)
        self._resolved_for = None

    def changed(self) -> None:
        """Something was written to the store by this process: confirm cached documents again
        before serving them (without this, ``serve`` sees it within ``recheck_after``)."""
        self._epoch += 1

    # --- which feed ---------------------------------------------------------------------------

    def all(self) -> FeedSpec:
        return self.catalog.all()

    def source(self, source_id: str) -> FeedSpec:
        return self.catalog.source(source_id)

    def category(self, path: tuple[str, ...]) -> FeedSpec:
        return self.catalog.category(path)

    def resolve(self, rest: str) -> tuple[FeedSpec, str]:
        """Feed and format of a URL path under /feeds/ (as sent, percent-encoded); remembered
        while the configuration and the live set of sources stay the same objects."""
        sources = self.sources()
        if self._resolved_for is not sources:
            self._resolved, self._resolved_for = {}, sources
        found = self._resolved.get(rest)
        if found is None:
            found = self.catalog.resolve(rest)  # an unknown path raises and is not remembered
            if len(self._resolved) < RESOLVED_MAX:
                self._resolved[rest] = found
        return found

    def every(self) -> list[FeedSpec]:
        return list(self.catalog.every())

    def target(
        self, rest: str, params: Iterable[tuple[str, str]]
    ) -> tuple[FeedSpec, str, FeedQuery]:
        """Feed, format and query of a request: ``format=`` in the query overrides the path's
        extension (``/feeds/all.atom?format=json`` is the JSON Feed, the same document as
        ``/feeds/all.json``)."""
        spec, fmt = self.resolve(rest)
        query = self.query(params)
        return spec, query.format or fmt, query

    def query(self, params: Iterable[tuple[str, str]]) -> FeedQuery:
        """The query of a feed URL (the shared default object when it asks for nothing)."""
        if isinstance(params, (tuple, list)) and not params:
            return _EMPTY
        query = parse_query(params, self.settings.publish.max_limit)
        return _EMPTY if query == _EMPTY else query

    # --- serving ------------------------------------------------------------------------------

    async def serve(self, spec: FeedSpec, fmt: str, query: FeedQuery = _EMPTY) -> Rendered:
        """``render`` in a worker thread; concurrent calls for one document share one run.

        While the database is down (``self.guard``), or when it fails or does not answer within
        the guard's timeout, the last rendering of the document is served as it was (same bytes,
        same ETag); a document never rendered raises ``StoreUnavailable``."""
        here = _canonical(query)
        hit = self._unchanged(spec, fmt, query, here)  # the common case: no thread, no aggregate
        if hit is not None:
            return hit
        if self.guard.down:
            return self._last(spec, fmt, here)
        key = (spec, fmt, here)
        flight = self._inflight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(asyncio.to_thread(self.render, spec, fmt, query))
            self._inflight[key] = flight
            flight.add_done_callback(lambda done: self._land(key, done))
        try:
            return await self.guard.wait("render", flight)
        except StoreUnavailable:
            return self._last(spec, fmt, here)

    def _last(self, spec: FeedSpec, fmt: str, here: str) -> Rendered:
        """The document as last rendered, however old (the database is unavailable)."""
        cached = self._cache.get((spec.id, fmt, here, True))
        if cached is None or fmt not in spec.formats:
            raise self.guard.unavailable(
                "the database is unreachable and this feed was not rendered before"
            )
        return cached.rendered

    def _land(self, key: tuple[Any, ...], done: asyncio.Future[Rendered]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]

    def _unchanged(self, spec: FeedSpec, fmt: str, query: FeedQuery, here: str) -> Rendered | None:
        """The cached document when it was confirmed less than ``recheck_after`` ago, or when
        nothing was written to the store since (one read of the store's change token, where the
        store has a cheap one); else None."""
        key = (spec.id, fmt, here, True)
        cached = self._cache.get(key)
        if cached is None or fmt not in spec.formats:
            return None
        now = self.clock.now()
        wanted = (spec, _window(query, now))
        if cached.valid_for[1:] != wanted:
            return None
        if self._recent(cached, now):
            return cached.rendered
        if cached.token is None or self.guard.down or self._token() != cached.token:
            return None
        with self._lock:  # confirmed; keep this spec object, so later checks compare identity
            if self._cache.get(key) is cached:
                self._cache[key] = replace(
                    cached,
                    valid_for=(cached.valid_for[0], *wanted),
                    checked_at=now,
                    epoch=self._epoch,
                )
        return cached.rendered

    def _token(self) -> int | None:
        """The store's change token (SQLite: one row, read on the event loop); None when the
        read fails, which also tells the guard that the database is down."""
        try:
            return self.store.change_token()
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.guard.failed("change_token", exc)
            return None

    def _recent(self, cached: _Cached, now: datetime) -> bool:
        if cached.checked_at is None or cached.epoch != self._epoch:
            return False
        age = now - cached.checked_at
        return age.days >= 0 and age < self.recheck_after  # a clock set back is not recent

    def render(
        self, spec: FeedSpec, fmt: str, query: FeedQuery = _EMPTY, paging: bool = True
    ) -> Rendered:
        """One page of a feed, from the cache while the feed's selection has not changed."""
        if fmt not in spec.formats:
            raise SelectionError(f"feed {spec.id!r} is not served as {fmt!r}")
        now = self.clock.now()  # read before the store: the confirmation is at least this new
        epoch = self._epoch
        key = (spec.id, fmt, _canonical(query), paging)
        token = self.store.change_token()  # read first: a later write moves it past this render
        valid_for = (self.store.last_change(spec.selection), spec, _window(query, now))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.valid_for == valid_for:
                self._cache[key] = replace(  # the new spec object: later checks compare identity
                    cached, valid_for=valid_for, token=token, checked_at=now, epoch=epoch
                )
                self._cache.move_to_end(key)
                return cached.rendered
        fresh = self._render(spec, fmt, query, paging, now, valid_for[0].changed_at)
        result = _keep_validators(cached.rendered if cached else None, fresh, now)
        self._remember(key, _Cached(valid_for, result, token, now, epoch))
        return result

    def _render(
        self,
        spec: FeedSpec,
        fmt: str,
        query: FeedQuery,
        paging: bool,
        now: datetime,
        changed: datetime | None,
    ) -> Rendered:
        base = self.settings.server.public_base
        here = query.canonical()

        def next_link(page: Page) -> str | None:
            if not (paging and page.next_before):
                return None
            return spec.url(base, fmt, query.paged(page.next_before).canonical())

        body, _page = self._document(
            spec, fmt, query, now, {f: spec.url(base, f, here) for f in spec.formats}, next_link
        )
        return rendered(body, CONTENT_TYPES[fmt], changed, cache_seconds(spec.interval))

    def static_pages(self, spec: FeedSpec, fmt: str, max_pages: int) -> Iterable[bytes]:
        """The pages of a feed for a static host, oldest-linked last: page 1 is the feed's own
        URL, page n (2 up to ``max_pages``) ``<path>.page-n.<fmt>``; each ``next`` link names the
        following page's file (no query: a static host ignores one)."""
        base = self.settings.server.public_base
        now = self.clock.now()
        before: Cursor | None = None
        for number in range(1, max_pages + 1):
            last = number == max_pages

            def next_link(page: Page, n: int = number, last: bool = last) -> str | None:
                return None if last or not page.next_before else page_url(spec, base, fmt, n + 1)

            here = {f: page_url(spec, base, f, number) for f in spec.formats}
            body, page = self._document(spec, fmt, _EMPTY.paged(before), now, here, next_link)
            yield body
            if last or page.next_before is None:
                return
            before = page.next_before

    def _document(
        self,
        spec: FeedSpec,
        fmt: str,
        query: FeedQuery,
        now: datetime,
        here: Mapping[str, str],
        next_link: Callable[[Page], str | None],
    ) -> tuple[bytes, Page]:
        """One page's bytes (``here``: this page's URL per format) and the page itself."""
        pub = self.settings.publish
        limit = min(query.limit or spec.selection.limit, pub.max_limit)
        page = collect(
            self.store.list_entries,
            spec.selection,
            limit,
            query.before,
            admit_all(spec.rules, query, now),
            by_arrival=not query.sorted,
        )
        entries = query.order(page.entries)
        if query.reshapes:  # RSSHub's output parameters (variants.py)
            entries = reshape(
                entries,
                fulltext=query.fulltext,
                hotlink=query.hotlink,
                brief=query.brief,
                opencc=query.opencc,
            )
        max_age = cache_seconds(spec.interval)
        base = self.settings.server.public_base
        title, description = spec.title, spec.description
        single = spec.source_ids is not None and len(spec.source_ids) == 1
        if single and spec.id.startswith("source/"):  # its title as the store knows it now
            sid = spec.id.removeprefix("source/")
            state = self.store.get_state(sid)  # this render runs in a thread
            title = self.catalog.source(sid, {sid: state} if state else {}).title
            description = f"Entries from {title}"
        if query.opencc:
            convert = converter(query.opencc)
            title, description = convert(title), convert(description)
        meta = FeedMeta(
            id=spec.id,
            title=title,
            description=description,
            self_url=here[fmt],
            site_url=base + "/",
            updated=_newest(entries),
            ttl_minutes=math.ceil(max_age / 60),
            hub=pub.hub,
            next_url=next_link(page),
            alternates=dict(here),
            id_authority=self.store.tag_authority(tag_authority(base) or ""),
            sources={} if single else self._attribution(entries, base),
        )
        body = render(fmt, meta, entries)  # type: ignore[arg-type]
        with _COUNT_LOCK:  # renders run in several threads at once
            self.renders += 1
        return body, page

    def _attribution(self, entries: Sequence[Entry], base: str) -> dict[str, SourceRef]:
        """Who each entry of a merged feed came from: the source as its own feed shows it."""
        wanted = {e.source_id for e in entries}
        if not wanted:
            return {}
        states = self._read_states()
        configured = self.sources()
        refs = {}
        for sid in sorted(wanted):
            state, src = states.get(sid), configured.get(sid)
            title = source_title(src, state) if src else (state.title if state else None) or sid
            path = f"{base}/feeds/source/{quote(sid, safe='')}"  # as FeedSpec.path spells it
            urls = {f: f"{path}.{f}" for f in FORMATS} if src is not None else {}
            refs[sid] = SourceRef(f"source/{sid}", title, state.site_link if state else None, urls)
        return refs

    def _remember(self, key: tuple[Any, ...], item: _Cached) -> None:
        with self._lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self._cached_bytes -= old.rendered.size
            if item.rendered.size > self.cache_bytes:
                return
            self._cache[key] = item
            self._cached_bytes += item.rendered.size
            while self._cached_bytes > self.cache_bytes:
                _, evicted = self._cache.popitem(last=False)
                self._cached_bytes -= evicted.rendered.size


def page_url(spec: FeedSpec, base: str, fmt: str, number: int) -> str:
    """The URL of page ``number`` of a static build: the feed's own for 1, else ``.page-n``."""
    return spec.url(base, fmt) if number == 1 else f"{base}{spec.path}.page-{number}.{fmt}"


def _keep_validators(old: Rendered | None, new: Rendered, now: datetime) -> Rendered:
    """Same bytes as before: keep the old validators. New bytes whose Last-Modified would not be
    newer (a title changed by a reload, a filter_time window moved): Last-Modified is now, so a
    reader that only sends If-Modified-Since still gets the new document."""
    if old is None:
        return new
    if old.etag == new.etag:
        return old
    if new.last_modified is None or (
        old.last_modified is not None and new.last_modified <= old.last_modified
    ):
        return replace(new, last_modified=now)
    return new


def _newest(entries: Sequence[Entry]) -> datetime | None:
    times = [t for e in entries if (t := e.changed_at or e.updated or e.published or e.first_seen)]
    return max(times) if times else None


def _canonical(query: FeedQuery) -> str:
    return "" if query is _EMPTY else query.canonical()


def _window(query: FeedQuery, now: datetime) -> int | None:
    """filter_time views change as time passes: re-render them once a minute at most."""
    return int(now.timestamp() // 60) if query.max_age is not None else None
