"""The json source kind: paths, fields, dates, links, detail documents, config mistakes reported
per field with a sample, and the whole pipeline (retries, 304, cleaning, categories) on the origin."""

from __future__ import annotations

import codecs
import json
from dataclasses import replace
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from aggregator.cli import sources as commands
from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.config.settings import FetchSettings, Settings
from aggregator.errors import ConfigError, ParseError
from aggregator.fetch import Fetcher
from aggregator.models import (
    Entry,
    FetchOutcome,
    FetchResult,
    FetchStatus,
    Item,
    Selection,
    Source,
    SourceState,
)
from aggregator.sources.json_api import JsonAdapter, compile_path, lookup
from aggregator.store import open_store

from .origin import Origin, Reply, Sequence_

LIST_URL = "https://api.example.com/v1/news/list?page=1"


def source(fields: str, items: str = "data.list", extra: str = "", url: str = LIST_URL) -> Source:
    """A json source from the TOML of its kind-specific keys, validated as the config does."""
    text = (
        f'[[sources]]\nid = "s"\nkind = "json"\nurl = "{url}"\ncategory = "测试 / JSON"\n'
        f"items = {json.dumps(items)}\n{extra}\n[sources.fields]\n{fields}\n"
    )
    return config.parse(text, "t.toml").source_records()[0]


def parse(
    src: Source, doc: Any, url: str = LIST_URL, ctype: str = "application/json"
) -> tuple[Item, ...]:
    body = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    result = FetchResult(url=url, status_code=200, content=body, headers={"content-type": ctype})
    return JsonAdapter().parse(src, result).items


def test_paths_keys_indexes_stars_and_quoted_keys() -> None:
    """Dotted keys, [n] (negative from the end), [*] and ["a.b"] reach what they name."""
    doc = {"a": {"b.c": [{"x": 1}, {"x": 2}, {"x": 3}]}}
    assert lookup(doc, compile_path('a["b.c"][1].x'))[0] == [2]
    assert lookup(doc, compile_path('a["b.c"][-1].x'))[0] == [3]
    assert lookup(doc, compile_path('a["b.c"][*].x'))[0] == [1, 2, 3]
    assert lookup(doc, compile_path(""))[0] == [doc]
    found, why = lookup(doc, compile_path("a.b"))
    assert found == [] and "no key 'b' (keys: b.c)" in why


def test_fields_from_nested_items() -> None:
    """Each mapped field is read from its path; lists give their first element or, for
    categories, every element; links and images are made absolute against the list URL."""
    src = source(
        'id = "id"\ntitle = "title"\nlink = "share.url"\nimage = "covers"\n'
        'author = ["user.nick", "source"]\ncategories = "tags[*].name"\nsummary = "brief"\n'
        'published = { path = "ts", unit = "ms" }'
    )
    doc = {
        "data": {
            "list": [
                {
                    "id": 42,
                    "title": "  标题\n 一 ",
                    "share": {"url": "/news/42.html"},
                    "covers": ["//img.example.com/1.jpg", "x"],
                    "source": "新华社",
                    "tags": [{"name": "科技"}, {"name": "AI"}, {"name": "科技"}],
                    "brief": "摘要",
                    "ts": 1735781400000,
                }
            ]
        }
    }
    (item,) = parse(src, doc)
    assert item.guid == "42" and item.title == "标题 一"
    assert item.link == "https://api.example.com/news/42.html"
    assert item.image == "https://img.example.com/1.jpg"
    assert item.author == "新华社"
    assert item.categories == ("科技", "AI")
    assert item.summary == "摘要"
    assert item.published == datetime(2025, 1, 2, 1, 30, tzinfo=UTC)


