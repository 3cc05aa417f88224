"""Bounded work per document: what one fetched document may put into the pipeline.

Owns three rules, applied in the parser worker (``pipeline.workers.identify``) to what every adapter
returns, and again (the text caps) to items an adapter's ``enrich`` completed:

- **Entries per fetch.** At most ``[fetch] max_entries`` items of one document are kept: the
  newest, by the item's date (published, else updated; ``dates.plausible`` first), then undated
  items in document order. Kept items stay in document order. ``newest_indexes`` is the rule;
  ``trim_xml`` applies it to an RSS/Atom/RDF document before feedparser sees it, so a feed of
  100,000 items costs the worker a streaming pass, not 100,000 parsed entries.
- **Text fields.** Titles longer than ``TITLE_CHARS`` and authors longer than ``AUTHOR_CHARS``
  are cut (at a character) and end with an ellipsis; at most ``MAX_CATEGORIES`` categories of at
  most ``CATEGORY_CHARS`` each; links, image and enclosure URLs longer than ``URL_CHARS`` are
  dropped (a cut URL is a wrong one); a guid longer than ``URL_CHARS`` is replaced by its SHA-256
  (still stable and unique); at most ``MAX_ENCLOSURES`` enclosures; summaries are cut at
  ``SUMMARY_CHARS`` and content at ``CONTENT_CHARS`` characters (the cleaner closes what the cut
  leaves open).
- **Dates.** ``dates.plausible`` with the fetch time: absurd dates are absent.

Does not own: the body size limit (fetch.py), the CPU budget of a parse
(pipeline/workers.py), what the store keeps (retention).
"""

from __future__ import annotations

import hashlib
import heapq
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from ..models import Item, ParsedFeed
from .dates import parse_date, plausible

T = TypeVar("T")

TITLE_CHARS = 1_000
AUTHOR_CHARS = 200
CATEGORY_CHARS = 100
MAX_CATEGORIES = 50
URL_CHARS = 4_096
MAX_ENCLOSURES = 20
SUMMARY_CHARS = 50_000
CONTENT_CHARS = 1_000_000

_ITEM_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
_ITEM_TAGS = ("{*}item", "{*}entry")
_PUBLISHED = ("{*}pubDate", "{*}published", "{*}date", "{*}issued", "{*}created")
_UPDATED = ("{*}updated", "{*}modified")


# --- entries per fetch ---------------------------------------------------------------------------


def newest_indexes(dates: Iterable[datetime | None], keep: int) -> list[int]:
    """The indexes (ascending) of the ``keep`` newest of items with these dates: dated ones
    newest first, then undated ones in document order."""
    return newest_streamed(dates, keep)[1]


def newest_streamed(dates: Iterable[datetime | None], keep: int) -> tuple[int, list[int]]:
    """How many dates there were and ``newest_indexes`` of them, holding at most ``keep`` dates
    at a time (a sort of all the dates of 100,000 items held 11 MB more). Equal dates keep their
    order: of two, the earlier index is the larger ``-i``."""
    heap: list[tuple[datetime, int]] = []
    undated: list[int] = []
    count = 0
    for count, (i, date) in enumerate(enumerate(dates), 1):
        if date is None:
            if len(undated) < keep:
                undated.append(i)
        elif len(heap) < keep:
            heapq.heappush(heap, (date, -i))
        else:
            heapq.heappushpop(heap, (date, -i))
    return count, sorted([-i for _, i in heap] + undated[: keep - len(heap)])


def newest(items: Sequence[T], date: Callable[[T], datetime | None], keep: int) -> list[T]:
    """The ``keep`` newest of ``items`` (``newest_indexes``), in their order."""
    if len(items) <= keep:
        return list(items)
    return [items[i] for i in newest_indexes([date(x) for x in items], keep)]


def item_date(item: Item) -> datetime | None:
    return item.published or item.updated


def bounded(parsed: ParsedFeed, now: datetime | None, max_entries: int) -> ParsedFeed:
    """``parsed`` with plausible dates, its newest ``max_entries`` items and capped fields."""
    items = [
        bounded_item(
            replace(i, published=plausible(i.published, now), updated=plausible(i.updated, now))
        )
        for i in parsed.items
    ]
    return replace(
        parsed,
        title=_cut(parsed.title, TITLE_CHARS),
        link=_url(parsed.link),
        items=tuple(newest(items, item_date, max_entries)),
    )


