"""Atom 1.0 written with feedgen, as aggregator/publish/atom.py did before it wrote with lxml: kept
for bench/render_writers.py, which compares the two (speed, validity, bytes).

Owns what is Atom's own: content type="html" (the summary when there is no content, the title
when there is neither, as a validator wants textual content), summary type="html" beside real
content; the feed always has an author (the feed title), which entries without one inherit;
``<source>`` (id, title, links, updated) on a merged entry; dates in UTC with ``Z``. Does not
own: preparing entries (render.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from feedgen.feed import FeedGenerator
from lxml import etree

from aggregator.publish.render import (
    _MEDIA_NS,
    CONTENT_TYPES,
    FALLBACK_TIME,
    GENERATOR,
    FeedMeta,
    _authority,
    _feed_id,
    _feed_time,
    _hex_escape,
    _Item,
    _other_formats,
    _plain,
    _rfc3339,
    _uri,
    feed_id,
)

_ATOM_PLAIN_TEXT = re.compile(rb"<(title|name|subtitle)>([^<]*)</(title|name|subtitle)>")


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


def write(meta: FeedMeta, items: Sequence[_Item]) -> bytes:
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
