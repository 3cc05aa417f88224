"""End to end for Qutoutiao: the real CLI fetches the fixtures through the fake origin acting as
the fetcher's HTTP proxy, exports Hexo posts, and the Atom feed carries the same cleaned content.

The fixture files are served in place from /work/shared/fixtures/qutoutiao/ for the real host
names; there is no detail JSON for item 1621233001 (a 404), so its content must come from its
article page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree
from starlette.applications import Starlette

from aggregator.cli import parser as cli
from aggregator.clock import SystemClock
from aggregator.config import loading as config_mod
from aggregator.http.app import create_app
from aggregator.publish.feeds import FeedService
from aggregator.runtime.daemon import open_configured_store

from .origin import Origin, Reply

QTT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "qutoutiao"
PROXY = "https://cors.zfour.workers.dev/?"
LIST = "http://api.1sapp.com/content/outList"
DETAIL_1 = "http://html2.qktoutiao.com/detail/json/1621234567.json"
DETAIL_2 = "http://html2.qktoutiao.com/detail/json/1621233001.json"
ARTICLE_1 = "http://html2.qktoutiao.com/detail/2021/12/09/1621234567.html"
ARTICLE_2 = "http://html2.qktoutiao.com/detail/2021/12/09/1621233001.html"
SEED_FILE = "山东潍坊市残联：主动当好残疾人的_小棉袄__店小二__小保姆_.md"
PAGE_FILE = "潍坊：冬季供暖保障工作全面启动 _ 20万户居民能否温暖过冬_.md"
ATOM = "{http://www.w3.org/2005/Atom}"


def _serve_fixtures(origin: Origin, list_body: bytes | None = None) -> None:
    """Answer for the real Qutoutiao hosts with the fixture files (no detail JSON for item 2)."""
    body = list_body if list_body is not None else (QTT / "outList_cid1.json").read_bytes()
    origin.route(LIST, Reply(body, content_type="application/json; charset=utf-8"))
    origin.route(
        DETAIL_1,
        Reply((QTT / "detail_1621234567.json").read_bytes(), content_type="application/json"),
    )
    for url, name in (
        (ARTICLE_1, "article_1621234567.html"),
        (ARTICLE_2, "article_1621233001.html"),
    ):
        origin.route(url, Reply((QTT / name).read_bytes(), content_type="text/html; charset=utf-8"))


@pytest.fixture
def config_file(tmp_path: Path, origin: Origin) -> Iterator[Path]:
    _serve_fixtures(origin)
    cfg = tmp_path / "aggregator.toml"
    cfg.write_text(
        "\n".join(
            [
                "[storage]",
                f'url = "sqlite:///{tmp_path / "agg.db"}"',
                "[fetch]",
                f'proxy = "{origin.proxy_url}"',
                "per_host_delay = 0",
                "max_retries = 0",
                "[content]",
                f'image_proxy = "{PROXY}"',
                "[[sources]]",
                'id = "qtt-hot"',
                'kind = "qutoutiao"',
                "cid = 1",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    yield cfg


def _run(*argv: str) -> None:
    assert cli.main(list(argv)) == 0


def _extra_requests(origin: Origin) -> list[str]:
    """The absolute URLs of every detail JSON and article page request the origin saw."""
    urls = [r.headers.get("x-absolute", "") for r in origin.requests]
    return [u for u in urls if u and not u.startswith(LIST)]


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}


def _post_html(post: str) -> str:
    """The cleaned HTML inside a post's ``<div>``, exactly as written."""
    body = post.split("\n---\n", 1)[1]
    return body.split("<div>   \n", 1)[1].rsplit("  \n</div>", 1)[0]


