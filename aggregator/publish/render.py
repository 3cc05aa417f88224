"""Feed documents from stored entries: the rules every format follows, and the one entry point.

Owns: turning a ``FeedMeta`` and a sequence of ``Entry`` records (already selected, cleaned and
sorted newest first) into the bytes of one document (``render``), and each entry's stable id:
this module prepares the entries (text, times, ids, URLs), then one writer per format writes
them: rss.py (RSS 2.0), atom.py (Atom 1.0), jsonfeed.py (JSON Feed 1.1). Does not own:
choosing entries, caching, ETags or HTTP (feeds.py and http/), nor cleaning entry HTML
(content/clean.py: the HTML is republished as it was stored).

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
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from ..clock import utc
from ..content.text import cut, html_text
from ..content.urls import public_link
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

_ATOM_NS = "http://www.w3.org/2005/Atom"
_MEDIA_NS = "http://search.yahoo.com/mrss/"
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
    from . import atom, jsonfeed, rss  # the writers import this module's helpers

    items = _items(entries, _authority(meta), meta.sources)
    if fmt == "rss":
        return rss.write(meta, items)
    if fmt == "atom":
        return atom.write(meta, items)
    if fmt == "json":
        return jsonfeed.write(meta, items)
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
        enclosures=tuple(
            e for e in (_enclosure(x, link) for x in entry.enclosures) if e is not None
        ),
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


def _hex_escape(m: re.Match[bytes]) -> bytes:
    """``&`` and ``<`` in plain text as hexadecimal references: the W3C validator reads an
    entity-like ``&1;`` or ``&amp;`` in text as undeclared HTML unless the line has a ``&#x``."""
    text = m[2].replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
    return b"<%s>%s</%s>" % (m[1], text, m[3])
