"""The text of HTML is one rule for every stage (aggregator/content/text.py): cleaning, categorize,
dedupe, the feed query, the renderers and the feed adapter read the same words from a fragment."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

from aggregator.categorize import Fields, Rule, match
from aggregator.content.clean import clean
from aggregator.content.text import excerpt, first_image, html_text
from aggregator.dedupe import fingerprint
from aggregator.models import Entry, FetchResult, Source
from aggregator.publish.hexo import render_post
from aggregator.publish.query import parse_query
from aggregator.publish.render import FeedMeta, render
from aggregator.sources.feed import FeedAdapter

FRAGMENT = (
    "<p>Tom &amp; Jerry<br>猫和<b>老鼠</b></p>"
    '<script>var hidden = "scriptword <p>";</script><style>.styleword { color: red }</style>'
    "<template>templateword</template><!-- commentword -->"
    "<p>ＡＩ&nbsp;news &lt;3</p>"
)
TEXT = "Tom & Jerry 猫和老鼠 ＡＩ news <3"
HIDDEN = ("scriptword", "styleword", "templateword", "commentword")
NOW = datetime(2026, 1, 2, tzinfo=UTC)


def _entry(content: str, title: str = "") -> Entry:
    return Entry(
        source_id="s",
        key="k",
        title=title,
        link="https://example.com/a",
        content=content,
        summary=None,
        author=None,
        published=NOW,
        updated=NOW,
    )


def test_the_rule_drops_hidden_text_and_keeps_words_apart_at_blocks_only() -> None:
    """Scripts, styles, templates and comments are dropped; <br> and <p> separate words, <b>
    does not (老鼠 stays one word); entities are decoded, &nbsp; is a space."""
    assert html_text(FRAGMENT) == TEXT
    assert html_text("a&</b>amp;b") == "a&amp;b"  # a reference never spans a tag
    assert html_text(None) == ""


def test_cleaning_reads_the_same_text() -> None:
    assert clean(FRAGMENT, "https://example.com/").text == TEXT


def test_categorize_matches_the_same_text() -> None:
    """A rule on content sees the visible words, never the script's."""
    fields = Fields(title="t", content=FRAGMENT)
    for word, seen in (("Jerry", True), ("老鼠", True), *((w, False) for w in HIDDEN)):
        rule = Rule(match_field="content", keywords=(word,), add=("x",))
        assert (match(rule, fields, []) is not None) is seen, word


def test_dedupe_fingerprints_the_same_text() -> None:
    """fingerprint.normalize_text is the shared text folded: the fragment and its visible text, written
    as plain HTML, normalize alike."""
    assert fingerprint.normalize_text(FRAGMENT) == fingerprint.normalize_text(html.escape(TEXT))
    assert not any(word in fingerprint.normalize_text(FRAGMENT) for word in HIDDEN)


def test_the_feed_query_filters_on_the_same_text() -> None:
    entry = _entry(FRAGMENT, title="t")
    for word, seen in (("Jerry", True), ("猫和老鼠", True), *((w, False) for w in HIDDEN)):
        query = parse_query([("filter_description", word)], 50)
        assert query.admits(entry, NOW) is seen, word


def test_the_renderers_excerpt_the_same_text() -> None:
    """An entry without a title is titled with the excerpt of its content."""
    meta = FeedMeta(
        id="all",
        title="t",
        description="d",
        self_url="http://h/feeds/all.json",
        site_url="http://h/",
        updated=NOW,
    )
    item = json.loads(render("json", meta, [_entry(FRAGMENT)]))["items"][0]
    assert item["title"] == TEXT == excerpt(FRAGMENT, 80)
    assert excerpt("<p>" + "字" * 100 + "</p>", 10) == "字" * 9 + "…"


def test_the_feed_adapter_weighs_the_same_text() -> None:
    """Of content and summary the feed adapter keeps the one with more visible text: a script does
    not make a teaser weigh more than the full text."""
    teaser = "<p>Short teaser</p><script>" + "x" * 500 + "</script>"
    body = "<p>" + "The full story, told at length. " * 5 + "</p>"
    rss = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        "<channel><title>c</title><item><title>i</title><link>https://example.com/i</link>"
        f"<description>{html.escape(teaser)}</description>"
        f"<content:encoded>{html.escape(body)}</content:encoded></item></channel></rss>"
    ).encode()
    source = Source(id="s", url="https://example.com/feed")
    parsed = FeedAdapter().parse(source, FetchResult(url=source.url, status_code=200, content=rss))
    assert "The full story" in (parsed.items[0].content or "")


def test_every_first_image_is_the_same() -> None:
    """Cleaning and the Hexo posts take the first <img> with a src (not one in a script)."""
    fragment = (
        '<script>x = "<img src=/no.png>"</script><p><img alt="a > b" src="/one.png?a=1&amp;b=2">'
        '<img src="/two.png"></p>'
    )
    cleaned = clean(fragment, "https://example.com/")
    assert cleaned.image == first_image(cleaned.html) == "https://example.com/one.png?a=1&b=2"
    assert first_image(fragment) == "/one.png?a=1&b=2"
    post = render_post(_entry(cleaned.html, title="t"), "me", False)
    assert "https://example.com/one.png?a=1&b=2" in post