async def _get(app: Starlette, path: str) -> httpx.Response:
    """One request to the app in-process, through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        return await client.get(path)


def test_fetch_and_export_reproduce_the_seed_post(config_file: Path, tmp_path: Path) -> None:
    """`fetch` then `export hexo` writes the post for item 1621234567 byte for byte as the seed."""
    out = tmp_path / "posts"
    _run("--config", str(config_file), "fetch")
    _run("--config", str(config_file), "export", "hexo", "--out", str(out))
    assert (out / SEED_FILE).read_bytes() == (QTT / "expected" / "seed.md").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [SEED_FILE, PAGE_FILE, ".aggregator-hexo.json"]
    )


def test_article_page_post_is_cleaned(config_file: Path, tmp_path: Path, origin: Origin) -> None:
    """Item 1621233001 (no detail JSON) takes its page's div.content, cleaned: no script or
    onclick, the relative lazy image absolute and proxied, the https image left alone."""
    out = tmp_path / "posts"
    _run("--config", str(config_file), "fetch")
    _run("--config", str(config_file), "export", "hexo", "--out", str(out))
    post = (out / PAGE_FILE).read_text(encoding="utf-8")
    assert post.startswith(
        "\n---\ntitle: '潍坊：冬季供暖保障工作全面启动 _ 20万户居民能否温暖过冬_'\n"
    )
    html = _post_html(post)
    assert html.startswith("<p>12月9日，记者从市住建局获悉") and "供热管网改造覆盖" in html
    assert "<script" not in html and "trackView" not in html and "onclick" not in html
    assert "data-src" not in html
    assert (
        f'<img src="{PROXY}http://html2.qktoutiao.com/qupost/img/2021/12/09/relative-chart.jpeg"'
        ' data-size="500,300" referrerpolicy="no-referrer">'
    ) in html
    assert (
        '<img src="https://static-oss.qutoutiao.net/png/2021/12/09/feedbeefcafe.png"'
        ' data-size="320,240" referrerpolicy="no-referrer">'
    ) in html
    assert 'href="http://html2.qktoutiao.com/detail/2021/12/08/1621220000.html"' in html
    assert (
        f"headimg: '{PROXY}http://static.1sapp.com/qupost/img/2021/12/09/0123456789abcdef" in post
    )
    assert DETAIL_2 in _extra_requests(origin)  # tried first, a 404, then the page
    assert any(u.startswith(ARTICLE_2) for u in _extra_requests(origin))
    assert not any(u.startswith(ARTICLE_1) for u in _extra_requests(origin))  # it had detail JSON


def test_second_export_writes_nothing(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exporting twice leaves every file, the manifest included, untouched the second time."""
    out = tmp_path / "posts"
    _run("--config", str(config_file), "fetch")
    _run("--config", str(config_file), "export", "hexo", "--out", str(out))
    before = _snapshot(out)
    capsys.readouterr()
    _run("--config", str(config_file), "export", "hexo", "--out", str(out))
    assert _snapshot(out) == before
    assert "0 written, 2 unchanged" in capsys.readouterr().out


def test_unchanged_items_cost_no_extra_requests(config_file: Path, origin: Origin) -> None:
    """A second fetch of the same list makes no detail or article requests; neither does a list
    whose bytes changed but whose items did not; a retitled item alone is fetched again."""
    _run("--config", str(config_file), "fetch")
    first = len(_extra_requests(origin))
    assert first == 3  # detail 1; detail 2 (404) and page 2
    _run("--config", str(config_file), "fetch")
    assert len(_extra_requests(origin)) == first
    assert len(origin.hits(LIST)) == 2

    data = json.loads((QTT / "outList_cid1.json").read_bytes())
    data["data"]["data"][0]["read_count"] += 1  # counters move on every real list request
    _serve_fixtures(origin, json.dumps(data, ensure_ascii=False).encode("utf-8"))
    _run("--config", str(config_file), "fetch")
    assert len(_extra_requests(origin)) == first

    data["data"]["data"][0]["title"] += "（更新）"
    _serve_fixtures(origin, json.dumps(data, ensure_ascii=False).encode("utf-8"))
    _run("--config", str(config_file), "fetch")
    assert _extra_requests(origin)[first:] == [DETAIL_1]


def test_atom_feed_carries_the_cleaned_entries(config_file: Path, tmp_path: Path) -> None:
    """/feeds/all.atom holds both items with the same cleaned HTML as their Hexo posts."""
    out = tmp_path / "posts"
    _run("--config", str(config_file), "fetch")
    _run("--config", str(config_file), "export", "hexo", "--out", str(out))
    settings = config_mod.load(config_file)
    store = open_configured_store(settings, SystemClock())
    try:
        sources = {s.id: s for s in settings.source_records()}
        app = create_app(FeedService(settings, store, lambda: sources))
        response = asyncio.run(_get(app, "/feeds/all.atom"))
    finally:
        store.close()
    assert response.status_code == 200
    entries = etree.fromstring(response.content).findall(f"{ATOM}entry")
    by_link = {e.find(f"{ATOM}link").get("href"): e for e in entries}
    assert set(by_link) == {ARTICLE_1, ARTICLE_2}
    for link, name in ((ARTICLE_1, SEED_FILE), (ARTICLE_2, PAGE_FILE)):
        content = by_link[link].find(f"{ATOM}content")
        assert content.get("type") == "html"
        assert content.text == _post_html((out / name).read_text(encoding="utf-8"))
    assert "<script" not in by_link[ARTICLE_2].find(f"{ATOM}content").text
