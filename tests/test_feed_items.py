"""Feed items: the richest content element is the content (never several joined), JSON Feed
items without authors inherit the feed's (JSON Feed 1.1)."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime

from aggregator.sources.feed import parse_json_feed, parse_xml_feed

from .conftest import CORPUS

RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:xhtml="http://www.w3.org/1999/xhtml"><channel><title>t</title><link>http://a.test/</link>
{items}
</channel></rss>"""
BODY = "&lt;p&gt;The whole story, first paragraph.&lt;/p&gt;&lt;p&gt;And the second one.&lt;/p&gt;"
HEADERS = {"content-type": "application/rss+xml"}


def _items(*items: str) -> list:  # type: ignore[type-arg]
    doc = RSS.format(items="\n".join(f"<item>{i}</item>" for i in items))
    return list(parse_xml_feed(doc.encode(), HEADERS, "http://a.test/feed").items)


def test_body_in_description_beats_a_caption_in_content_encoded() -> None:
    """A one-line caption in content:encoded and the body in description: the body is the content."""
    (item,) = _items(
        f"<title>a</title><description>{BODY}</description>"
        "<content:encoded>Photo: AP</content:encoded>"
    )
    assert item.content == "<p>The whole story, first paragraph.</p><p>And the second one.</p>"


def test_the_same_body_in_two_content_elements_is_stored_once() -> None:
    """content:encoded and xhtml:body holding the same body give that body once, not twice."""
    (item,) = _items(
        f"<title>b</title><content:encoded>{BODY}</content:encoded>"
        "<xhtml:body><p>The whole story, first paragraph.</p><p>And the second one.</p>"
        "</xhtml:body>"
    )
    assert item.content is not None and item.content.count("The whole story") == 1


def test_the_richest_of_several_content_elements_wins() -> None:
    """Of a short and a long content element, the long one is the content; nothing is joined."""
    (item,) = _items(
        "<title>c</title><content:encoded>Short teaser.</content:encoded>"
        "<xhtml:body><p>The much longer body of the story, with details.</p></xhtml:body>"
    )
    assert item.content == "<p>The much longer body of the story, with details.</p>"


def test_a_description_shorter_than_the_content_stays_the_summary() -> None:
    """A real summary beside a fuller content:encoded is kept as the summary."""
    (item,) = _items(
        "<title>d</title><description>Teaser.</description>"
        f"<content:encoded>{BODY}</content:encoded>"
    )
    assert item.summary == "Teaser." and item.content is not None and "second one" in item.content


def test_content_alone_is_not_repeated_as_summary() -> None:
    """With only content:encoded (feedparser copies it into summary) the summary stays empty."""
    (item,) = _items(f"<title>e</title><content:encoded>{BODY}</content:encoded>")
    assert item.summary is None and item.content is not None


def test_corpus_duplicate_content_feed_stores_each_body_once() -> None:
    """feedjira's DuplicateContentAtomFeed: no entry's content holds its text twice."""
    raw = (CORPUS / "feedjira+feedjira" / "DuplicateContentAtomFeed.xml").read_bytes()
    items = parse_xml_feed(raw, {"content-type": "application/atom+xml"}, "http://a.test/").items
    assert items
    for item in items:
        text = item.content or ""
        half = len(text) // 2
        assert not (half > 20 and text[:half] == text[half:])


def _json_feed(**feed: object) -> bytes:
    return json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": "j", **feed}
    ).encode()


def test_json_feed_items_without_authors_inherit_the_feeds() -> None:
    """An item with no authors takes the feed's authors; an item with its own keeps them."""
    body = _json_feed(
        authors=[{"name": "Ann"}, {"name": "Bo"}],
        items=[
            {"id": "1", "content_text": "x"},
            {"id": "2", "content_text": "y", "authors": [{"name": "Cy"}]},
            {"id": "3", "content_text": "z", "authors": []},
        ],
    )
    items = parse_json_feed(body).items
    assert [i.author for i in items] == ["Ann, Bo", "Cy", "Ann, Bo"]


def test_json_feed_1_0_feed_author_is_inherited() -> None:
    """A JSON Feed 1.0 top-level ``author`` object is the author of items that name none."""
    body = _json_feed(
        author={"name": "Dee", "url": "https://d.test/"}, items=[{"id": "1", "content_text": "x"}]
    )
    assert parse_json_feed(body).items[0].author == "Dee"


def test_an_item_has_only_the_dates_its_feed_gives() -> None:
    """An RSS item with a pubDate alone has no updated time (feedparser's deprecated fallback,
    which answers ``updated_parsed`` with the published date and a warning, is not used); one
    with both keeps both; parsing warns of nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain, both = _items(
            "<title>a</title><pubDate>Mon, 07 Dec 2026 05:00:00 GMT</pubDate>",
            "<title>b</title><pubDate>Mon, 07 Dec 2026 05:00:00 GMT</pubDate>"
            "<atom:updated xmlns:atom='http://www.w3.org/2005/Atom'>2026-12-07T06:00:00Z</atom:updated>",
        )
    assert plain.published == datetime(2026, 12, 7, 5, tzinfo=UTC) and plain.updated is None
    assert (both.published, both.updated) == (
        datetime(2026, 12, 7, 5, tzinfo=UTC),
        datetime(2026, 12, 7, 6, tzinfo=UTC),
    )
