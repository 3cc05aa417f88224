"""The feed adapter: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed 1.0/1.1 by hand.

feedparser is handed a file object and headers, never a URL nor the bytes themselves: given a
``str`` or ``bytes`` it first tries them as a local path or a URL (a body of ``/etc/passwd`` would be
read from disk), so every document goes through our fetcher and nothing else.
Bytes are first decoded by ``content.charset.decode_feed`` (GB18030 for GB2312/GBK, UTF-8 wins when
the declarations disagree with valid UTF-8 bytes). An item's content is its richest content element
(or its summary, when that holds the body), never several joined; JSON Feed items without authors
inherit the feed's. This module does not clean HTML: the pipeline does. With ``fulltext = true`` an
item's ``enrich`` fetches its article page for its full text (fulltext.py).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

import feedparser

from ..content.charset import decode_feed
from ..content.text import html_text
from ..errors import NotAFeedError, ParseError
from ..models import Enclosure, FeedHints, FetchResult, Item, ParsedFeed, Source
from . import NO_DEFAULTS, FetchFn
from .dates import from_struct, install_date_handlers, parse_date, plausible
from .limits import newest, trim_xml

if TYPE_CHECKING:
    from ..config.types import KindOptions

install_date_handlers()

_HTML_START = re.compile(
    rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html)", re.IGNORECASE | re.DOTALL
)
_HUGE_TAG = re.compile(rb"<[^<>]{65536}")
_SKIP_HOURS = re.compile(rb"<skipHours>(.*?)</skipHours>", re.DOTALL | re.IGNORECASE)
_SKIP_DAYS = re.compile(rb"<skipDays>(.*?)</skipDays>", re.DOTALL | re.IGNORECASE)
_HOUR = re.compile(rb"<hour>\s*(\d{1,2})\s*</hour>", re.IGNORECASE)
_DAY = re.compile(rb"<day>\s*([A-Za-z]+)\s*</day>", re.IGNORECASE)
# The start and end of a DOCTYPE's internal subset, and the entity declarations in it.
_SUBSET_START = re.compile(rb"<!DOCTYPE\s[^\[>]*\[")
_SUBSET_END = re.compile(rb"\]\s*>")
_ELEMENT = re.compile(rb"<[A-Za-z_]")
_ENTITY = re.compile(rb"<!ENTITY\s[^>]*>")
_SAFE_ENTITY = re.compile(
    rb"""<!ENTITY\s+\w[\w.-]*\s+(?:"(?:&#\w+;|[^&%<"]{0,64})"|'(?:&#\w+;|[^&%<']{0,64})')\s*>"""
)


class FeedAdapter:
    kind = "feed"
    defaults = NO_DEFAULTS

    @property
    def options_model(self) -> type[KindOptions]:
        """``fulltext`` and ``fulltext_selector`` (feed_options.py; read on the config's side
        only, so a parser worker never loads pydantic)."""
        from .feed_options import FeedOptions

        return FeedOptions

    def default_url(self, options: Mapping[str, Any]) -> str | None:
        return None

    def request_url(self, source: Source, effective_url: str) -> str:
        return effective_url

    def parse(self, source: Source, result: FetchResult) -> ParsedFeed:
        body, keep, now = result.content, source.limits.max_entries, result.fetched_at
        if _looks_like_json(body, result.headers.get("content-type")):
            return parse_json_feed(body, keep, now)
        return parse_xml_feed(body, result.headers, result.url, keep, now)

    async def enrich(self, source: Source, item: Item, fetch: FetchFn) -> Item:
        """With ``fulltext = true``: the item's article page's main content (fulltext.py)."""
        if not source.options.get("fulltext"):
            return item
        from .fulltext import complete  # not loaded by parser workers, which never enrich

        return await complete(item, fetch, source.options.get("fulltext_selector"))


def _looks_like_json(body: bytes, content_type: str | None) -> bool:
    """JSON by its first character, else by the declared type: a server that labels its RSS
    ``application/json`` still has its feed read."""
    first = body.lstrip().removeprefix(b"\xef\xbb\xbf")[:1]
    if first in (b"{", b"["):
        return True
    if first == b"<":
        return False
    return bool(content_type and "json" in content_type.lower())


