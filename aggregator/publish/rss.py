"""RSS 2.0 documents, written with lxml (see render.py for the rules every format follows).

Owns what is RSS's own: ``description`` is the summary or else the content, ``content:encoded``
the content; the author name goes in ``dc:creator`` (RSS ``author`` must be an e-mail address);
one enclosure (the first with an http(s) URL; RSS allows one); ``atom:link`` rel=self/hub/next/
alternate; ``<source url>`` (our RSS feed of the source) on a merged entry; dates in RFC 822
form; plain text with hexadecimal character references. Does not own: preparing entries
(render.py).

Written element by element as publish/opml.py writes OPML (bench/render_writers.py measured it
against feedgen, which this replaced: the same bytes, less CPU; figures in
docs/performance.md, "RSS and Atom writers").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import format_datetime

from lxml import etree

from .render import (
    _ATOM_NS,
    _MEDIA_NS,
    CONTENT_TYPES,
    GENERATOR,
    FeedMeta,
    _feed_time,
    _hex_escape,
    _Item,
    _other_formats,
    _plain,
    _uri,
)

_DC_NS = "http://purl.org/dc/elements/1.1/"
_CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
_NAMESPACES = {"dc": _DC_NS, "media": _MEDIA_NS, "atom": _ATOM_NS, "content": _CONTENT_NS}
_ATOM_LINK = f"{{{_ATOM_NS}}}link"
_RSS_DOCS = "http://www.rssboard.org/rss-specification"  # exactly this: validators key on it
# Plain-text elements as lxml writes them (text only, attributes never used on these).
_RSS_PLAIN_TEXT = re.compile(
    rb"<(title|category|dc:creator|source url=\"[^\"]*\")>([^<]*)</(title|category|dc:creator|source)>"
)


def write(meta: FeedMeta, items: Sequence[_Item]) -> bytes:
    rss = etree.Element("rss", nsmap=_NAMESPACES, version="2.0")
    channel = etree.SubElement(rss, "channel")
    _channel(channel, meta, items)
    for item in items:
        _rss_item(etree.SubElement(channel, "item"), item)
    body: bytes = etree.tostring(rss, pretty_print=True, encoding="UTF-8", xml_declaration=True)
    return _RSS_PLAIN_TEXT.sub(_hex_escape, body)


def _channel(channel: etree._Element, meta: FeedMeta, items: Sequence[_Item]) -> None:
    title = _plain(meta.title) or "Untitled feed"
    self_url = _uri(meta.self_url)
    _text(channel, "title", title)
    _text(channel, "link", _uri(meta.site_url) or self_url or "/")
    _text(channel, "description", _plain(meta.description) or title)
    if self_url:
        etree.SubElement(
            channel, _ATOM_LINK, href=self_url, rel="self", type=CONTENT_TYPES["rss"].split(";")[0]
        )
    _text(channel, "docs", _RSS_DOCS)
    _text(channel, "generator", GENERATOR)
    updated = _feed_time(meta, items)
    if updated is not None:  # else none: an invented build time would change every render
        _text(channel, "lastBuildDate", format_datetime(updated))
    if meta.ttl_minutes is not None and meta.ttl_minutes > 0:
        _text(channel, "ttl", str(int(meta.ttl_minutes)))
    for rel, url in (("hub", meta.hub), ("next", meta.next_url)):
        if _uri(url):
            etree.SubElement(channel, _ATOM_LINK, rel=rel, href=_uri(url) or "")
    for mime, url in _other_formats(meta, "rss"):
        etree.SubElement(channel, _ATOM_LINK, rel="alternate", type=mime, href=url)


def _rss_item(el: etree._Element, item: _Item) -> None:
    _text(el, "title", item.title)
    if item.link:
        _text(el, "link", item.link)
    if item.summary or item.content:
        _text(el, "description", item.summary or item.content or "")
    if item.content:
        _text(el, f"{{{_CONTENT_NS}}}encoded", item.content)
    etree.SubElement(el, "guid", isPermaLink="false").text = item.id
    for category in item.categories:
        _text(el, "category", category)
    web = [e for e in item.enclosures if e.url.lower().startswith(("http://", "https://"))]
    if web:
        etree.SubElement(
            el,
            "enclosure",
            url=web[0].url,
            length=str(web[0].length or 0),
            type=web[0].type or "application/octet-stream",
        )
    if item.published is not None:
        _text(el, "pubDate", format_datetime(item.published))
    if item.author:
        _text(el, f"{{{_DC_NS}}}creator", item.author[0])
    source_url = _uri(item.source.feed_urls.get("rss")) if item.source else None
    if item.source and source_url:
        etree.SubElement(el, "source", url=source_url).text = (
            _plain(item.source.title) or item.source.feed_id
        )
    if item.image:
        etree.SubElement(el, f"{{{_MEDIA_NS}}}thumbnail", url=item.image)


def _text(parent: etree._Element, tag: str, text: str) -> None:
    etree.SubElement(parent, tag).text = text
