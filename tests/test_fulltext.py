"""Full text for summary-only feeds: each new entry's article page fetched from the fake origin,
its article found (trafilatura) or selected (``fulltext_selector``), stored and served as the
entry's content with the feed's teaser as its summary; a failing page recorded on the source and
retried like a detail; Chinese pages in GBK and GB18030 decoded right.

Through the real pipeline (``aggregator fetch``'s code), fetcher and SQLite store, fake clock.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aggregator.cli import sources as commands
from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.config.settings import Settings
from aggregator.content.charset import decode_page
from aggregator.http.app import create_app
from aggregator.models import Entry, FetchStatus, Selection, SourceState
from aggregator.publish.feeds import FeedService
from aggregator.sources.fulltext import MAX_PAGE_CHARS, extract
from aggregator.store import open_store

from .articles import PAGES, Article
from .origin import Origin, Reply, Sequence_

BLOG, NEWS, GBK, GB18030 = PAGES


def squeeze(text: str) -> str:
    return "".join(text.split())


def rss(items: list[tuple[str, str, str]]) -> str:
    """An RSS feed of (guid, link, teaser) items, summaries only."""
    body = "".join(
        f"<item><guid isPermaLink='false'>{guid}</guid><title>Story {guid}</title><link>{link}</link>"
        f"<description>&lt;p&gt;{teaser}&lt;/p&gt;</description>"
        f"<pubDate>Mon, 0{guid} Mar 2026 10:00:00 GMT</pubDate></item>"
        for guid, link, teaser in items
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Teasers</title>"
        f"<link>https://teasers.example/</link><description>d</description>{body}</channel></rss>"
    )


def page(article: Article) -> Reply:
    return Reply(article.body(), content_type=article.content_type)


def settings_for(tmp: Path, sources: str) -> Settings:
    text = (
        f'[storage]\nurl = "sqlite:///{tmp / "agg.db"}"\n'
        "[fetch]\nallow_private_networks = true\nper_host_delay = 0\nmax_retries = 0\n"
        '[schedule]\njitter = 0\nbackoff_base = "1m"\n' + sources
    )
    path = tmp / "aggregator.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


def teaser_source(origin: Origin, sid: str = "teasers", extra: str = "") -> str:
    items = [(str(n), origin.url(f"/a/{n}"), f"Teaser {n}") for n in (1, 2, 3, 4)]
    url = origin.route("/feed.xml", Reply(rss(items), content_type="application/rss+xml"))
    return f'[[sources]]\nid = "{sid}"\nurl = "{url}"\nfulltext = true\n{extra}\n'


async def fetch(
    settings: Settings, clock: FakeClock, sid: str = "teasers"
) -> tuple[dict[str, Entry], SourceState]:
    outcomes = await commands.fetch_all(settings, settings.source_records(), clock=clock)
    assert all(o.status in (FetchStatus.OK, FetchStatus.NOT_MODIFIED) for o in outcomes), outcomes
    store = open_store(settings.storage.url, clock.now())
    try:
        entries = store.list_entries(Selection(source_ids=(sid,), limit=10))
        state = store.get_state(sid)
        assert state is not None
        return {e.key: e for e in entries}, state
    finally:
        store.close()


def has_article(entry: Entry, article: Article) -> bool:
    text = squeeze(entry.content or "")
    return all(squeeze(p) in text for p in article.article)


@pytest.mark.parametrize("article", PAGES, ids=lambda a: a.name)
def test_the_extractor_finds_each_saved_article_and_little_else(article: Article) -> None:
    """Every phrase of the article, first paragraph to last, and at most one phrase of the page's
    navigation, ads and comments (the GBK page's inline ad is written as a paragraph)."""
    html, why = extract(decode_page(article.body(), article.content_type), "https://example.org/a")
    assert html is not None, why
    text = squeeze(html)
    assert [p for p in article.article if squeeze(p) not in text] == []
    assert len([j for j in article.junk if squeeze(j) in text]) <= 1


async def test_full_text_is_stored_and_served_with_the_feed_teaser_as_summary(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """Each entry's content is its article page's text (English, GBK declared by meta only,
    GB18030 declared nowhere), cleaned; its summary is the feed's teaser; the source's feed
    serves both; the page's comments and navigation are not in it."""
    for n, article in enumerate(PAGES, 1):
        origin.route(f"/a/{n}", page(article))
    settings = settings_for(tmp_path, teaser_source(origin))
    entries, state = await fetch(settings, clock)
    for n, article in enumerate(PAGES, 1):
        assert has_article(entries[str(n)], article), article.name
        assert entries[str(n)].summary == f"<p>Teaser {n}</p>"
    assert "Leave a comment" not in (entries["1"].content or "")
    assert '<img src="http://127.0.0.1' in (
        entries["1"].content or ""
    )  # made absolute by the page URL
    assert state.details_missing == 0
    store = open_store(settings.storage.url, clock.now())
    sources = {s.id: s for s in settings.source_records()}
    served = TestClient(create_app(FeedService(settings, store, lambda: sources, clock)))
    atom = served.get("/feeds/source/teasers.atom").text
    store.close()
    assert "今年城东区将为四十六个老旧小区加装电梯一百二十台" in atom
    assert "今年的茶，成了。" in atom
    assert "Teaser 3" in atom


async def test_a_failing_article_page_keeps_the_teaser_and_is_retried(
    origin: Origin, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An article page that answers 500 leaves its entry published with the teaser, counts on the
    source with its error; at the retry (60 s later) the full text arrives and replaces it."""
    origin.route("/a/1", page(BLOG))
    origin.route("/a/2", Sequence_(Reply("down", status=500), page(NEWS)))
    origin.route("/a/3", page(GBK))
    origin.route("/a/4", page(GB18030))
    settings = settings_for(tmp_path, teaser_source(origin))
    with caplog.at_level(logging.WARNING, logger="aggregator"):
        entries, state = await fetch(settings, clock)
    assert entries["2"].content == "<p>Teaser 2</p>" and has_article(entries["1"], BLOG)
    assert state.details_missing == 1
    assert state.detail_error == f"{origin.url('/a/2')}: HTTP 500 Internal Server Error"
    assert "event=detail_failed key=2 attempt=1" in caplog.text

    clock.advance(61)
    entries, state = await fetch(settings, clock)
    assert has_article(entries["2"], NEWS) and entries["2"].summary == "<p>Teaser 2</p>"
    assert (state.details_missing, state.detail_error) == (0, None)
    assert [len(origin.hits(f"/a/{n}")) for n in (1, 2, 3, 4)] == [1, 2, 1, 1]


async def test_a_page_without_an_article_is_recorded_as_unusable(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """A page whose article says less than the feed's teaser (a shell of navigation) is a failed
    full text, recorded on the source, not an entry emptied of its teaser."""
    origin.route("/a/1", page(BLOG))
    origin.route(
        "/a/2",
        Reply(
            "<html><body><nav><a href='/'>Home</a></nav></body></html>", content_type="text/html"
        ),
    )
    origin.route("/a/3", page(GBK))
    origin.route("/a/4", page(GB18030))
    settings = settings_for(tmp_path, teaser_source(origin))
    entries, state = await fetch(settings, clock)
    assert entries["2"].content == "<p>Teaser 2</p>"
    why = "the page's article (4 characters) is no longer than the feed's text (8)"
    assert state.detail_error == f"{origin.url('/a/2')}: full text unusable: {why}"


async def test_a_selector_takes_the_content_from_the_element_it_matches(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """With ``fulltext_selector`` the matched element is the content, whatever an extractor thinks."""
    for n, article in enumerate(PAGES, 1):
        origin.route(f"/a/{n}", page(article))
    extra = 'fulltext_selector = "div.post-content, div.article-body, #zoom, div.body"'
    settings = settings_for(tmp_path, teaser_source(origin, extra=extra))
    entries, _ = await fetch(settings, clock)
    assert all(has_article(entries[str(n)], a) for n, a in enumerate(PAGES, 1))
    assert "Switch your energy supplier" in (entries["2"].content or "")  # the ad box is inside


def test_fulltext_options_are_checked() -> None:
    """A selector without fulltext, a broken selector and fulltext on a json source are config errors."""
    head = '[[sources]]\nid = "a"\nurl = "https://example.org/feed"\n'
    for extra, message in [
        (
            'fulltext_selector = "div.post"',
            "fulltext_selector: has no effect without fulltext = true",
        ),
        ('fulltext = true\nfulltext_selector = "div[["', "fulltext_selector: not a CSS selector"),
        ('fulltext = "yes"', "fulltext: Input should be a valid boolean"),
    ]:
        with pytest.raises(config.ConfigError, match=message):
            config.parse(head + extra)
    assert config.parse(head).source_records()[0].options == {}  # unchanged for plain feeds


def test_a_page_too_large_to_search_is_refused_with_its_size() -> None:
    """A page past MAX_PAGE_CHARS is not handed to the extractor (its time grows with the page)."""
    html, why = extract("<p>x</p>" * (MAX_PAGE_CHARS // 8 + 1), "https://example.org/a")
    assert html is None and why.startswith("page too large to search for the article (")


async def test_a_json_feed_gets_its_full_text_too(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """A JSON Feed of summaries (``summary`` only) gets its article text; the summary stays."""
    origin.route("/a/1", page(GB18030))
    items = [{"id": "1", "url": origin.url("/a/1"), "title": "春茶", "summary": "春茶开采了"}]
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "茶", "items": items}
    url = origin.route("/feed.json", Reply(json.dumps(doc), content_type="application/feed+json"))
    settings = settings_for(
        tmp_path, f'[[sources]]\nid = "teasers"\nurl = "{url}"\nfulltext = true\n'
    )
    entries, state = await fetch(settings, clock)
    assert has_article(entries["1"], GB18030) and entries["1"].summary == "春茶开采了"
    assert state.details_missing == 0
