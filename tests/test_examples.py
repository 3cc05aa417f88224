"""The example configs in config/examples/: each loads as shipped and, pointed at the fake origin
(used as the HTTP proxy, so the sites' own URLs are requested), turns a saved response in the
shape of the site's real one (tests/data/sites/, written for these tests) into the expected entries.

The origin is a plain HTTP proxy (no CONNECT tunnels), so the runs read each example with its
https:// URLs as http:// and serve the saved documents with their links rewritten the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.models import Entry, FetchOutcome, FetchStatus

from .conftest import REPO
from .origin import Origin, Reply
from .test_json_source import fetch_once, stored, write_config

EXAMPLES = REPO / "config" / "examples"
SITES = Path(__file__).resolve().parent / "data" / "sites"
JSON = "application/json; charset=UTF-8"
HTML = "text/html; charset=utf-8"


def plain(text: str) -> str:
    return text.replace("https://", "http://")


async def run_example(
    name: str, routes: dict[str, tuple[str, str]], origin: Origin, tmp: Path, clock: FakeClock
) -> tuple[FetchOutcome, dict[str, Entry]]:
    """Load the example as shipped, then fetch it once through the origin as proxy; return the
    outcome and the stored entries by link."""
    shipped = config.load(EXAMPLES / f"{name}.toml")
    assert len(shipped.sources) == 1 and shipped.sources[0].url.startswith("https://")
    for url, (fixture, ctype) in routes.items():
        origin.route(
            url, Reply(plain((SITES / fixture).read_text(encoding="utf-8")), content_type=ctype)
        )
    text = plain((EXAMPLES / f"{name}.toml").read_text(encoding="utf-8"))
    settings = config.load(write_config(tmp, text, proxy=origin.proxy_url, max_retries=0))
    (outcome,) = await fetch_once(settings, clock)
    entries, _state = stored(settings, shipped.sources[0].id, clock)
    return outcome, {e.link or e.key: e for e in entries}


def _ok(outcome: FetchOutcome, added: int) -> None:
    assert (outcome.status, outcome.error, outcome.added) == (FetchStatus.OK, None, added)


async def test_zhihu_daily(origin: Origin, clock: FakeClock, tmp_path: Path) -> None:
    """知乎日报: stories from the list, full text from each story's detail API, author from hint."""
    outcome, entries = await run_example(
        "zhihu-daily",
        {
            "http://news-at.zhihu.com/api/4/news/latest": ("zhihu-daily-latest.json", JSON),
            "http://news-at.zhihu.com/api/4/news/9770001": ("zhihu-daily-story-9770001.json", JSON),
            "http://news-at.zhihu.com/api/4/news/9770002": ("zhihu-daily-story-9770002.json", JSON),
        },
        origin,
        tmp_path,
        clock,
    )
    _ok(outcome, 2)
    stars = entries["http://daily.zhihu.com/story/9770001"]
    assert (stars.key, stars.title, stars.author) == (
        "9770001",
        "为什么冬天的星空看起来格外明亮？",
        "李天文",
    )
    assert (
        stars.content is not None
        and "冬季空气干燥" in stars.content
        and "<script" not in stars.content
    )
    assert stars.category_path == ("阅读", "知乎日报")
    assert stars.image is not None and stars.image.startswith("http://pic1.zhimg.com/v2-5a1c0e1f")
    column = entries["http://daily.zhihu.com/story/9770002"]
    assert column.author is None and "火车开动" in (column.content or "")


async def test_v2ex_latest(origin: Origin, clock: FakeClock, tmp_path: Path) -> None:
    """V2EX: a bare array of topics, Unix-second times, nested author and node fields."""
    outcome, entries = await run_example(
        "v2ex-latest",
        {
            "http://www.v2ex.com/api/topics/latest.json": ("v2ex-topics-latest.json", JSON),
        },
        origin,
        tmp_path,
        clock,
    )
    _ok(outcome, 2)
    wal = entries["http://www.v2ex.com/t/1100001"]
    assert (wal.key, wal.author, wal.categories) == ("1100001", "tinyfox", ("程序员",))
    assert wal.published == datetime(2025, 1, 2, 1, 6, 40, tzinfo=UTC)
    assert wal.content is not None and "<code>database is locked</code>" in wal.content
    podcasts = entries["http://www.v2ex.com/t/1100000"]
    assert "<script" not in (podcasts.content or "") and podcasts.categories == ("分享发现",)


async def test_cnbeta(origin: Origin, clock: FakeClock, tmp_path: Path) -> None:
    """cnBeta: article blocks on the front page (ad blocks skipped), protocol-relative links,
    lazy images, dates cut out of the status line, full text from the article page."""
    outcome, entries = await run_example(
        "cnbeta",
        {
            "http://www.cnbeta.com.tw/": ("cnbeta-index.html", HTML),
            "http://www.cnbeta.com.tw/articles/tech/1400001.htm": (
                "cnbeta-article-1400001.htm",
                HTML,
            ),
        },
        origin,
        tmp_path,
        clock,
    )
    _ok(outcome, 2)
    db = entries["http://www.cnbeta.com.tw/articles/tech/1400001.htm"]
    assert db.title == "国产开源数据库发布 5.0 版本 写入性能提升一倍"
    assert db.published == datetime(2025, 1, 2, 1, 30, tzinfo=UTC)
    assert db.categories == ("软件",) and db.category_path == ("科技", "业界")
    assert (
        db.image == "http://static.cnbetacdn.com/thumb/mini/article/2025/0102/a1b2c3d4e5f60718.jpg"
    )
    content = db.content or ""
    assert "写入吞吐提升一倍" in content and "广告" not in content and "cnbetaTrack" not in content
    assert 'src="http://static.cnbetacdn.com/article/2025/0102/a1b2c3d4e5f60718.jpg"' in content
    assert 'href="http://www.cnbeta.com.tw/articles/tech/1399000.htm"' in content
    ice = entries["http://www.cnbeta.com.tw/articles/science/1400000.htm"]
    assert (
        ice.content is None and ice.summary is not None and "冰芯" in ice.summary
    )  # its page: 404


async def test_oschina(origin: Origin, clock: FakeClock, tmp_path: Path) -> None:
    """开源中国: news items with author and Shanghai-time dates; full text without the ad block."""
    outcome, entries = await run_example(
        "oschina",
        {
            "http://www.oschina.net/news/industry": ("oschina-news-industry.html", HTML),
            "http://www.oschina.net/news/270001/rust-1-84-released": (
                "oschina-news-270001.html",
                HTML,
            ),
        },
        origin,
        tmp_path,
        clock,
    )
    _ok(outcome, 2)
    rust = entries["http://www.oschina.net/news/270001/rust-1-84-released"]
    assert (rust.title, rust.author) == ("Rust 1.84.0 发布", "局长")
    assert rust.published == datetime(2025, 1, 10, 2, 6, tzinfo=UTC)
    assert "MSRV 感知的依赖解析器" in (rust.content or "") and "活动推广" not in (
        rust.content or ""
    )
    pg = entries["http://www.oschina.net/news/270000/postgresql-17-2"]
    assert pg.author == "白开水不加糖" and pg.image is None


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_every_example_is_valid_as_shipped(path: Path) -> None:
    """Each example file loads without a config error and uses one of the two site kinds."""
    settings = config.load(path)
    assert settings.sources and all(s.kind in ("json", "html") for s in settings.sources)