def test_root_array_and_link_template() -> None:
    """items = "" reads a bare array; a template builds the link from the item's values."""
    src = source(
        'title = "t"\nlink = { template = "https://site.example/p/{id}?from={meta.ch}" }', items=""
    )
    (item,) = parse(src, [{"id": 7, "t": "x", "meta": {"ch": "科技 频道"}}])
    assert item.link == "https://site.example/p/7?from=%E7%A7%91%E6%8A%80%20%E9%A2%91%E9%81%93"


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ('{ path = "d", unit = "s" }', 1735781400, datetime(2025, 1, 2, 1, 30, tzinfo=UTC)),
        ('{ path = "d", unit = "ms" }', "1735781400000", datetime(2025, 1, 2, 1, 30, tzinfo=UTC)),
        ('{ path = "d", unit = "us" }', 1735781400000000, datetime(2025, 1, 2, 1, 30, tzinfo=UTC)),
        (
            '{ path = "d", format = "%Y%m%d%H%M" }',
            "202501020930",
            datetime(2025, 1, 2, 1, 30, tzinfo=UTC),
        ),
        (
            '{ path = "d", format = "%Y-%m-%d %H:%M", timezone = "UTC" }',
            "2025-01-02 09:30",
            datetime(2025, 1, 2, 9, 30, tzinfo=UTC),
        ),
        (
            '{ path = "d", format = "%d/%m/%Y %H:%M", timezone = "Europe/Berlin" }',
            "02/01/2025 09:30",
            datetime(2025, 1, 2, 8, 30, tzinfo=UTC),
        ),
        ('"d"', "2025-01-02T09:30:00+08:00", datetime(2025, 1, 2, 1, 30, tzinfo=UTC)),
        ('"d"', "2025年1月2日 09:30", datetime(2025, 1, 2, 1, 30, tzinfo=UTC)),
        (
            '{ path = "d", pattern = "发布于(.+)$" }',
            "发布于 2025-01-02 09:30",
            datetime(2025, 1, 2, 1, 30, tzinfo=UTC),
        ),
    ],
)
def test_dates_by_unit_format_or_auto(spec: str, value: Any, expected: datetime) -> None:
    """Dates are read by epoch unit, by strptime format in the given zone (default +08:00),
    or in any form the date parser knows; a pattern can cut the date out of a longer text."""
    (item,) = parse(
        source(f'title = "t"\npublished = {spec}'), {"data": {"list": [{"t": "x", "d": value}]}}
    )
    assert item.published == expected


def test_absent_items_path_says_where_it_stopped() -> None:
    """A wrong items path is a ParseError naming the key that is missing and the keys present."""
    with pytest.raises(ParseError) as info:
        parse(source('title = "t"', items="data.items"), {"code": 0, "data": {"list": []}})
    assert (
        "items: path 'data.items' found nothing: at 'data.items': no key 'items' (keys: list)"
        in str(info.value)
    )


def test_items_path_to_an_object_is_a_mistake() -> None:
    """An items path that reaches an object, not a list, says so and shows it."""
    with pytest.raises(
        ParseError, match=r"items: path 'data' is an object, not a list: \{\"list\""
    ):
        parse(source('title = "t"', items="data"), {"data": {"list": []}})


def test_empty_list_is_no_items_not_an_error() -> None:
    """An existing but empty list is a quiet day, not a config mistake."""
    assert parse(source('title = "t"'), {"data": {"list": []}}) == ()


def test_field_found_in_no_item_is_reported_with_a_sample() -> None:
    """A field whose path finds nothing in any item names the field, the path, the keys and item 0."""
    with pytest.raises(ParseError) as info:
        parse(
            source('title = "titel"\nlink = "url"'),
            {"data": {"list": [{"title": "a", "url": "/1"}]}},
        )
    message = str(info.value)
    assert message.startswith(
        "fields.title: path 'titel' found nothing: at 'titel': no key 'titel' (keys: title, url)"
    )
    assert '(in all 1 items; item 0: {"title": "a", "url": "/1"})' in message


def test_date_that_does_not_parse_is_reported_with_value_and_item() -> None:
    """A date that parses in no item is reported with the value and a sample of the item."""
    doc = {"data": {"list": [{"t": "a", "d": "yesterday"}, {"t": "b", "d": "昨天"}]}}
    with pytest.raises(ParseError) as info:
        parse(source('title = "t"\npublished = "d"'), doc)
    assert str(info.value) == (
        "fields.published: 'yesterday' is not a date (give format or unit) "
        '(item 0: {"t": "a", "d": "yesterday"})'
    )


def test_wrong_epoch_unit_is_named() -> None:
    """Seconds read as milliseconds land in 1970, which is reported as a probable wrong unit."""
    with pytest.raises(
        ParseError,
        match=r"fields.published: '1735781400' in milliseconds is 1970-01-21; wrong unit\?",
    ):
        parse(
            source('title = "t"\npublished = { path = "d", unit = "ms" }'),
            {"data": {"list": [{"t": "a", "d": 1735781400}]}},
        )


