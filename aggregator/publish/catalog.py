"""The published feeds: which exist, what each selects, and their URLs.

Owns: the built-in feeds (``all``, one per source, one per category path) and the operator's
``[[feeds]]``; turning each into a ``FeedSpec`` (store selection, in-Python rules, formats, how
often its sources are fetched); and the URL space under ``/feeds/``::

    /feeds/all.FMT                    every source
    /feeds/ID.FMT                     the operator feed ID ([[feeds]]; all/source/category reserved)
    /feeds/source/ID.FMT              one source
    /feeds/category/A/B.FMT           every story filed under A/B (a source's category path,
                                      or a category a rule adds), through any of its copies

A source's title is ``source_title`` wherever it shows. Resolving a URL path looks names up in
the configuration and nothing else, so no path reaches
anything outside this space. Does not own: rendering, caching or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from ..categorize import AliasTable, category_paths
from ..config.settings import FeedSettings, Settings
from ..errors import SelectionError
from ..models import Selection, Source, SourceState
from .query import EntryRules

FORMATS = ("rss", "atom", "json")
RESERVED = ("all", "source", "category")


@dataclass(frozen=True)
class FeedSpec:
    id: str  # "all", "source/<id>", "category/<a>/<b>" or an operator feed's id
    parts: tuple[str, ...]  # its path under /feeds/, unquoted: ("category", "科技", "博客")
    title: str
    description: str
    selection: Selection  # what the store selects (cheap SQL); ``limit`` is the page size
    interval: float  # how often the selected sources are fetched (seconds), for caching
    rules: EntryRules = field(default_factory=EntryRules)  # what the store does not select on
    formats: tuple[str, ...] = FORMATS
    source_ids: frozenset[str] | None = None  # sources that can feed it; None: any

    @property
    def path(self) -> str:
        """The URL path without the format suffix, e.g. ``/feeds/category/%E7%A7%91%E6%8A%80``."""
        return "/feeds/" + "/".join(quote(p, safe="") for p in self.parts)

    def url(self, base: str, fmt: str, query: str = "") -> str:
        return f"{base}{self.path}.{fmt}" + (f"?{query}" if query else "")


def _filed(src: Source, path: Sequence[str]) -> bool:
    """Whether a source is filed under ``path`` (or below it): by its category or an also_in."""
    return any(tuple(p[: len(path)]) == tuple(path) for p in (src.category, *src.also_in))


def source_title(src: Source, state: SourceState | None = None) -> str:
    """A source's title, the same wherever it shows (feeds, status page, feed lists, OPML): the
    configured title, else the feed's own title (which the store keeps), else the configured
    site name, else the id."""
    own = state.title.strip() if state is not None and state.title else None
    return (src.title or "").strip() or own or (src.site_name or "").strip() or src.id


class Catalog:
    """The feeds of one configuration; sources come from the live set (swapped on reload)."""

    def __init__(
        self,
        settings: Settings,
        sources: Callable[[], Mapping[str, Source]],
        state: Callable[[str], SourceState | None] | None = None,
        states: Callable[[], Iterable[SourceState]] | None = None,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.state = state  # the store's record of a source (its feed's own title)
        self.states = states  # every record at once (one read for every())

    # --- one feed -----------------------------------------------------------------------------

    def all(self) -> FeedSpec:
        pub = self.settings.publish
        return FeedSpec(
            "all",
            ("all",),
            pub.title,
            pub.description,
            Selection(limit=pub.default_limit),
            self._interval(None),
        )

    def source(self, source_id: str, known: Mapping[str, SourceState] | None = None) -> FeedSpec:
        """One source's feed; ``known``: the store's records when the caller has read them."""
        src = self.sources().get(source_id)
        if src is None:
            raise SelectionError(f"unknown source {source_id!r}")
        keep = self.settings.dedupe.per_source_keeps_duplicates
        sel = Selection(
            source_ids=(src.id,),
            merge_duplicates=not keep,
            limit=self.settings.publish.default_limit,
        )
        if known is not None:
            state = known.get(src.id)
        else:
            state = self.state(src.id) if self.state else None
        title = source_title(src, state)
        return FeedSpec(
            f"source/{src.id}",
            ("source", src.id),
            title,
            f"Entries from {title}",
            sel,
            src.interval,
            source_ids=frozenset({src.id}),
        )

    def category(self, path: tuple[str, ...]) -> FeedSpec:
        """The feed of a category: a source's category path, or a category a rule adds (or a
        path above either). Every story filed under it, through any of its copies."""
        path = tuple(p for p in path if p)
        members = [s for s in self.sources().values() if _filed(s, path)]
        ruled = any(r[: len(path)] == path for r in self.rule_paths())
        if not path or not (members or ruled):
            raise SelectionError(f"unknown category {'/'.join(path)!r}")
        sel = Selection(
            category_prefix=path,
            limit=self.settings.publish.default_limit,
            also_sources=self._also_sources((path,)),
        )
        name = "/".join(path)
        # A rule can file any source's entries here: then every source can change it.
        interval = self._interval(None) if ruled else min(s.interval for s in members)
        return FeedSpec(
            "category/" + name,
            ("category", *path),
            f"{self.settings.publish.title}: {name}",
            f"Entries in {name}",
            sel,
            interval,
        )

    def named(self, feed_id: str) -> FeedSpec:
        for feed in self.settings.feeds:
            if feed.id == feed_id:
                return self._operator(feed)
        raise SelectionError(f"unknown feed {feed_id!r}")

    def resolve(self, rest: str) -> tuple[FeedSpec, str]:
        """The feed and format of a URL path under ``/feeds/`` (percent-encoded, as sent)."""
        segments = [unquote(s) for s in rest.split("/")]
        name, dot, fmt = segments[-1].rpartition(".")
        if not dot or not name or not fmt:
            raise SelectionError("a feed URL ends in .rss, .atom or .json")
        head, parts = segments[0], (*segments[1:-1], name)
        if len(segments) == 1:
            spec = self.all() if name == "all" else self._top(name)
        elif head == "source" and len(parts) == 1:
            spec = self.source(parts[0])
        elif head == "category":
            spec = self.category(tuple(parts))
        else:
            raise SelectionError(f"no feed at /feeds/{rest}")
        if fmt not in spec.formats:
            raise SelectionError(
                f"feed {spec.id!r} is served as {', '.join(spec.formats)}, not {fmt!r}"
            )
        return spec, fmt

    def _top(self, name: str) -> FeedSpec:
        if name in RESERVED:
            raise SelectionError(f"no feed named {name!r}")
        return self.named(name)

    # --- every feed ---------------------------------------------------------------------------

    def every(self) -> Iterator[FeedSpec]:
        """Every published feed: all, each source, each category path, each operator feed."""
        yield self.all()
        known = {s.source_id: s for s in self.states()} if self.states else {}
        for source_id in sorted(self.sources()):
            yield self.source(source_id, known)
        for path in self.category_paths():
            yield self.category(path)
        for feed in self.settings.feeds:
            yield self._operator(feed)

    def category_paths(self) -> list[tuple[str, ...]]:
        """Every prefix of every source's category path and of every category a rule adds,
        sorted."""
        full = [p for s in self.sources().values() for p in (s.category, *s.also_in)]
        full += self.rule_paths()
        return sorted({p[:n] for p in full for n in range(1, len(p) + 1)})

    def rule_paths(self) -> list[tuple[str, ...]]:
        """The categories the categorize rules add, as paths (``AI`` is ("AI",))."""
        aliases = AliasTable(self.settings.categorize.aliases)
        names = [n for rule in self.settings.categorize.rules for n in rule.add]
        return category_paths(aliases.canonicalize(names))

    # --- operator feeds -----------------------------------------------------------------------

    def _operator(self, feed: FeedSettings) -> FeedSpec:
        pub = self.settings.publish
        members = self._members(feed)
        only_sources = bool(feed.sources) and not feed.categories
        only_categories = bool(feed.categories) and not feed.sources
        sel = Selection(
            source_ids=feed.sources if only_sources else None,
            category_prefixes=feed.categories if only_categories else (),
            also_sources=self._also_sources(feed.categories) if only_categories else (),
            query=feed.query or None,
            exclude_source_ids=feed.exclude_sources,
            merge_duplicates=feed.merge_duplicates,
            limit=feed.limit or pub.default_limit,
        )
        rules = EntryRules(
            sources=() if only_sources else feed.sources + self._also_sources(feed.categories),
            categories=() if only_categories else feed.categories,
            exclude_categories=feed.exclude_categories,
            exclude_also=self._also_sources(feed.exclude_categories),
            exclude_query=feed.exclude_query or None,
        )
        title = feed.title or f"{pub.title}: {feed.id}"
        # Entries' categories may differ from their source's, so a category feed can be fed by
        # any source; the configured members still tell how often it can change.
        feeders = None if feed.categories else members
        return FeedSpec(
            feed.id,
            (feed.id,),
            title,
            feed.description or title,
            sel,
            self._interval(members),
            rules,
            feed.formats,
            feeders,
        )

    def _members(self, feed: FeedSettings) -> frozenset[str] | None:
        """The configured sources whose entries the feed shows (None: every source)."""
        if not feed.sources and not feed.categories and not feed.exclude_sources:
            return None
        chosen = {
            s.id
            for s in self.sources().values()
            if (not feed.sources and not feed.categories)
            or s.id in feed.sources
            or any(_filed(s, c) for c in feed.categories)
        }
        return frozenset(chosen - set(feed.exclude_sources))

    def _also_sources(self, paths: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
        """The sources filed under one of ``paths`` (or below) by their ``also_in`` only."""
        return tuple(
            sorted(
                s.id
                for s in self.sources().values()
                if any(a[: len(p)] == p for a in s.also_in for p in paths if p)
            )
        )

    def _interval(self, ids: frozenset[str] | None) -> float:
        chosen = [s.interval for s in self.sources().values() if ids is None or s.id in ids]
        return min(chosen) if chosen else self.settings.schedule.interval
