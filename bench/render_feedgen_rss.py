"""RSS 2.0 written with feedgen, as aggregator/publish/rss.py did before it wrote with lxml: kept
for bench/render_writers.py, which compares the two (speed, validity, bytes).

Owns what is RSS's own: ``description`` is the summary or else the content, ``content:encoded``
the content; the author name goes in ``dc:creator`` (RSS ``author`` must be an e-mail address);
one enclosure (the first with an http(s) URL; RSS allows one); ``atom:link`` rel=self/hub/next/
alternate; ``<source url>`` (our RSS feed of the source) on a merged entry; plain text with
hexadecimal character references. Does not own: preparing entries (render.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from feedgen.feed import FeedGenerator
from lxml import etree

from aggregator.publish.render import (
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
_RSS_DOCS = "http://www.rssboard.org/rss-specification"  # exactly this: validators key on it
# Plain-text elements as lxml writes them (text only, attributes never used on these).
_RSS_PLAIN_TEXT = re.compile(
    rb"<(title|category|dc:creator|source url=\"[^\"]*\")>([^<]*)</(title|category|dc:creator|source)>"
)


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


def write(meta: FeedMeta, items: Sequence[_Item]) -> bytes:
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