def test_every_faulty_field_is_named_at_once() -> None:
    """Several mistakes in one source are reported together, one clause per field."""
    with pytest.raises(ParseError) as info:
        parse(source('title = "x"\nlink = "y"\nauthor = "u.n"'), {"data": {"list": [{"u": "s"}]}})
    message = str(info.value)
    assert "fields.title:" in message and "fields.link:" in message
    assert "fields.author: path 'u.n' found nothing: at 'u.n': a string, not an object" in message


def test_value_bad_in_some_items_is_dropped_there_only() -> None:
    """A value that fails in one item but not the others only leaves that item without it (an
    undated item is then dated like the oldest dated one)."""
    doc = {
        "data": {
            "list": [{"t": "a", "d": "2025-01-02 09:30"}, {"t": "b", "d": "soon"}],
            "more": [{"t": "c", "l": "/c"}, {"t": "d", "l": "mailto:d@example.com"}],
        }
    }
    first, second = parse(source('title = "t"\npublished = "d"'), doc)
    assert first.published == datetime(2025, 1, 2, 1, 30, tzinfo=UTC)
    assert second.published == first.published and second.title == "b"
    third, fourth = parse(source('title = "t"\nlink = "l"', items="data.more"), doc)
    assert third.link == "https://api.example.com/c" and fourth.link is None and fourth.title == "d"


def test_optional_field_may_be_absent_everywhere() -> None:
    """optional = true lets a field be missing from every item."""
    (item,) = parse(
        source('title = "t"\nimage = { path = "pic", optional = true }'),
        {"data": {"list": [{"t": "a"}]}},
    )
    assert item.image is None


def test_objects_where_text_is_expected_are_reported() -> None:
    """A path to an object for a text field says it found an object."""
    with pytest.raises(
        ParseError, match=r'fields.title: found \{"zh": "a"\}, not text or a number'
    ):
        parse(source('title = "t"'), {"data": {"list": [{"t": {"zh": "a"}}]}})


def test_bom_gbk_and_jsonp_bodies() -> None:
    """A UTF-8 BOM, a GBK body labelled as such and a JSONP wrapper are all read."""
    src = source('title = "t"')
    text = json.dumps({"data": {"list": [{"t": "中文标题"}]}}, ensure_ascii=False)
    assert parse(src, codecs.BOM_UTF8 + text.encode())[0].title == "中文标题"
    assert (
        parse(src, text.encode("gbk"), ctype="application/json; charset=GBK")[0].title == "中文标题"
    )
    assert parse(src, f"cb_123({text});".encode())[0].title == "中文标题"


def test_not_json_is_a_parse_error_showing_the_start() -> None:
    """An HTML error page where JSON was expected is reported with its first characters."""
    with pytest.raises(ParseError, match=r"not JSON: .*the answer starts '<html><body>系统繁忙"):
        parse(source('title = "t"'), "<html><body>系统繁忙</body></html>".encode())


def test_config_mistakes_name_file_source_and_field() -> None:
    """Bad paths, units, zones and missing keys are config errors naming file, source and field."""
    text = (
        '[[sources]]\nid = "news"\nkind = "json"\nurl = "https://a.example/"\nitems = "data..list"\n'
        '[sources.fields]\ntitle = { path = "t", template = "x" }\n'
        'published = { path = "d", unit = "days" }\nlink = { path = "u", timezone = "Mars/Base" }\n'
        'colour = "red"\n'
    )
    with pytest.raises(ConfigError) as info:
        config.parse(text, "my.toml")
    problems = info.value.problems
    assert info.value.path == "my.toml"
    assert any(
        p.startswith("sources[0] (id=news): items: not a path: 'data..list'") for p in problems
    )
    assert "sources[0] (id=news): fields.title: give either path or template" in problems
    assert any(
        p.startswith("sources[0] (id=news): fields.published.unit: Input should be 's'")
        for p in problems
    )
    assert any(
        p.startswith("sources[0] (id=news): fields.link.timezone: not a time zone")
        for p in problems
    )
    assert "sources[0] (id=news): fields.colour: unknown key" in problems
    assert len(problems) == len(set(problems)) == 5


def test_json_source_needs_url_items_and_fields() -> None:
    """A json source without url, items or fields is a config error saying which."""
    with pytest.raises(ConfigError) as info:
        config.parse('[[sources]]\nid = "x"\nkind = "json"\n', "c.toml")
    problems = info.value.problems
    assert "sources[0] (id=x): items: Field required" in problems
    assert "sources[0] (id=x): fields: Field required" in problems


