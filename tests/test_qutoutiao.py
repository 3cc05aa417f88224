"""The Qutoutiao adapter: the article list, and each article's content from detail JSON or page."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.errors import ParseError
from aggregator.models import FetchResult, Item, Source
from aggregator.sources import FetchFn
from aggregator.sources.qutoutiao import QutoutiaoAdapter

QTT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "qutoutiao"
LIST_URL = "http://api.1sapp.com/content/outList?cid=1&tn=1&page=1&limit=20"
SOURCE = Source(
    id="qtt-hot",
    url=LIST_URL,
    kind="qutoutiao",
    category=("新媒体", "趣头条", "分类"),
    site_name="趣头条",
    options={"cid": 1, "limit": 20},
)
ARTICLE_1 = "http://html2.qktoutiao.com/detail/2021/12/09/1621234567.html"
ARTICLE_2 = "http://html2.qktoutiao.com/detail/2021/12/09/1621233001.html"

# What the fixture "origin" serves: absolute URL without query -> file. Anything else is a 404.
SERVED = {
    "http://html2.qktoutiao.com/detail/json/1621234567.json": "detail_1621234567.json",
    ARTICLE_1: "article_1621234567.html",
    ARTICLE_2: "article_1621233001.html",
}


def _result(body: bytes, status: int = 200, url: str = LIST_URL) -> FetchResult:
    return FetchResult(url=url, status_code=status, content=body)


def _items() -> tuple[Item, ...]:
    body = (QTT / "outList_cid1.json").read_bytes()
    return QutoutiaoAdapter().parse(SOURCE, _result(body)).items


def _fixture_fetch(log: list[str], served: dict[str, str] = SERVED) -> FetchFn:
    async def fetch(url: str) -> FetchResult:
        log.append(url)
        name = served.get(url.split("?", 1)[0])
        if name is None:
            return FetchResult(url=url, status_code=404, content=b"not found")
        return FetchResult(url=url, status_code=200, content=(QTT / name).read_bytes())

    return fetch


def test_parse_reads_every_list_item() -> None:
    """Each list item becomes an Item keyed by its article URL without the tracking query."""
    first, second = _items()
    assert first.guid == first.link == ARTICLE_1
    assert second.guid == second.link == ARTICLE_2
    assert first.title == '山东潍坊市残联：主动当好残疾人的"小棉袄""店小二""小保姆"'
    assert second.title == "潍坊：冬季供暖保障工作全面启动 | 20万户居民能否温暖过冬?"
    assert first.author == "趣头条" and second.author == "潍坊晚报"
    assert first.summary is not None and first.summary.startswith("今年以来")
    assert first.content is None


def test_parse_times_covers_and_hints() -> None:
    """published is show_time as aware UTC; image is the first cover; extra keeps both URLs."""
    first, _ = _items()
    assert first.published == datetime(2021, 12, 9, 10, 7, 47, tzinfo=UTC)
    assert first.image == (
        "http://static.1sapp.com/qupost/img/2021/12/09/7edb2a9c57b2b7692ea58a9e37283dfd.jpeg"
    )
    assert first.extra["detail_url"] == "http://html2.qktoutiao.com/detail/json/1621234567.json"
    assert first.extra["article_url"] == (
        ARTICLE_1 + "?content_id=1621234567&key=SYNTHETICKEY1&cid=1&cat=1"
    )


def test_author_falls_back_to_source_name() -> None:
    """Without a nickname the author is the item's source_name."""
    body = json.dumps(
        {
            "code": 0,
            "data": {
                "data": [
                    {
                        "url": "http://a.example/1.html?x=1",
                        "source_name": "S",
                        "publish_time": "1639043100000",
                    }
                ]
            },
        }
    ).encode()
    (item,) = QutoutiaoAdapter().parse(SOURCE, _result(body)).items
    assert item.author == "S"
    assert item.published == datetime(2021, 12, 9, 9, 45, tzinfo=UTC)