def parse_xml_feed(
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    keep: int | None = None,
    now: datetime | None = None,
) -> ParsedFeed:
    """The items of an RSS, Atom or RDF document; with ``keep``, only its newest ``keep`` items
    (dates plausible at ``now``, the fetch time) reach feedparser (``limits.trim_xml``)."""
    data, _encoding = decode_feed(body, headers.get("content-type"))
    if _HUGE_TAG.search(data):  # thousands of attributes: feedparser's time and memory grow
        # with their square (50,000 took 24 s of CPU and 130 MB), and no feed writes such a tag
        raise ParseError("not a feed: a tag longer than 64 KiB (pathological markup)")
    if keep is not None:
        data = trim_xml(data, keep, now)
    data = safe_entities(data)
    parsed = feedparser.parse(
        io.BytesIO(data),  # never the bytes: feedparser would open() them as a path or URL
        response_headers={
            "content-type": "application/xml; charset=utf-8",
            "content-location": url,
        },
        sanitize_html=False,  # our own cleaner runs later, with our own allowlist
        # and resolves relative URLs in content against each item's ``base`` (xml:base or the
        # document URL, as feedparser would): 40% of feedparser's time, done once, not twice
        resolve_relative_uris=False,
    )
    if not parsed.get("version") and not parsed.entries:
        if _HTML_START.match(body[:2048]):
            raise NotAFeedError("not a feed: the server sent an HTML page")
        reason = parsed.get("bozo_exception")
        raise ParseError(
            f"not a feed: {reason}" if reason else "not a feed: no RSS, Atom or JSON Feed found"
        )
    feed = parsed.feed
    items = tuple(_item(e) for e in parsed.entries)
    return ParsedFeed(
        title=_text(feed.get("title")),
        link=feed.get("link"),
        items=items,
        hints=_hints(feed, body),
    )


def safe_entities(data: bytes) -> bytes:
    """``data`` with only the entity declarations feedparser deems safe in its internal DTD
    subset (a character reference, or plain text, here of at most 64 characters); the document
    itself when it has no others. feedparser drops the others only when each declaration starts a
    line; expat then expands nested ones up to its amplification limit: a 990-byte "billion
    laughs" feed made 967,000 strings (60 MB) in feedparser before the parse failed. References
    to dropped entities stay text (``&lol9;``), as they did after that failure."""
    start = _SUBSET_START.search(data)
    if start is None or _ELEMENT.search(data, 0, start.start()):  # none, or not in the prolog
        return data
    end = _SUBSET_END.search(data, start.end())
    if end is None:
        return data
    declared = _ENTITY.findall(data, start.end(), end.start())
    if all(_SAFE_ENTITY.fullmatch(d) for d in declared):
        return data
    kept = b"".join(d for d in declared if _SAFE_ENTITY.fullmatch(d))
    return data[: start.end()] + kept + data[end.start() :]


def _item(e: Any) -> Item:
    content, detail = _richest(e)
    summary = e.get("summary") or None
    if summary is not None and (summary == content or _weight(summary) == _weight(content)):
        summary = None  # the content itself (feedparser copies a lone content into summary)
    return Item(
        guid=e.get("id") or None,
        link=e.get("link") or None,
        title=_text(e.get("title")),
        content=content,
        summary=summary,
        author=e.get("author") or None,
        published=_date(e, "published"),
        updated=_date(e, "updated"),
        categories=tuple(t.get("term") for t in e.get("tags", []) if t.get("term")),
        enclosures=tuple(_enclosures(e.get("links", []))),
        image=_image(e),
        base=(detail.get("base") or None) if detail else None,
    )


def _richest(e: Any) -> tuple[str | None, Any]:
    """The richest of the entry's content elements and its summary, and that element's detail.

    Never several joined: feeds that carry both ``content:encoded`` and ``xhtml:body`` hold one
    body twice, and some put a one-line caption in the content and the body in the summary. The
    first of equally rich elements wins, content elements before the summary."""
    candidates = [(c.get("value"), c) for c in e.get("content") or [] if c.get("value")]
    if e.get("summary"):
        candidates.append((e.get("summary"), e.get("summary_detail")))
    if not candidates:
        return None, None
    value, detail = max(candidates, key=lambda c: _weight(c[0]))  # max keeps the first of ties
    return str(value), detail


def _weight(html: str | None) -> tuple[int, int]:
    """How much an element says: its visible text's length, then its markup's (images only)."""
    if not html:
        return (0, 0)
    return (len(html_text(html).replace(" ", "")), len(html))


def _date(e: Any, name: str) -> datetime | None:
    """The entry's own ``name`` date. Read as a plain dict: feedparser answers a missing
    ``updated`` with the published date (a fallback it warns about and will remove)."""
    parsed = dict.get(e, f"{name}_parsed")
    if parsed:
        return from_struct(parsed)
    raw = dict.get(e, name)
    return parse_date(raw) if raw else None