# --- detail documents, through a real fetcher on the origin ---------------------------------------


async def _enrich(src: Source, item: Item, clock: FakeClock) -> Item:
    async with Fetcher(
        FetchSettings(allow_private_networks=True, per_host_delay=0, max_retries=0), clock
    ) as f:
        return await JsonAdapter().enrich(src, item, f.fetch)


async def test_detail_json_by_url_template(origin: Origin, clock: FakeClock) -> None:
    """The detail URL template is filled from the list item; the content path is read there."""
    origin.route(
        "/api/detail/9", Reply('{"data": {"html": "<p>全文</p>"}}', content_type="application/json")
    )
    src = source(
        'id = "id"\ntitle = "t"',
        extra=f'detail = {{ url = "{origin.url("/api/detail/{id}")}", content = "data.html" }}',
    )
    (item,) = parse(src, {"data": {"list": [{"id": 9, "t": "a"}]}})
    assert item.extra["detail_url"] == origin.url("/api/detail/9")
    assert (await _enrich(src, item, clock)).content == "<p>全文</p>"


async def test_detail_html_page_by_selector(origin: Origin, clock: FakeClock) -> None:
    """Without a URL template the detail is the item's link; a selector takes the content there."""
    page = '<html><body><div class="post"><p>正文</p><div class="ad">广告</div></div></body></html>'
    origin.route("/a/1.html", Reply(page, content_type="text/html; charset=utf-8"))
    src = source(
        'title = "t"\nlink = "u"', extra='detail = { selector = "div.post", remove = ["div.ad"] }'
    )
    (item,) = parse(
        src, {"data": {"list": [{"t": "a", "u": "/a/1.html"}]}}, url=origin.url("/list")
    )
    assert (await _enrich(src, item, clock)).content == "<p>正文</p>"


async def test_failed_or_unusable_detail_keeps_the_item(origin: Origin, clock: FakeClock) -> None:
    """A 404 detail, or one where the content path finds nothing, leaves the item's content as it
    was and says why (so the detail is retried later)."""
    origin.route("/d/2", Reply('{"data": {}}', content_type="application/json"))
    src = source(
        'id = "id"\ntitle = "t"',
        extra=f'detail = {{ url = "{origin.url("/d/{id}")}", content = "data.html" }}',
    )
    items = parse(src, {"data": {"list": [{"id": 1, "t": "a"}, {"id": 2, "t": "b"}]}})
    errors = []
    for item in items:
        enriched = await _enrich(src, item, clock)
        assert replace(enriched, detail_error=None) == item
        errors.append(enriched.detail_error)
    assert errors[0] == f"{origin.url('/d/1')}: HTTP 404 Not Found"
    assert errors[1] is not None and errors[1].startswith(
        f"{origin.url('/d/2')}: detail unusable: "
    )


def test_detail_template_finding_nothing_is_reported() -> None:
    """A detail URL template whose placeholder is in no item is reported as detail.url."""
    src = source(
        'title = "t"', extra='detail = { url = "https://a.example/d/{aid}", content = "body" }'
    )
    with pytest.raises(
        ParseError, match=r"detail.url: template \{aid\} found nothing: at 'aid': no key 'aid'"
    ):
        parse(src, {"data": {"list": [{"t": "a", "id": 1}]}})


# --- the whole pipeline ---------------------------------------------------------------------------


