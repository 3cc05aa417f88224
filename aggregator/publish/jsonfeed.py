"""JSON Feed 1.1 documents, written as plain JSON (see render.py for the rules every format
follows).

Owns what is JSON Feed's own: ``content_html`` as Atom's content, ``summary`` as plain text, every
enclosure as an attachment, where a merged entry came from in an ``_aggregator`` extension
object ``{"source": {...}}``. Does not own: preparing entries (render.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from ..models import Enclosure
from .render import FeedMeta, SourceRef, _Item, _plain, _rfc3339, _uri

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
EXTENSION = "_aggregator"  # JSON Feed extension object (the spec: keys starting with "_")


def write(meta: FeedMeta, items: Sequence[_Item]) -> bytes:
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