def _enclosures(links: Iterable[Any]) -> Iterable[Enclosure]:
    for link in links:
        if link.get("rel") == "enclosure" and link.get("href"):
            length = str(link.get("length") or "").strip()
            yield Enclosure(
                url=link["href"],
                type=link.get("type") or None,
                length=int(length) if length.isdigit() else None,
            )


def _image(e: Any) -> str | None:
    for key in ("media_thumbnail", "media_content"):
        for media in e.get(key) or []:
            if media.get("url") and (
                key == "media_thumbnail" or "image" in media.get("type", "image")
            ):
                return str(media["url"])
    return None


def _text(value: Any) -> str | None:
    return str(value).strip() if value else None


def _hints(feed: Any, body: bytes) -> FeedHints:
    ttl = str(feed.get("ttl") or "").strip()
    hours: set[int] = set()
    days: set[str] = set()
    if block := _SKIP_HOURS.search(body):
        hours = {int(h) % 24 for h in _HOUR.findall(block.group(1))}
    if block := _SKIP_DAYS.search(body):
        days = {d.decode().capitalize() for d in _DAY.findall(block.group(1))}
    return FeedHints(
        ttl_minutes=int(ttl) if ttl.isdigit() else None,
        skip_hours=frozenset(hours),
        skip_days=frozenset(days),
    )


# --- JSON Feed 1.0 / 1.1 -------------------------------------------------------------------------


def parse_json_feed(
    body: bytes, keep: int | None = None, now: datetime | None = None
) -> ParsedFeed:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"not a feed: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or "jsonfeed.org/version" not in str(doc.get("version", "")):
        raise ParseError("not a feed: JSON without a JSON Feed version")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise ParseError("not a feed: JSON Feed without an items list")
    raw = [i for i in raw_items if isinstance(i, dict)]
    if keep is not None:  # only the newest become items (limits.newest)
        raw = newest(raw, lambda i: plausible(_json_raw_date(i), now), keep)
    feed_authors = _json_authors(doc)  # JSON Feed 1.1: items without authors inherit these
    items = tuple(_json_item(i, feed_authors) for i in raw)
    return ParsedFeed(
        title=_str(doc.get("title")), link=_str(doc.get("home_page_url")), items=items
    )


def _json_authors(obj: Mapping[str, Any]) -> list[str]:
    """The author names of a feed or an item: ``authors`` (1.1), else ``author`` (1.0)."""
    authors = obj.get("authors")
    if not isinstance(authors, list) or not authors:
        authors = [obj["author"]] if isinstance(obj.get("author"), dict) else []
    return [str(a["name"]).strip() for a in authors if isinstance(a, dict) and _str(a.get("name"))]


def _json_item(i: Mapping[str, Any], feed_authors: list[str]) -> Item:
    names = _json_authors(i) or feed_authors
    html, text = _str(i.get("content_html")), _str(i.get("content_text"))
    return Item(
        guid=_str(i.get("id")),
        link=_url(i.get("url")) or _url(i.get("external_url")),
        title=_str(i.get("title")),
        content=html or (_escape(text) if text else None),
        summary=_str(i.get("summary")),
        author=", ".join(names) or None,
        published=_json_date(i.get("date_published")),
        updated=_json_date(i.get("date_modified")),
        categories=tuple(str(t) for t in i.get("tags") or [] if isinstance(t, (str, int))),
        enclosures=tuple(_json_attachments(i.get("attachments") or [])),
        image=_url(i.get("image")) or _url(i.get("banner_image")),
    )


def _json_raw_date(i: Mapping[str, Any]) -> datetime | None:
    return _json_date(i.get("date_published")) or _json_date(i.get("date_modified"))


def _json_attachments(attachments: Iterable[Any]) -> Iterable[Enclosure]:
    for a in attachments:
        if isinstance(a, dict) and _url(a.get("url")):
            size = a.get("size_in_bytes")
            yield Enclosure(
                url=str(a["url"]),
                type=_str(a.get("mime_type")),
                length=size if isinstance(size, int) else None,
            )


def _json_date(value: Any) -> datetime | None:
    return parse_date(value) if isinstance(value, str) and value.strip() else None


def _url(value: Any) -> str | None:
    """A URL field: only a string is one (a number such as ``1.2`` is no link)."""
    return _str(value) if isinstance(value, str) else None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _escape(text: str) -> str:
    return "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n") if p.strip())
