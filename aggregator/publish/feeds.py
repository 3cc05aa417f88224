"""Published feeds: which entries a feed URL selects, rendering them, and caching the bytes.

Owns: the built-in feeds (all, per source, per category), turning a feed and its query into a
``Selection`` and a ``FeedMeta``, and the rendered-bytes cache keyed by feed, format and query and
validated against the store's newest change. Does not own: HTTP (server.py) or document syntax
(render.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping
from urllib.parse import quote

from ..config import Settings
from ..errors import SelectionError
from ..models import Selection, Source
from ..store import Store
from .render import CONTENT_TYPES, FeedMeta, render

FORMATS = ("rss", "atom", "json")


@dataclass(frozen=True)
class FeedSpec:
    id: str  # "all", "source/<id>", "category/<a>/<b>"
    path: str  # URL path without the format suffix, e.g. "/feeds/source/hn"
    title: str
    description: str
    selection: Selection
    interval: float  # how often the selected sources are fetched (seconds), for caching


@dataclass(frozen=True)
class Rendered:
    body: bytes
    etag: str
    last_modified: datetime | None
    content_type: str
    max_age: int


class FeedService:
    def __init__(
        self, settings: Settings, store: Store, sources: Callable[[], Mapping[str, Source]]
    ) -> None:
        self.settings = settings
        self.store = store
        self.sources = sources
        self._cache: dict[tuple[str, str, int], tuple[tuple[datetime | None, int], Rendered]] = {}

    # --- which feed ---------------------------------------------------------------------------

    def all(self) -> FeedSpec:
        pub = self.settings.publish
        return FeedSpec("all", "/feeds/all", pub.title, pub.description,
                        Selection(limit=pub.default_limit), self._interval(None))

    def source(self, source_id: str) -> FeedSpec:
        src = self.sources().get(source_id)
        if src is None:
            raise SelectionError(f"unknown source {source_id!r}")
        keep = self.settings.dedupe.per_source_keeps_duplicates
        sel = Selection(source_ids=(src.id,), merge_duplicates=not keep,
                        limit=self.settings.publish.default_limit)
        title = src.title or src.site_name or src.id
        return FeedSpec(f"source/{src.id}", f"/feeds/source/{quote(src.id)}", title,
                        f"Entries from {title}", sel, src.interval)

    def category(self, path: tuple[str, ...]) -> FeedSpec:
        path = tuple(p for p in path if p)
        members = [s for s in self.sources().values() if s.category[: len(path)] == path]
        if not path or not members:
            raise SelectionError(f"unknown category {' / '.join(path)!r}")
        sel = Selection(category_prefix=path, limit=self.settings.publish.default_limit)
        name = " / ".join(path)
        url_path = "/feeds/category/" + "/".join(quote(p) for p in path)
        return FeedSpec("category/" + "/".join(path), url_path, f"{self.settings.publish.title}: {name}",
                        f"Entries in {name}", sel, min(s.interval for s in members))

    def _interval(self, ids: tuple[str, ...] | None) -> float:
        chosen = [s.interval for s in self.sources().values() if ids is None or s.id in ids]
        return min(chosen) if chosen else self.settings.schedule.interval

    # --- rendering ----------------------------------------------------------------------------

    def render(self, spec: FeedSpec, fmt: str) -> Rendered:
        if fmt not in FORMATS:
            raise SelectionError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        stamp = self.store.last_change(spec.selection)
        key = (spec.id, fmt, hash(spec.selection))
        cached = self._cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
        entries = self.store.list_entries(spec.selection)
        base = self.settings.server.public_base
        meta = FeedMeta(
            id=spec.id,
            title=spec.title,
            description=spec.description,
            self_url=f"{base}{spec.path}.{fmt}",
            site_url=base + "/",
            updated=stamp[0],
            ttl_minutes=max(1, int(spec.interval // 60)),
            hub=self.settings.publish.hub,
            alternates={f: f"{base}{spec.path}.{f}" for f in FORMATS},
        )
        body = render(fmt, meta, entries)  # type: ignore[arg-type]
        rendered = Rendered(
            body=body,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            last_modified=stamp[0],
            content_type=CONTENT_TYPES[fmt],
            max_age=max(60, min(3600, int(spec.interval / 2))),
        )
        self._cache[key] = (stamp, rendered)
        return rendered
