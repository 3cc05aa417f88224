"""Feed documents from stored entries: RSS 2.0 and Atom 1.0 through feedgen, JSON Feed 1.1 by hand.

Owns: turning a ``FeedMeta`` and a sequence of ``Entry`` records (already selected, cleaned and
sorted newest first) into the bytes of one document, and each entry's stable id. Does not own:
choosing entries, caching, ETags or HTTP (feeds.py and server.py), nor cleaning entry HTML
(content.py: the HTML is republished as it was stored).

The output is meant to pass a strict validator (RFC 4287 schema; the W3C feed validator's errors
and warnings), whatever the entries hold. The rules that get it there:

- Text: characters XML 1.0 forbids or discourages (C0/C1 controls, lone surrogates,
  non-characters, U+FFFD) are dropped from every string in every format. Titles, author names and
  categories are plain text: markup in them is read as HTML and reduced to its text, whitespace
  runs become one space. In RSS and Atom their ``&`` and ``<`` are written as hexadecimal
  character references, as the RSS Advisory Board's profile asks (the W3C validator reads a
  literal ``&1;`` in plain text as undeclared HTML otherwise).
- HTML is republished as stored, except that an empty ``href``/``src`` in an ``<a>`` or
  ``<img>`` (kept by older cleaners) is dropped: a reader would resolve it against the feed.
- Title: the entry's title; if that is empty, the start of its summary or content, else its link,
  else ``Untitled``. Every document has a title for every entry.
- Times are UTC, whole seconds. ``published`` = published or first_seen. ``updated`` = the
  entry's own dates: updated, else published, else first_seen (never the time we stored a change,
  which a whole fetch shares); Atom requires one, so an entry with no time at all gets
  ``FALLBACK_TIME`` (fixed, so re-renders do not change). Within one document no two entries share
  an ``updated`` (the W3C validator's DuplicateUpdated): a later entry (in document order) whose
  time an earlier one already has is moved back a second at a time. JSON Feed's
  ``date_modified`` is the same time. The feed's time is ``meta.updated``, else the newest
  entry's ``updated``; RSS then omits ``lastBuildDate`` and Atom uses ``FALLBACK_TIME``. Nothing
  reads the clock.
- Ids: ``entry_id``, a tag: URI under ``meta.id_authority`` (the store records it once, see
  store ``tag_authority``; without one, the host of ``meta.site_url``); entries whose id repeats
  an earlier one are dropped, so ids are unique within a document. The feed's id is a tag: URI
  from ``meta.id``. Ids change only when the authority, ``TAG_DATE``, a source's id or an
  entry's key change.
- Source attribution: when ``meta.sources`` names an entry's source (merged feeds), Atom entries
  carry ``<source>`` (id, title, links, updated), RSS items ``<source url>`` (our RSS feed of the
  source) and JSON Feed items an ``_aggregator`` extension object ``{"source": {...}}``.
- Images: an entry's image is ``media:thumbnail`` (Media RSS) in RSS and Atom, ``image`` in JSON.
- URLs: only what ``urls.public_link`` allows is published (absolute http/https; an entry's
  relative enclosure or image resolves against its link), anything else is dropped, so an entry
  without a usable link has none. They are written as ASCII URIs (IDN hosts in punycode, other
  non-ASCII percent-encoded).
- RSS: ``description`` is the summary or else the content, ``content:encoded`` the content; the
  author name goes in ``dc:creator`` (RSS ``author`` must be an e-mail address); one enclosure
  (the first with an http(s) URL; RSS allows one); ``atom:link`` rel=self/hub/next/alternate.
- Atom: content type="html" (the summary when there is no content, the title when there is
  neither, as a validator wants textual content), summary type="html" beside real content; the
  feed always has an author (the feed title), which entries without one inherit.
- JSON Feed: ``content_html`` as Atom's content, ``summary`` as plain text, every enclosure as an
  attachment.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from html import escape
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from feedgen.feed import FeedGenerator
from lxml import etree

from ..clock import utc
from ..content.text import cut, html_text
from ..fetch.urls import public_link
from ..models import Enclosure, Entry

Format = Literal["rss", "atom", "json"]

CONTENT_TYPES: dict[str, str] = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
FALLBACK_TIME = datetime(2000, 1, 1, tzinfo=UTC)  # validators flag dates before 1990
TAG_DATE = "2026"  # the date in every tag: URI we mint; changing it changes every id
GENERATOR = "aggregator"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

_ATOM_NS = "http://www.w3.org/2005/Atom"
_DC_NS = "http://purl.org/dc/elements/1.1/"
_MEDIA_NS = "http://search.yahoo.com/mrss/"
EXTENSION = "_aggregator"  # JSON Feed extension object (the spec: keys starting with "_")
_RSS_DOCS = "http://www.rssboard.org/rss-specification"  # exactly this: validators key on it
_MIME = re.compile(r"^[^\s()<>,;:\\\"/\[\]?=]+/[^\s()<>,;:\\\"/\[\]?=]+$")
_DNS_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_URI_SAFE = "!#$%&'()*+,/:;=?@~-._"
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_EXCERPT = 80
_NONCHARACTERS = "".join(
    chr(p * 0x10000 + 0xFFFE) + chr(p * 0x10000 + 0xFFFF) for p in range(1, 17)
)
_BAD_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffd\ufffe\uffff"
    + _NONCHARACTERS
    + "]"
)
# An empty link or image source in a tag (the cleaner's serialization quotes with "): a reader
# would resolve it against the feed's URL (the W3C validator's ContainsRelRef).
_EMPTY_REF = re.compile(r"""(<(?:a|img)\b[^<>]*?)\s(?:href|src)=(?:""|'')""", re.IGNORECASE)
# Plain-text elements as lxml writes them (text only, attributes never used on these).
_RSS_PLAIN_TEXT = re.compile(rb"<(title|category|dc:creator|source url=\"[^\"]*\")>([^<]*)</(title|category|dc:creator|source)>")
_ATOM_PLAIN_TEXT = re.compile(rb"<(title|name|subtitle)>([^<]*)</(title|name|subtitle)>")


@dataclass(frozen=True)
class FeedMeta:
    """What a document says about itself; the caller builds it from the feed definition."""

    id: str  # stable feed id, e.g. "all", "source/hn", "category/科技"
    title: str
    description: str
    self_url: str  # absolute URL of this document
    site_url: str  # absolute URL of the HTML site (the server base URL)
    updated: datetime | None  # newest change among the entries (None for an empty feed)
    ttl_minutes: int | None = None
    hub: str | None = None  # WebSub hub
    next_url: str | None = None  # RFC 5005 paged feed: the next (older) page
    alternates: Mapping[str, str] = field(default_factory=dict)  # format -> URL of this feed
    id_authority: str | None = None  # tag: URI authority (a host; "": urn:uuid); None: site_url's
    sources: Mapping[str, SourceRef] = field(default_factory=dict)  # attribution (merged feeds)


@dataclass(frozen=True)
class SourceRef:
    """Where a merged feed's entry came from: one source as our own per-source feed shows it."""

    feed_id: str  # e.g. "source/hn": its Atom id is feed_id() of it
    title: str
    site_url: str | None  # the source's web site (its feed's own link)
    feed_urls: Mapping[str, str] = field(default_factory=dict)  # format -> our feed of the source


