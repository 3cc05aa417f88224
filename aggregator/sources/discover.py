"""Adding a site by its address (``aggregator add URL``): is it a feed, else which feeds does the
page offer, is the chosen one a working feed, and its ``[[sources]]`` table in the config file.

Owns: reading a page's feed links (``<link rel="alternate">`` with an RSS, Atom or JSON Feed media
type, resolved against the page's ``<base href>`` and URL); trying the well-known paths (``/feed``,
``/rss``, ``/atom.xml``, ``/feed.xml``, ``/index.xml``, ``/rss.xml``, ``/feed.json``) when the page
names none; checking a feed by fetching and parsing it as the daemon will (the ``feed`` adapter);
and the config text with the new source, through ``publish.opml.add_to_config``, the code
``aggregator import opml`` uses (comments and layout kept, the result validated). Does not own:
writing the file (``config.loading.write_config``, atomically, called by the command), fetching (every request goes through ``fetch.Fetcher``,
so its URL policy, private-address refusal, limits and retries hold), choosing among several feeds
(the command line asks), or noticing the changed file (a running daemon's live reload does).

``application/json`` links are not taken as feeds: WordPress marks its REST API that way
(``<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">``) on every page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from lxml import etree
from lxml import html as lxml_html

from ..config.settings import Settings
from ..config.types import parse_category
from ..content.charset import decode_page
from ..errors import AggregatorError, NotAFeedError, ParseError
from ..models import FetchResult, Source
from ..publish.opml import OpmlFeed, add_to_config, derive_id
from . import FetchFn, get_adapter

FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/rdf+xml": "rss",
    "application/atom+xml": "atom",
    "application/feed+json": "json",
    "application/json+feed": "json",  # an early JSON Feed spelling still found in the wild
}
WELL_KNOWN = ("/feed", "/rss", "/atom.xml", "/feed.xml", "/index.xml", "/rss.xml", "/feed.json")


@dataclass(frozen=True)
class Feed:
    """A URL that was fetched and parsed as a feed."""

    url: str
    title: str | None
    entries: int


@dataclass(frozen=True)
class Candidate:
    """A feed a page offers: from one of its links (not fetched yet) or a well-known path
    (fetched and parsed: ``feed`` is set)."""

    url: str
    title: str | None = None  # the link's title attribute, or the feed's own title
    kind: str | None = None  # rss, atom or json, from the link's type
    feed: Feed | None = None

    def as_json(self) -> dict[str, object]:
        return {"url": self.url, "title": self.title, "type": self.kind}


@dataclass(frozen=True)
class Discovery:
    url: str  # the address given, after redirects
    feed: Feed | None  # the address is a feed itself
    candidates: tuple[Candidate, ...] = ()


async def discover(fetch: FetchFn, url: str) -> Discovery:
    """What ``url`` is: a feed, or a page whose feeds are ``candidates``; a failed fetch, or a page
    that is no feed and offers none, is an ``AggregatorError`` in one line."""
    result = await fetch(url)
    if not result.ok:
        raise AggregatorError(f"cannot fetch {url}: {_failure(result)}")
    try:
        return Discovery(result.url, as_feed(result))
    except (NotAFeedError, ParseError):
        pass
    found = feed_links(result.content, result.url, result.headers.get("content-type"))
    if not found:
        found = await _well_known(fetch, result.url)
    if not found:
        paths = ", ".join(WELL_KNOWN)
        raise AggregatorError(
            f"{url} is not a feed and no feed was found on it "
            f'(no <link rel="alternate"> to a feed; none at {paths})'
        )
    return Discovery(result.url, None, tuple(found))


async def check(fetch: FetchFn, url: str) -> Feed:
    """``url`` fetched and parsed as the daemon will; an ``AggregatorError`` when it is not a
    working feed."""
    result = await fetch(url)
    if not result.ok:
        raise AggregatorError(f"cannot fetch {url}: {_failure(result)}")
    try:
        return as_feed(result)
    except (NotAFeedError, ParseError) as exc:
        raise AggregatorError(f"{url}: {exc}") from None


def as_feed(result: FetchResult) -> Feed:
    """The fetched document as a ``Feed``; raises ``NotAFeedError``/``ParseError`` if it is none."""
    parsed = get_adapter("feed").parse(Source(id="new", url=result.url), result)
    return Feed(result.url, parsed.title, len(parsed.items))


def feed_links(page: bytes, page_url: str, content_type: str | None = None) -> list[Candidate]:
    """The feeds an HTML page links to with ``<link rel="alternate">``, in page order, each URL
    once, resolved against ``<base href>`` (itself resolved against ``page_url``). The page is
    decoded as the ``html`` kind decodes pages (HTTP charset, meta charset, detection), so link
    titles of a GBK page read right whichever of the two declares it."""
    try:
        doc = lxml_html.document_fromstring(decode_page(page, content_type))
    except (etree.ParserError, ValueError):
        return []
    base = page_url
    for tag in doc.iter("base"):
        if tag.get("href"):
            base = urljoin(page_url, tag.get("href", "").strip())
            break
    found: dict[str, Candidate] = {}
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = FEED_TYPES.get((link.get("type") or "").split(";")[0].strip().lower())
        href = (link.get("href") or "").strip()
        if "alternate" not in rel or kind is None or not href:
            continue
        url = urljoin(base, href)
        if urlsplit(url).scheme in ("http", "https") and url not in found:
            found[url] = Candidate(url, (link.get("title") or "").strip() or None, kind)
    return list(found.values())


async def _well_known(fetch: FetchFn, page_url: str) -> list[Candidate]:
    """The well-known feed paths of the page's site that answer with a feed (each fetched)."""
    found: list[Candidate] = []
    seen: set[str] = set()
    for path in WELL_KNOWN:
        result = await fetch(urljoin(page_url, path))
        if not result.ok or result.url in seen:
            continue
        seen.add(result.url)
        try:
            feed = as_feed(result)
        except (NotAFeedError, ParseError):
            continue
        found.append(Candidate(feed.url, feed.title, None, feed))
    return found