def test_a_list_item_whose_url_is_not_a_link_is_left_out() -> None:
    """A number, or text that is not an http(s) URL, in an item's url is no link: the item is
    skipped instead of being stored under the key "5"."""
    items = [
        {"url": 5, "title": "five"},
        {"url": "javascript:x", "title": "js"},
        {"url": "http://a.example/1.html", "title": "ok"},
    ]
    body = json.dumps({"code": 0, "data": {"data": items}}).encode()
    parsed = QutoutiaoAdapter().parse(SOURCE, _result(body)).items
    assert [(i.title, i.link) for i in parsed] == [("ok", "http://a.example/1.html")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"code": 1001, "message": "cid invalid", "data": {}}', "code 1001: cid invalid"),
        (b"<html>busy</html>", "not JSON"),
        (b'{"code": 0, "data": {"items": []}}', "no data.data list"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_list_answers_raise_parse_error(body: bytes, message: str) -> None:
    """A non-zero code or a malformed body is a ParseError carrying the reason."""
    with pytest.raises(ParseError, match=message):
        QutoutiaoAdapter().parse(SOURCE, _result(body))


async def test_enrich_takes_the_detail_json() -> None:
    """Content comes from the detail JSON's detail field; the article page is not fetched."""
    first, _ = _items()
    log: list[str] = []
    enriched = await QutoutiaoAdapter().enrich(SOURCE, first, _fixture_fetch(log))
    detail = json.loads((QTT / "detail_1621234567.json").read_bytes())["data"]["detail"]
    assert enriched.content == detail
    assert log == ["http://html2.qktoutiao.com/detail/json/1621234567.json"]
    assert enriched.title == first.title and enriched.guid == first.guid


async def test_enrich_falls_back_to_the_article_page() -> None:
    """Without detail JSON (404) the content is the raw inner HTML of the page's div.content."""
    _, second = _items()
    log: list[str] = []
    enriched = await QutoutiaoAdapter().enrich(SOURCE, second, _fixture_fetch(log))
    assert log == [
        "http://html2.qktoutiao.com/detail/json/1621233001.json",
        ARTICLE_2 + "?content_id=1621233001&key=SYNTHETICKEY2&cid=1&cat=1",
    ]
    assert enriched.content is not None
    assert enriched.content.startswith("<p>12月9日，记者从市住建局获悉")
    assert enriched.content.endswith("<p>（潍坊晚报）</p>")
    assert '<img data-src="/qupost/img/2021/12/09/relative-chart.jpeg" data-size="500,300">' in (
        enriched.content
    )
    assert "<h1>" not in enriched.content  # only div.content, not the page around it


async def test_enrich_ignores_a_detail_json_with_an_error_code() -> None:
    """A detail answer with a non-zero code counts as failed, so the article page is used."""
    _, second = _items()

    async def fetch(url: str) -> FetchResult:
        if url.endswith(".json"):
            return _result(b'{"code": -1, "message": "gone"}', url=url)
        return _result((QTT / "article_1621233001.html").read_bytes(), url=url)

    enriched = await QutoutiaoAdapter().enrich(SOURCE, second, fetch)
    assert enriched.content is not None and "供热管网" in enriched.content


@pytest.mark.parametrize(
    ("encoding", "header"),
    [
        ("utf-8", "text/html; charset=iso-8859-1"),  # mislabelled: valid UTF-8 is UTF-8
        ("gbk", "text/html"),  # no charset: the page's <meta charset>
        ("gb18030", "text/html; charset=gb2312"),  # GB2312 read as its superset
    ],
)
async def test_the_article_page_is_decoded_like_every_page(encoding: str, header: str) -> None:
    """The article page goes through the one page decoder (content/charset.py), so a wrong or
    missing HTTP charset does not garble the text."""
    _, second = _items()
    page = '<html><head><meta charset="gbk"></head><body><div class="content"><p>供热管网·€</p></div></body></html>'
    body = (
        page.encode(encoding, errors="replace")
        if encoding != "gbk"
        else page.replace("€", "").encode("gbk")
    )

    async def fetch(url: str) -> FetchResult:
        if url.endswith(".json"):
            return _result(b'{"code": -1}', url=url)
        return FetchResult(url=url, status_code=200, content=body, headers={"content-type": header})

    enriched = await QutoutiaoAdapter().enrich(SOURCE, second, fetch)
    assert enriched.content is not None and "<p>供热管网·" in enriched.content


async def test_enrich_keeps_the_item_and_says_why_when_both_fail() -> None:
    """When neither the detail JSON nor the article page can be had, the item keeps its content
    and carries both errors (so the detail is retried later)."""
    first, _ = _items()
    log: list[str] = []
    enriched = await QutoutiaoAdapter().enrich(SOURCE, first, _fixture_fetch(log, served={}))
    assert replace(enriched, detail_error=None) == first
    assert enriched.detail_error is not None and enriched.detail_error.count("HTTP 404") == 2
    assert len(log) == 2


def test_adapter_fetches_the_configured_list_url() -> None:
    """The adapter is of kind "qutoutiao" and fetches the source's (effective) list URL as is."""
    adapter = QutoutiaoAdapter()
    assert adapter.kind == "qutoutiao"
    assert adapter.request_url(SOURCE, LIST_URL) == LIST_URL