@dataclass(frozen=True)
class _Item:
    """One entry as every format writes it: cleaned, defaulted, no further decisions left."""

    id: str
    title: str
    link: str | None
    author: tuple[str, str | None] | None  # (name, e-mail)
    categories: tuple[str, ...]
    published: datetime | None
    updated: datetime
    has_updated: bool  # False when ``updated`` is FALLBACK_TIME
    summary: str | None  # HTML
    content: str | None  # HTML
    enclosures: tuple[Enclosure, ...]
    image: str | None
    source: SourceRef | None = None
    source_updated: datetime | None = None  # the newest time of the source's entries here


def render(fmt: Format, meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    """The document for ``entries`` (kept in the given order) in format ``fmt``, as UTF-8 bytes."""
    items = _items(entries, _authority(meta), meta.sources)
    if fmt == "rss":
        return _rss(meta, items)
    if fmt == "atom":
        return _atom(meta, items)
    if fmt == "json":
        return _json(meta, items)
    raise ValueError(f"unknown feed format {fmt!r}")


def entry_id(entry: Entry, base_url: str) -> str:
    """A URI naming the entry forever: from its source and key, never its row id or the time.
    ``base_url`` is a URL or a bare host name (the store's recorded authority)."""
    seed = f"{entry.source_id}\x00{entry.key}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(seed).hexdigest()[:32]
    source = quote(unicodedata.normalize("NFC", _xml_safe(entry.source_id)), safe="")
    return _tag_uri(base_url, f"entry/{source}/{digest}")


def feed_id(meta: FeedMeta) -> str:
    """The feed's permanent id (Atom ``id``): a tag: URI from ``meta.id``."""
    return _feed_id(_authority(meta), meta.id)


def _authority(meta: FeedMeta) -> str:
    return meta.site_url if meta.id_authority is None else meta.id_authority


def _feed_id(base_url: str, spec_id: str) -> str:
    return _tag_uri(base_url, "feed/" + quote(unicodedata.normalize("NFC", spec_id), safe="/"))


def tag_authority(base_url: str) -> str | None:
    """The authority our tag: URIs use for ``base_url``: its host name (IDN in punycode), or None
    when it has no DNS host name (then ids are urn:uuid)."""
    text = base_url.strip()
    try:
        host = urlsplit(text if "//" in text else "//" + text).hostname or ""
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except (ValueError, UnicodeError):
        return None
    return host if _DNS_NAME.match(host) else None


# --- preparing entries ---------------------------------------------------------------------------


def _items(
    entries: Sequence[Entry], base_url: str, sources: Mapping[str, SourceRef] | None = None
) -> list[_Item]:
    seen: set[str] = set()
    times: set[datetime] = set()
    kept: list[tuple[str, _Item]] = []
    for entry in entries:
        item = _item(entry, base_url)
        if item.id in seen:
            continue
        seen.add(item.id)
        updated = item.updated
        while updated in times:  # DuplicateUpdated: a later entry steps back a second
            updated -= timedelta(seconds=1)
        times.add(updated)
        kept.append((entry.source_id, replace(item, updated=updated)))
    newest: dict[str, datetime] = {}
    for sid, item in kept:
        if item.has_updated and (sid not in newest or item.updated > newest[sid]):
            newest[sid] = item.updated
    refs = sources or {}
    return [
        replace(item, source=refs[sid], source_updated=newest.get(sid)) if sid in refs else item
        for sid, item in kept
    ]


def _item(entry: Entry, base_url: str) -> _Item:
    content, summary = _html(entry.content), _html(entry.summary)
    link = _uri(entry.link) or _uri(entry.canonical_url)  # only absolute http(s): see _uri
    updated = _first_time(entry.updated, entry.published, entry.first_seen)
    return _Item(
        id=entry_id(entry, base_url),
        title=_plain(entry.title) or _excerpt(summary or content) or link or "Untitled",
        link=link,
        author=_author(entry.author),
        categories=_categories(entry),
        published=_first_time(entry.published, entry.first_seen),
        updated=updated or FALLBACK_TIME,
        has_updated=updated is not None,
        summary=summary,
        content=content,
        enclosures=tuple(e for e in (_enclosure(x, link) for x in entry.enclosures) if e is not None),
        image=_uri(entry.image, link),
    )


def _first_time(*times: datetime | None) -> datetime | None:
    for t in times:
        if t is not None:
            return utc(t).replace(microsecond=0)
    return None


def _categories(entry: Entry) -> tuple[str, ...]:
    names = [_plain(c) for c in entry.categories]
    path = [p for p in map(_plain, entry.category_path) if p]
    if path:
        names.append("/".join(path))  # the RSS spec's notation for a place in a hierarchy
    return tuple(dict.fromkeys(n for n in names if n))


def _author(raw: str | None) -> tuple[str, str | None] | None:
    """``Name``, ``mail@host (Name)`` or ``Name <mail@host>`` as (name, e-mail)."""
    text = _SPACES.sub(" ", _xml_safe(raw or "")).strip()  # before _plain: <mail@host> is no tag
    m = re.fullmatch(r"([^\s@()<>]+@[^\s@()<>]+) ?\((.+)\)", text)
    if m and _plain(m[2]):
        return _plain(m[2]), m[1]
    m = re.fullmatch(r"(.+?) ?<([^\s@()<>]+@[^\s@()<>]+)>", text)
    if m and _plain(m[1]):
        return _plain(m[1]), m[2]
    name = _plain(text)
    return (name, None) if name else None


def _enclosure(enc: Enclosure, base: str | None) -> Enclosure | None:
    url = _uri(enc.url, base)
    if not url:
        return None
    mime = (enc.type or "").split(";")[0].strip().lower()
    length = enc.length if enc.length is not None and enc.length >= 0 else None
    return Enclosure(url, mime if _MIME.match(mime) else "application/octet-stream", length)


# --- text and URIs --------------------------------------------------------------------------------


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.parts.append(" ")  # <br>, <p>: words on either side stay apart


def _xml_safe(text: str) -> str:
    return _BAD_CHARS.sub("", text)


def _plain(text: str | None) -> str:
    """Plain text on one line; markup (even escaped more than once) is reduced to its text."""
    value = _xml_safe(text or "")
    for _ in range(3):
        if "<" not in value and "&" not in value:
            break
        parser = _TextOf()
        parser.feed(value)
        parser.close()
        value, before = _xml_safe("".join(parser.parts)), value
        if value == before:
            break
    return _SPACES.sub(" ", value).strip()


plain_text = _plain  # for the other writers (OPML) that publish titles


def _html(text: str | None) -> str | None:
    value = _EMPTY_REF.sub(r"\1", _xml_safe(text or ""))  # stored before the cleaner dropped them
    return value if value.strip() else None


def _excerpt(html: str | None) -> str:
    """The start of the fragment's text (``content.text``), as plain as a title must be."""
    return cut(_plain(html_text(html)), _EXCERPT)


def _uri(value: object, base: str | None = None) -> str | None:
    """``value`` as an ASCII URI (an IRI's host in punycode, other characters percent-encoded)
    when the URL policy lets it be published (``urls.public_link``: absolute http(s) after
    resolving against ``base``), else None."""
    text = _xml_safe(public_link(value, base) or "")
    if not text:
        return None
    try:
        parts = urlsplit(text)
        netloc = parts.netloc if parts.netloc.isascii() else _ascii_netloc(parts.netloc)
    except ValueError:  # a broken IPv6 literal, say: keep the text, encoded
        return quote(text, safe=_URI_SAFE)
    path, query, fragment = (quote(p, safe=_URI_SAFE) for p in parts[2:])
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def _ascii_netloc(netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    host, colon, port = hostport.partition(":")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        host = quote(host, safe="")
    return quote(userinfo, safe=_URI_SAFE) + at + host + colon + port


def _tag_uri(base_url: str, specific: str) -> str:
    """``tag:host,TAG_DATE:specific``; a urn:uuid when the base URL has no usable host name."""
    host = tag_authority(base_url)
    if host:
        return f"tag:{host},{TAG_DATE}:{specific}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, specific)}"


def _rfc3339(t: datetime) -> str:
    return utc(t).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _feed_time(meta: FeedMeta, items: Sequence[_Item]) -> datetime | None:
    if meta.updated is not None:
        return utc(meta.updated).replace(microsecond=0)
    dated = [i.updated for i in items if i.has_updated]
    return max(dated) if dated else None


def _other_formats(meta: FeedMeta, fmt: str) -> list[tuple[str, str]]:
    """(content type, URL) of the same feed in the other formats, in a fixed order."""
    found = []
    for other in sorted(meta.alternates):
        url = _uri(meta.alternates[other])
        if other != fmt and other in CONTENT_TYPES and url:
            found.append((CONTENT_TYPES[other].split(";")[0], url))
    return found


# --- RSS 2.0 ----------------------------------------------------------------------------------------


class _RssFeedExtension:
    """What feedgen's RSS writer lacks: hub/next/alternate links, no lastBuildDate when unknown."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []
        self.omit_build_date = False

    def extend_ns(self) -> dict[str, str]:
        return {"dc": _DC_NS, "media": _MEDIA_NS}

    def extend_rss(self, rss: Any) -> Any:
        channel = rss[0]
        for link in self.links:
            etree.SubElement(channel, f"{{{_ATOM_NS}}}link", link)
        if self.omit_build_date:
            for stale in channel.findall("lastBuildDate"):
                channel.remove(stale)
        return rss

    def extend_atom(self, feed: Any) -> Any:
        return feed


class _RssItemExtension:
    """The author's name as ``dc:creator`` (feedgen only writes RSS ``author`` e-mail addresses),
    the entry's image as ``media:thumbnail`` and where a merged entry came from as ``source``."""

    def __init__(self) -> None:
        self.creator: str | None = None
        self.image: str | None = None
        self.source: tuple[str, str] | None = None  # (url, title)

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_rss(self, item: Any) -> Any:
        if self.creator:
            etree.SubElement(item, f"{{{_DC_NS}}}creator").text = self.creator
        if self.source:
            etree.SubElement(item, "source", {"url": self.source[0]}).text = self.source[1]
        if self.image:
            etree.SubElement(item, f"{{{_MEDIA_NS}}}thumbnail", {"url": self.image})
        return item

    def extend_atom(self, entry: Any) -> Any:
        return entry


def _rss(meta: FeedMeta, items: Sequence[_Item]) -> bytes:
    fg = FeedGenerator()
    fg.register_extension("aggregator", _RssFeedExtension, _RssItemExtension, atom=False, rss=True)
    title = _plain(meta.title) or "Untitled feed"
    fg.title(title)
    fg.description(_plain(meta.description) or title)
    self_url = _uri(meta.self_url)
    if self_url:
        fg.link(href=self_url, rel="self", type=CONTENT_TYPES["rss"].split(";")[0])
    fg.link(href=_uri(meta.site_url) or self_url or "/", rel="alternate")  # last link: <link>
    fg.docs(_RSS_DOCS)
    fg.generator(GENERATOR)
    _rss_channel_extras(fg, meta, items)
    for item in items:
        _rss_item(fg.add_entry(order="append"), item)
    body: bytes = fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return _RSS_PLAIN_TEXT.sub(_hex_escape, body)


def _rss_channel_extras(fg: Any, meta: FeedMeta, items: Sequence[_Item]) -> None:
    ext: _RssFeedExtension = fg.aggregator
    updated = _feed_time(meta, items)
    if updated is not None:
        fg.lastBuildDate(updated)
    ext.omit_build_date = updated is None
    if meta.ttl_minutes is not None and meta.ttl_minutes > 0:
        fg.ttl(int(meta.ttl_minutes))
    for rel, url in (("hub", meta.hub), ("next", meta.next_url)):
        if _uri(url):
            ext.links.append({"rel": rel, "href": _uri(url) or ""})
    for mime, url in _other_formats(meta, "rss"):
        ext.links.append({"rel": "alternate", "type": mime, "href": url})


def _rss_item(fe: Any, item: _Item) -> None:
    fe.title(item.title)
    fe.guid(item.id, permalink=False)
    if item.link:
        fe.link(href=item.link)
    if item.summary or item.content:
        fe.description(item.summary or item.content)
    if item.content:
        fe.content(item.content)
    if item.categories:
        fe.category([{"term": c} for c in item.categories])
    if item.published is not None:
        fe.published(item.published)
    web = [e for e in item.enclosures if e.url.lower().startswith(("http://", "https://"))]
    if web:
        fe.link(href=web[0].url, rel="enclosure", type=web[0].type, length=str(web[0].length or 0))
    fe.aggregator.creator = item.author[0] if item.author else None
    fe.aggregator.image = item.image
    source_url = _uri(item.source.feed_urls.get("rss")) if item.source else None
    if item.source and source_url:
        fe.aggregator.source = (source_url, _plain(item.source.title) or item.source.feed_id)


def _hex_escape(m: re.Match[bytes]) -> bytes:
    """``&`` and ``<`` in plain text as hexadecimal references: the W3C validator reads an
    entity-like ``&1;`` or ``&amp;`` in text as undeclared HTML unless the line has a ``&#x``."""
    text = m[2].replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
    return b"<%s>%s</%s>" % (m[1], text, m[3])


# --- Atom 1.0 ---------------------------------------------------------------------------------------


class _AtomExtension:
    """Atom dates in UTC with ``Z`` (feedgen writes ``+00:00``, which validators flag), and entry
    links with all their attributes (feedgen 1.0 drops rel, type and length on entry links)."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []
        self.image: str | None = None
        self.source: _Item | None = None  # the entry whose source to name (merged feeds)
        self.authority = ""

    def extend_ns(self) -> dict[str, str]:
        return {"media": _MEDIA_NS}

    def extend_atom(self, element: Any) -> Any:
        for child in element:
            if child.tag in ("updated", "published") and child.text:
                child.text = _rfc3339(datetime.fromisoformat(child.text))
        for link in self.links:
            etree.SubElement(element, "link", link)
        if self.source is not None:
            _atom_source(etree.SubElement(element, "source"), self.source, self.authority)
        if self.image:
            etree.SubElement(element, f"{{{_MEDIA_NS}}}thumbnail", {"url": self.image})
        return element

    def extend_rss(self, element: Any) -> Any:
        return element


def _atom(meta: FeedMeta, items: Sequence[_Item]) -> bytes:
    fg = FeedGenerator()
    fg.register_extension("aggregator", _AtomExtension, _AtomExtension, atom=True, rss=False)
    title = _plain(meta.title) or "Untitled feed"
    fg.id(feed_id(meta))
    fg.title(title)
    fg.updated(_feed_time(meta, items) or FALLBACK_TIME)
    fg.author({"name": title})  # entries without an author inherit it
    if _plain(meta.description):
        fg.subtitle(_plain(meta.description))
    fg.generator(GENERATOR)
    for link in _atom_links(meta):
        fg.link(link)
    for item in items:
        fe = fg.add_entry(order="append")
        fe.aggregator.authority = _authority(meta)
        _atom_entry(fe, item)
    body: bytes = fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return _ATOM_PLAIN_TEXT.sub(_hex_escape, body)


def _atom_source(el: Any, item: _Item, authority: str) -> None:
    """``<source>``: id, title, updated and links of the source's feed as we publish it."""
    assert item.source is not None
    ref = item.source
    etree.SubElement(el, "id").text = _feed_id(authority, ref.feed_id)
    etree.SubElement(el, "title").text = _plain(ref.title) or ref.feed_id
    if item.source_updated is not None:
        etree.SubElement(el, "updated").text = _rfc3339(item.source_updated)
    site, own = _uri(ref.site_url), _uri(ref.feed_urls.get("atom"))
    if site:
        etree.SubElement(el, "link", {"href": site, "rel": "alternate", "type": "text/html"})
    if own:
        etree.SubElement(el, "link", {"href": own, "rel": "self", "type": "application/atom+xml"})


def _atom_links(meta: FeedMeta) -> list[dict[str, str]]:
    links = []
    if _uri(meta.site_url):
        links.append({"href": _uri(meta.site_url) or "", "rel": "alternate", "type": "text/html"})
    if _uri(meta.self_url):
        links.append(
            {
                "href": _uri(meta.self_url) or "",
                "rel": "self",
                "type": CONTENT_TYPES["atom"].split(";")[0],
            }
        )
    for rel, url in (("hub", meta.hub), ("next", meta.next_url)):
        if _uri(url):
            links.append({"href": _uri(url) or "", "rel": rel})
    for mime, url in _other_formats(meta, "atom"):
        links.append({"href": url, "rel": "alternate", "type": mime})
    return links


def _atom_entry(fe: Any, item: _Item) -> None:
    fe.id(item.id)
    fe.title(item.title)
    fe.updated(item.updated)
    if item.published is not None:
        fe.published(item.published)
    if item.author:
        name, email = item.author
        fe.author({"name": name, "email": email} if email else {"name": name})
    fe.content(item.content or item.summary or escape(item.title, quote=False), type="html")
    if item.content and item.summary:
        fe.summary(item.summary, type="html")
    links: list[dict[str, str]] = fe.aggregator.links
    if item.link:
        links.append({"href": item.link, "rel": "alternate"})
    for enc in item.enclosures:
        link = {"href": enc.url, "rel": "enclosure", "type": enc.type or "application/octet-stream"}
        if enc.length is not None:
            link["length"] = str(enc.length)
        links.append(link)
    if item.categories:
        fe.category([{"term": c} for c in item.categories])
    fe.aggregator.image = item.image
    fe.aggregator.source = item if item.source else None


# --- JSON Feed 1.1 ----------------------------------------------------------------------------------


def _json(meta: FeedMeta, items: Sequence[_Item]) -> bytes:
    title = _plain(meta.title) or "Untitled feed"
    doc: dict[str, Any] = {"version": JSON_FEED_VERSION, "title": title}
    optional = {
        "home_page_url": _uri(meta.site_url),
        "feed_url": _uri(meta.self_url),
        "description": _plain(meta.description) or None,
        "next_url": _uri(meta.next_url),
    }
    doc.update({k: v for k, v in optional.items() if v})
    if _uri(meta.hub):
        doc["hubs"] = [{"type": "WebSub", "url": _uri(meta.hub)}]
    doc["authors"] = [{"name": title}]
    doc["items"] = [_json_item(item) for item in items]
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _json_item(item: _Item) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.id, "title": item.title}
    if item.link:
        out["url"] = item.link
    out["content_html"] = item.content or item.summary or escape(item.title, quote=False)
    if item.summary and _plain(item.summary):
        out["summary"] = _plain(item.summary)
    if item.image:
        out["image"] = item.image
    if item.published is not None:
        out["date_published"] = _rfc3339(item.published)
    if item.has_updated:
        out["date_modified"] = _rfc3339(item.updated)
    if item.author:
        out["authors"] = [{"name": item.author[0]}]
    if item.categories:
        out["tags"] = list(item.categories)
    if item.enclosures:
        out["attachments"] = [_attachment(e) for e in item.enclosures]
    if item.source:
        out[EXTENSION] = {"source": _json_source(item.source)}
    return out


def _json_source(ref: SourceRef) -> dict[str, str]:
    out = {"id": ref.feed_id, "title": _plain(ref.title) or ref.feed_id}
    optional = {"home_page_url": _uri(ref.site_url), "feed_url": _uri(ref.feed_urls.get("json"))}
    out.update({k: v for k, v in optional.items() if v})
    return out


def _attachment(enc: Enclosure) -> dict[str, Any]:
    out: dict[str, Any] = {"url": enc.url, "mime_type": enc.type or "application/octet-stream"}
    if enc.length:
        out["size_in_bytes"] = enc.length
    return out