def many_items(data: bytes, keep: int) -> bool:
    """Whether an XML document has more than ``keep`` item or entry start tags (a quick scan)."""
    return sum(1 for _ in zip(_ITEM_TAG.finditer(data), range(keep + 1))) > keep


def trim_xml(data: bytes, keep: int, now: datetime | None = None) -> bytes:
    """An RSS/Atom/RDF document with only its ``keep`` newest items (``newest_indexes``), in
    two streaming passes that hold at most the kept items; the document itself when it has no
    more. When lxml cannot read it, even in recovery mode, or reads fewer items than the quick
    scan saw, its first items are kept: the document is cut after the ``keep``-th item and
    feedparser reads what is left."""
    if not many_items(data, keep):
        return data
    from lxml import etree

    try:
        count, wanted = newest_streamed(_item_dates(data, now), keep)
        if count <= keep:  # lxml's recovery lost items the quick scan saw
            return _cut_after_items(data, keep)
        return _keep_items(data, set(wanted))
    except (etree.LxmlError, ValueError):
        return _cut_after_items(data, keep)


def _iterparse(data: bytes) -> Any:  # lxml.etree.iterparse
    from lxml import etree

    return etree.iterparse(
        io.BytesIO(data),
        events=("end",),
        tag=_ITEM_TAGS,
        recover=True,
        huge_tree=False,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
    )


def _item_dates(data: bytes, now: datetime | None) -> Iterator[datetime | None]:
    for _, elem in _iterparse(data):
        yield _first_date(elem, _PUBLISHED, now) or _first_date(elem, _UPDATED, now)
        elem.clear()
        parent = elem.getparent()
        while parent is not None and elem.getprevious() is not None:
            del parent[0]


def _first_date(elem: Any, tags: Sequence[str], now: datetime | None) -> datetime | None:
    for tag in tags:
        text = elem.findtext(tag)
        if text and (found := plausible(parse_date(text.strip()), now)):
            return found
    return None


def _keep_items(data: bytes, wanted: set[int]) -> bytes:
    from lxml import etree

    context = _iterparse(data)
    dropped: list[Any] = []
    for index, (_, elem) in enumerate(context):
        for old in dropped:  # earlier siblings may go once the parser is past them
            old.getparent().remove(old)
        dropped.clear()
        if index not in wanted:
            elem.clear()
            dropped.append(elem)
    for old in dropped:
        old.getparent().remove(old)
    root = context.root
    if root is None:
        raise ValueError("no root element")
    return bytes(etree.tostring(root, encoding="utf-8", xml_declaration=True))


def _cut_after_items(data: bytes, keep: int) -> bytes:
    ends = re.finditer(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>", data)
    for count, match in enumerate(ends, 1):
        if count == keep:
            return data[: match.end()]
    return data


# --- text fields ---------------------------------------------------------------------------------


def bounded_item(item: Item) -> Item:
    """``item`` with its text fields within the limits (see the module docstring)."""
    return replace(
        item,
        guid=_guid(item.guid),
        link=_url(item.link),
        title=_cut(item.title, TITLE_CHARS),
        content=_clip(item.content, CONTENT_CHARS),
        summary=_clip(item.summary, SUMMARY_CHARS),
        author=_cut(item.author, AUTHOR_CHARS),
        categories=tuple(
            c for c in (_cut(c, CATEGORY_CHARS) for c in item.categories[:MAX_CATEGORIES]) if c
        ),
        enclosures=tuple(e for e in item.enclosures[:MAX_ENCLOSURES] if _url(e.url)),
        image=_url(item.image),
        base=_url(item.base),
    )


def _cut(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was longer."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _clip(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit]


def _url(url: str | None) -> str | None:
    return url if url is None or len(url) <= URL_CHARS else None


def _guid(guid: str | None) -> str | None:
    if guid is None or len(guid) <= URL_CHARS:
        return guid
    return "sha256:" + hashlib.sha256(guid.encode("utf-8", "surrogatepass")).hexdigest()
