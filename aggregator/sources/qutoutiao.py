"""The Qutoutiao (趣头条) adapter: the app's article list API, then each article's full text.

The list (``/content/outList?cid=…``) is JSON: ``{"code": 0, "data": {"data": [items]}}``. An
item's identity and link are its article URL without the tracking query; its published time is
``show_time``; its author the ``nickname``. ``enrich`` fetches the full HTML: the ``detail`` field
of the JSON at ``detail_url`` when that works, otherwise the inner HTML of the article page's
``div.content``; when both fail the item keeps no content.

Does not own: fetching (``enrich`` is handed the pipeline's fetch function), cleaning the HTML (the
pipeline runs content cleaning with the item's link as base URL). Owns too what the config knows
of the kind: its options (``cid``, ``limit``), the list URL they make, and its defaults (category
path, site name, Hexo placeholder image).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bs4 import BeautifulSoup, Tag
from pydantic import Field

from ..config.types import Int, KindOptions
from ..content.charset import decode_page
from ..content.markup import IN_ORDER
from ..errors import ParseError
from ..models import FetchResult, Item, ParsedFeed, Source
from . import FetchFn, KindDefaults
from .dates import from_timestamp
from .fields import content_type, fetch_extra

LIST_API = "http://api.1sapp.com/content/outList"


class QutoutiaoOptions(KindOptions):
    cid: Int = Field(255, ge=1)  # the channel (category) whose list is read
    limit: Int = Field(20, ge=1, le=100)  # articles per list request


class QutoutiaoAdapter:
    kind = "qutoutiao"
    options_model = QutoutiaoOptions
    defaults = KindDefaults(
        category=("新媒体", "趣头条", "分类"), site_name="趣头条", hexo_placeholder_image=True
    )

    def default_url(self, options: Mapping[str, Any]) -> str | None:
        """The first page of the channel's list (a source may name another URL instead)."""
        return f"{LIST_API}?cid={options['cid']}&tn=1&page=1&limit={options['limit']}"

    def request_url(self, source: Source, effective_url: str) -> str:
        return effective_url

    def parse(self, source: Source, result: FetchResult) -> ParsedFeed:
        items = _list_items(_json_body(result.content, "article list"))
        parsed = (_item(raw) for raw in items if isinstance(raw, dict))
        return ParsedFeed(
            title=source.title or source.site_name,
            link=None,
            items=tuple(item for item in parsed if item is not None),
        )

    async def enrich(self, source: Source, item: Item, fetch: FetchFn) -> Item:
        content, detail_error = await _detail_html(item, fetch)
        if not content:
            content, article_error = await _article_html(item, fetch)
            if not content:  # both failed: the item keeps its summary, and the detail is retried
                why = "; ".join(e for e in (detail_error, article_error) if e)
                return replace(item, detail_error=why) if why else item
        return replace(item, content=content)


def _json_body(body: bytes, what: str) -> dict[str, Any]:
    """The decoded JSON object of a Qutoutiao answer whose ``code`` is 0; ParseError otherwise."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(f"qutoutiao {what}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ParseError(f"qutoutiao {what}: expected a JSON object")
    code = data.get("code")
    if str(code) != "0":
        message = data.get("message") or data.get("msg") or "no message"
        raise ParseError(f"qutoutiao {what}: code {code}: {message}")
    return data


def _list_items(data: Mapping[str, Any]) -> list[Any]:
    inner = data.get("data")
    items = inner.get("data") if isinstance(inner, dict) else None
    if not isinstance(items, list):
        raise ParseError("qutoutiao article list: no data.data list in the answer")
    return items


def _item(raw: Mapping[str, Any]) -> Item | None:
    url = raw.get("url")
    if not isinstance(url, str) or urlsplit(url.strip()).scheme not in ("http", "https"):
        return None  # a number or anything else that is not a link: no entry to key
    url = url.strip()
    link = without_query(url)
    return Item(
        guid=link,
        link=link,
        title=_text(raw.get("title")),
        summary=_text(raw.get("introduction")),
        author=_text(raw.get("nickname")) or _text(raw.get("source_name")),
        published=_published(raw),
        image=_first_cover(raw.get("cover")),
        extra={"detail_url": _text(raw.get("detail_url")), "article_url": url},
    )


def without_query(url: str) -> str:
    """The URL without its query string and fragment (Qutoutiao puts tracking data there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _published(raw: Mapping[str, Any]) -> datetime | None:
    """``show_time`` (Unix seconds), else ``publish_time`` (milliseconds), as aware UTC."""
    for key, scale in (("show_time", 1), ("publish_time", 1000)):
        try:
            seconds = float(raw[key]) / scale
        except (KeyError, TypeError, ValueError):
            continue
        if (when := from_timestamp(seconds)) is not None:
            return when
    return None


def _first_cover(cover: Any) -> str | None:
    if isinstance(cover, list):
        return next((c.strip() for c in cover if isinstance(c, str) and c.strip()), None)
    return _text(cover)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


async def _detail_html(item: Item, fetch: FetchFn) -> tuple[str | None, str | None]:
    """The detail JSON's HTML, else None and why not."""
    url = item.extra.get("detail_url")
    extra = await fetch_extra(url, fetch)
    if extra.result is None:
        return None, extra.error
    try:
        data = _json_body(extra.result.content, "article detail")
    except ParseError as exc:
        return None, f"{url}: {exc}"
    detail = data.get("data")
    html = detail.get("detail") if isinstance(detail, dict) else None
    return (html, None) if isinstance(html, str) and html.strip() else (None, f"{url}: no detail")


async def _article_html(item: Item, fetch: FetchFn) -> tuple[str | None, str | None]:
    """The article page's content, else None and why not."""
    url = item.extra.get("article_url") or item.link
    extra = await fetch_extra(url, fetch)
    if extra.result is None:
        return None, extra.error
    html = article_content(decode_page(extra.result.content, content_type(extra.result)))
    return (html, None) if html else (None, f"{url}: no div.content in the article page")


def article_content(page: str) -> str | None:
    """The inner HTML of the first ``div.content`` of an article page, if it has any."""
    div = BeautifulSoup(page, "lxml", multi_valued_attributes=None).select_one("div.content")
    if not isinstance(div, Tag):
        return None
    html = div.decode_contents(formatter=IN_ORDER).strip()
    return html or None
