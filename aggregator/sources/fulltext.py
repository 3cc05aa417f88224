"""Full text for summary-only feeds: an entry's article page (its link), reduced to its article.

A feed source with ``fulltext = true`` has each new or changed entry completed here (the feed
adapter's ``enrich``): the page is fetched through the pipeline's fetch (our fetcher: politeness,
limits, the private-address check, retries, the source's own request options), decoded like any
page (``charset.decode_page``: BOM, valid UTF-8, the HTTP charset, ``<meta charset>``, else
detection; GBK and GB2312 read as GB18030), and its main content found by trafilatura, or taken
from the element ``fulltext_selector`` matches. The found HTML becomes the entry's content and
the feed's own text its summary. A page that cannot be had, or whose article is no longer than
the feed's own text, leaves the entry as the feed gave it, with ``detail_error`` set: the pipeline
publishes it so, records the failure on the source and retries it at later fetches
(pipeline/details.py), like any detail.

Owns: the extraction and the choice of extractor. Does not own: fetching, decoding, retries or
cleaning (the pipeline cleans the found HTML like any content).

Why trafilatura: ``bench/fulltext_extractors.py`` ran trafilatura 2.3, readability-lxml 0.9 and
goose3 3.1 on the saved pages of ``tests/data/articles`` (an English blog post, a news article
with navigation, ads and comments, a GBK page declared only by ``<meta charset=gbk>``, a GB18030
page declaring no charset). trafilatura and readability-lxml both found all 26 article phrases;
trafilatura kept 1 of 34 junk phrases (an inline ad written as a paragraph), readability-lxml 4
(the news page's ad boxes); goose3 found none of the Chinese text. Speed was alike: 4.9 CPU ms
per page for trafilatura, 4.4 for readability-lxml, 17.6 for goose3 (the table is in the README,
"Full text for summary-only feeds").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from ..content.charset import decode_page
from ..content.text import html_text
from ..content.urls import public_link
from ..models import Item
from . import FetchFn
from .fields import content_type, fetch_extra, selected_html

log = logging.getLogger("aggregator.fulltext")

# Pages above this many characters are not searched for an article: trafilatura's time grows with
# the page (measured on the news fixture repeated: 0.2 MB 0.35 s, 1.15 MB 4.7 s on a busy 2-core
# machine), while article pages are mostly 50-500 KB even with their scripts (the fetcher's body
# limit, 15 MB, is far larger).
MAX_PAGE_CHARS = 2_000_000


async def complete(item: Item, fetch: FetchFn, selector: str | None = None) -> Item:
    """``item`` with its article page's main content as content and the feed's text (its summary,
    else its content) as summary; as it was, with ``detail_error`` set, when that fails."""
    extra = await fetch_extra(public_link(item.link, item.base), fetch)
    result = extra.result
    if result is None:
        return extra.missing(item)
    page = decode_page(result.content, content_type(result))
    # in a thread: a large page takes the extractor tens of milliseconds, the event loop goes on
    html, why = await asyncio.to_thread(article_of, page, result.url, selector, feed_text(item))
    if html is None:
        log.warning("event=fulltext_unusable url=%s problem=%r", item.link, why)
        return replace(item, detail_error=f"{item.link}: full text unusable: {why}")
    return replace(item, content=html, summary=item.summary or item.content, base=result.url)


def feed_text(item: Item) -> str:
    """The text the feed itself gives for the item: what the full text must beat."""
    return html_text(item.content or item.summary)


def article_of(page: str, url: str, selector: str | None, feed: str) -> tuple[str | None, str]:
    """The article on ``page``, when it says more than the feed's own text ``feed``: a page that
    yields less (a login wall, a cookie notice, a shell filled in by scripts) is no full text."""
    html, why = extract(page, url, selector)
    if html is None:
        return None, why
    found, given = len(html_text(html)), len(feed)
    if found <= given:
        return (
            None,
            f"the page's article ({found} characters) is no longer than the feed's text ({given})",
        )
    return html, ""


def extract(page: str, url: str, selector: str | None = None) -> tuple[str | None, str]:
    """The article's HTML on ``page`` (found, or what ``selector`` matches); else None and why."""
    if len(page) > MAX_PAGE_CHARS:
        return None, f"page too large to search for the article ({len(page)} characters)"
    if selector:
        return selected_html(page, selector, ())
    import trafilatura  # only where full text is used: importing it takes a quarter of a second

    html = trafilatura.extract(
        page,
        url=url,
        output_format="html",
        include_comments=False,
        include_tables=True,
        include_images=True,
        include_links=True,
        include_formatting=True,
    )
    if not html or not html.strip():
        return None, "no article text found on the page"
    return html, ""