def _failure(result: FetchResult) -> str:
    return result.error or f"HTTP {result.status_code}"


# --- the config file --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Added:
    source_id: str
    url: str
    text: str  # the new config text


def configured(settings: Settings, url: str) -> str | None:
    """The id of a source configured with ``url`` (ignoring the case of scheme and host and a
    trailing slash), else None. ``add_to_config`` makes the binding check; this names the id."""
    key = _loose(url)
    return next((s.id for s in settings.source_records() if _loose(s.url) == key), None)


def _loose(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}?{parts.query}"


def add_source(
    settings: Settings,
    config_text: str,
    feed: Feed,
    *,
    source_id: str | None = None,
    title: str | None = None,
    category: str | None = None,
) -> Added:
    """``config_text`` with a ``[[sources]]`` table for ``feed`` appended (validated); an
    ``AggregatorError`` when its URL is already configured or ``source_id`` is taken."""
    taken = {s.id for s in settings.source_records()}
    if source_id is not None and source_id in taken:
        raise AggregatorError(
            f"a source with id {source_id!r} is already configured; choose another with --id"
        )
    new_id = source_id or derive_id(title or feed.title, feed.url, taken)
    path = parse_category(category) if category else ()
    feeds = [OpmlFeed(feed.url, title, path, source_id=new_id)]
    report = add_to_config(config_text, feeds, settings.server.public_base)
    if not report.added:
        why = report.skipped[0][1] if report.skipped else "not added"
        existing = configured(settings, feed.url)
        raise AggregatorError(
            f"{feed.url}: {why}" + (f" (source {existing!r})" if existing else "")
        )
    return Added(report.added[0][0], feed.url, report.text)


def numbered(candidates: Sequence[Candidate]) -> list[str]:
    """The candidates as numbered lines for a person to choose from."""
    lines = []
    for n, c in enumerate(candidates, 1):
        label = f"{c.title}  " if c.title else ""
        kind = f" ({c.kind})" if c.kind else ""
        lines.append(f"{n:>3}. {label}{c.url}{kind}")
    return lines