def write_config(tmp: Path, body: str, **fetch: Any) -> Path:
    """A config file: a temporary SQLite store, fetch settings for the origin, then ``body``."""
    options = {"allow_private_networks": True, "per_host_delay": 0, "max_retries": 1, **fetch}
    lines = ["[storage]", f'url = "sqlite:///{tmp / "agg.db"}"', "[fetch]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    path = tmp / "aggregator.toml"
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
    return path


async def fetch_once(settings: Settings, clock: FakeClock) -> list[FetchOutcome]:
    """Every configured source fetched once through the real pipeline, as `aggregator fetch` does."""
    return await commands.fetch_all(settings, settings.source_records(), clock=clock)


def stored(settings: Settings, source_id: str, clock: FakeClock) -> tuple[list[Entry], SourceState]:
    store = open_store(settings.storage.url, clock.now())
    try:
        state = store.get_state(source_id)
        assert state is not None
        return store.list_entries(Selection(source_ids=(source_id,), limit=100)), state
    finally:
        store.close()


PIPELINE_SOURCE = """
[[sources]]
id = "api"
kind = "json"
url = "{url}"
category = "科技 / 接口"
items = "data.items"

[sources.fields]
id = "id"
title = "title"
link = "path"
content = "html"
published = {{ path = "time", unit = "s" }}
categories = "tags"
"""

PIPELINE_DOC = {
    "data": {
        "items": [
            {
                "id": 1,
                "title": "第一条",
                "path": "/p/1",
                "html": '<p>正文<img data-src="/i/1.png"></p><script>x()</script>',
                "time": 1735781400,
                "tags": ["数据库"],
            },
            {
                "id": 2,
                "title": "第二条",
                "path": "/p/2",
                "html": "<p>二</p>",
                "time": 1735781500,
                "tags": [],
            },
        ]
    }
}


async def test_pipeline_retries_cleans_categorizes_and_gets_304(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """Through the pipeline a json source is retried after a 500, its content cleaned (scripts
    gone, lazy images and links absolute), categorized, stored, and fetched again with 304."""
    body = json.dumps(PIPELINE_DOC, ensure_ascii=False)
    good = Reply(body, content_type="application/json", etag='"v1"')
    url = origin.route("/api/list", Sequence_(Reply("busy", status=500), good))
    settings = config.load(write_config(tmp_path, PIPELINE_SOURCE.format(url=url)))

    (first,) = await fetch_once(settings, clock)
    assert (first.status, first.added, first.error) == (FetchStatus.OK, 2, None)
    entries, state = stored(settings, "api", clock)
    by_key = {e.key: e for e in entries}
    one = by_key["1"]
    assert one.link == origin.url("/p/1") and one.category_path == ("科技", "接口")
    assert one.categories == ("数据库",)
    assert "<script" not in (one.content or "") and f'src="{origin.url("/i/1.png")}"' in (
        one.content or ""
    )
    assert one.published == datetime(2025, 1, 2, 1, 30, tzinfo=UTC)
    assert state.etag == '"v1"' and len(origin.hits("/api/list")) == 2

    (second,) = await fetch_once(settings, clock)
    assert second.status is FetchStatus.NOT_MODIFIED
    assert origin.hits("/api/list")[-1].headers.get("if-none-match") == '"v1"'
    assert len(stored(settings, "api", clock)[0]) == 2


async def test_pipeline_keeps_known_items_and_adds_new_ones(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """A changed list adds only its new item; items seen before are not stored twice."""
    doc2 = {
        "data": {
            "items": [
                {
                    "id": 3,
                    "title": "第三条",
                    "path": "/p/3",
                    "html": "<p>三</p>",
                    "time": 1735781600,
                    "tags": [],
                },
                *PIPELINE_DOC["data"]["items"],
            ]
        }
    }
    url = origin.route(
        "/api/list",
        Sequence_(
            Reply(json.dumps(PIPELINE_DOC), content_type="application/json"),
            Reply(json.dumps(doc2), content_type="application/json"),
        ),
    )
    settings = config.load(write_config(tmp_path, PIPELINE_SOURCE.format(url=url)))
    assert (await fetch_once(settings, clock))[0].added == 2
    again = (await fetch_once(settings, clock))[0]
    assert (again.added, again.updated) == (1, 0)
    assert sorted(e.key for e in stored(settings, "api", clock)[0]) == ["1", "2", "3"]


async def test_config_mistake_is_the_sources_last_error_and_shown_by_check(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """A path that fits the config but not the answer becomes the source's last error, and
    `aggregator check --source` prints it with the field and a sample."""
    url = origin.route(
        "/api/list", Reply(json.dumps(PIPELINE_DOC), content_type="application/json")
    )
    text = PIPELINE_SOURCE.format(url=url).replace('title = "title"', 'title = "headline"')
    settings = config.load(write_config(tmp_path, text))
    (outcome,) = await fetch_once(settings, clock)
    assert outcome.status is FetchStatus.ERROR
    _, state = stored(settings, "api", clock)
    assert state.last_error is not None and state.last_error.startswith(
        "fields.title: path 'headline' found nothing"
    )

    out = StringIO()
    code = await commands.dry_run(settings, "api", Console(file=out, width=400), clock=clock)
    assert code == 1
    assert (
        "fields.title: path 'headline' found nothing: at 'headline': no key 'headline'"
        in out.getvalue()
    )
