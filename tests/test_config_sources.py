"""Issue 23 for config-defined sources: `remove` on JSON detail content, keys that would have no
effect are config errors, several date formats and relative dates against the fetch time, and
items whose date does not parse reported by `fetch`, `check`, the source's status and the log."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from aggregator.cli import parser as cli
from aggregator.cli import sources as commands
from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.errors import ConfigError
from aggregator.models import FetchResult, FetchStatus
from aggregator.sources.html_page import HtmlAdapter
from aggregator.sources.json_api import JsonAdapter

from .origin import Origin, Reply
from .test_json_source import _enrich, fetch_once, parse, source, stored, write_config

FETCHED = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 in +08:00


async def test_remove_applies_to_json_detail_content(origin: Origin, clock: FakeClock) -> None:
    """`remove` drops its matches from detail content read by a JSON path, as it does for a selector."""
    body = {"data": {"html": '<p>正文</p><div class="share-bar">分享到微博</div>'}}
    origin.route(
        "/api/detail/9",
        Reply(json.dumps(body, ensure_ascii=False), content_type="application/json"),
    )
    url = origin.url("/api/detail/{id}")
    src = source(
        'id = "id"\ntitle = "t"',
        extra=f'detail = {{ url = "{url}", content = "data.html", remove = ["div.share-bar"] }}',
    )
    (item,) = parse(src, {"data": {"list": [{"id": 9, "t": "a"}]}})
    assert (await _enrich(src, item, clock)).content == "<p>正文</p>"


def test_keys_without_effect_are_config_errors() -> None:
    """Date keys on a field that is no date, and timezone beside unit, name source and field."""
    text = (
        '[[sources]]\nid = "news"\nkind = "html"\nurl = "https://a.example/"\nitems = "li"\n'
        '[sources.fields]\ntitle = { selector = "a", format = "%Y" }\n'
        'link = { selector = "a", attr = "href", timezone = "UTC" }\n'
        'published = { selector = "time", attr = "datetime", unit = "s", timezone = "UTC" }\n'
    )
    with pytest.raises(ConfigError) as info:
        config.parse(text, "my.toml")
    assert info.value.problems == [
        "sources[0] (id=news): fields.title.format: has no effect: only published and updated are dates",
        "sources[0] (id=news): fields.link.timezone: has no effect: only published and updated are dates",
        "sources[0] (id=news): fields.published.timezone: has no effect with unit (a Unix time names an instant)",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01 08:00", datetime(2024, 3, 1, 0, 0, tzinfo=UTC)),
        ("Mar 1, 2024", datetime(2024, 2, 29, 16, 0, tzinfo=UTC)),
        ("3 days ago", datetime(2026, 12, 4, 2, 0, tzinfo=UTC)),
        ("an hour ago", datetime(2026, 12, 7, 1, 0, tzinfo=UTC)),
        ("昨天 09:15", datetime(2026, 12, 6, 1, 15, tzinfo=UTC)),
        ("前天 23:00", datetime(2026, 12, 5, 15, 0, tzinfo=UTC)),
        ("3小时前", datetime(2026, 12, 6, 23, 0, tzinfo=UTC)),
        ("5 分钟前", datetime(2026, 12, 7, 1, 55, tzinfo=UTC)),
        ("刚刚", FETCHED),
    ],
)
def test_several_formats_and_relative_dates(value: str, expected: datetime) -> None:
    """A date field tries each of its formats, then relative dates (English and Chinese) against
    the fetch time in the source's zone."""
    src = source(
        'title = "t"\npublished = { path = "d", format = ["%Y-%m-%d %H:%M", "%b %d, %Y"] }'
    )
    body = json.dumps({"data": {"list": [{"t": "x", "d": value}]}}, ensure_ascii=False).encode()
    result = FetchResult(
        url="https://a.example/", status_code=200, content=body, fetched_at=FETCHED
    )
    (item,) = JsonAdapter().parse(src, result).items
    assert item.published == expected


def test_relative_dates_use_the_fields_zone() -> None:
    """`昨天 09:15` is 09:15 yesterday in the field's timezone."""
    src = source('title = "t"\npublished = { path = "d", timezone = "UTC" }')
    body = json.dumps(
        {"data": {"list": [{"t": "x", "d": "昨天 09:15"}]}}, ensure_ascii=False
    ).encode()
    result = FetchResult(
        url="https://a.example/", status_code=200, content=body, fetched_at=FETCHED
    )
    assert JsonAdapter().parse(src, result).items[0].published == datetime(
        2026, 12, 6, 9, 15, tzinfo=UTC
    )


PAGE = """<html><body><ul>
<li><a href="/1">one</a><time>2024-03-01</time></li>
<li><a href="/2">two</a><time>sometime in spring</time></li>
<li><a href="/3">three</a><time>2小时前</time></li>
</ul></body></html>"""

HTML_SOURCE = """
[[sources]]
id = "blog"
kind = "html"
url = "{url}"
items = "li"
[sources.fields]
title = "a"
link = {{ selector = "a", attr = "href" }}
published = {{ selector = "time", format = "%Y-%m-%d" }}
"""


def test_undated_items_are_counted_and_not_newer_than_dated_ones() -> None:
    """An item whose date does not parse is kept, counted with why, and dated like the oldest
    dated item of the page (never above them)."""
    src = config.parse(HTML_SOURCE.format(url="https://a.example/"), "t.toml").source_records()[0]
    result = FetchResult(
        url="https://a.example/", status_code=200, content=PAGE.encode(), fetched_at=FETCHED
    )
    parsed = HtmlAdapter().parse(src, result)
    assert [i.published for i in parsed.items] == [
        datetime(2024, 2, 29, 16, 0, tzinfo=UTC),
        datetime(2024, 2, 29, 16, 0, tzinfo=UTC),
        datetime(2026, 12, 7, 0, 0, tzinfo=UTC),
    ]
    (why,) = parsed.undated
    assert why.startswith("fields.published: 'sometime in spring' matches no format ('%Y-%m-%d')")


async def test_undated_items_reported_by_fetch_check_status_and_log(
    origin: Origin, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`fetch` counts undated items, the source's status carries the note (kept over a 304), the
    log has a line, and `check` prints the count."""
    url = origin.route("/blog", Reply(PAGE, content_type="text/html; charset=utf-8", etag='"v1"'))
    settings = config.load(write_config(tmp_path, HTML_SOURCE.format(url=url)))
    with caplog.at_level(logging.WARNING):
        (outcome,) = await fetch_once(settings, clock)
    assert (outcome.status, outcome.added, outcome.undated) == (FetchStatus.OK, 3, 1)
    assert any(
        "event=undated" in r.getMessage() and "items=1" in r.getMessage() for r in caplog.records
    )
    _, state = stored(settings, "blog", clock)
    assert state.last_error is not None
    assert state.last_error.startswith("undated: 1 item's date did not parse")
    (again,) = await fetch_once(settings, clock)
    assert again.status is FetchStatus.NOT_MODIFIED
    assert stored(settings, "blog", clock)[1].last_error == state.last_error

    out = StringIO()
    assert await commands.dry_run(settings, "blog", Console(file=out, width=300), clock=clock) == 0
    assert "1 undated — undated: 1 item's date did not parse" in out.getvalue()


def test_fetch_command_shows_the_undated_count(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`aggregator fetch` has an undated column with the count when a fetch had undated items."""
    url = origin.route("/blog", Reply(PAGE, content_type="text/html; charset=utf-8"))
    path = write_config(tmp_path, HTML_SOURCE.format(url=url))
    assert cli.main(["--config", str(path), "fetch"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "undated" in line)
    row = next(line for line in out.splitlines() if "blog" in line)
    cells = [c.strip() for c in row.strip("│┃ ").split("│")]
    names = [c.strip() for c in header.strip("│┃ ").split("┃")]
    assert cells[names.index("undated")] == "1"
