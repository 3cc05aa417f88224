"""Static build: every feed written as files, byte for byte what the server sends."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from aggregator.cli import parser as cli
from aggregator.publish.build import build_site

from .feedworld import BASE, SOURCES, World, make_world

OPERATOR = """
[[feeds]]
id = "digest"
title = "Digest"
sources = ["hn", "py"]
formats = ["atom"]
"""
ODD = """
[[sources]]
id = "odd"
url = "https://odd.example.org/feed"
category = ".. / etc"
"""


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path, OPERATOR)
    w.add("hn", 7)
    w.add("py", 2)
    w.add("ruan", 1)
    return w


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


PAGED = ("all", "source/hn", "category/Tech", "category/Tech/News")  # more than 5 entries


def test_build_writes_every_feed_in_every_format(world: World, tmp_path: Path) -> None:
    """all, each source, each category path and each operator feed, in each of its formats, the
    second pages of long feeds, the OPML and the index page."""
    out = tmp_path / "site"
    build_site(world.feeds, out)
    expected = {"opml.xml", "index.html", "feeds/digest.atom", "feeds/digest.page-2.atom"}
    for name in (
        "all",
        "source/hn",
        "source/py",
        "source/ruan",
        "category/Tech",
        "category/Tech/News",
        "category/Tech/Python",
        "category/科技",
        "category/科技/博客",
    ):
        expected |= {f"feeds/{name}.{fmt}" for fmt in ("rss", "atom", "json")}
    expected |= {f"feeds/{name}.page-2.{fmt}" for name in PAGED for fmt in ("rss", "atom", "json")}
    assert files(out) == expected


def test_built_files_have_the_bytes_the_server_sends(world: World, tmp_path: Path) -> None:
    """Each file equals the uncompressed body of a GET of the same URL path."""
    out = tmp_path / "site"
    build_site(world.feeds, out)
    client = world.client()
    for name in files(out) - {"opml.xml", "index.html"}:
        if ".page-" in name:
            continue
        reply = client.get("/" + name, headers={"Accept-Encoding": "identity"})
        assert reply.status_code == 200, name
        stem, fmt = name.rsplit(".", 1)
        server_next = re.escape(f"{BASE}/{stem}.{fmt}") + r"\?before=[A-Za-z0-9_-]+"
        expected = re.sub(
            server_next.encode(), f"{BASE}/{stem}.page-2.{fmt}".encode(), reply.content
        )
        assert (out / name).read_bytes() == expected, name
    opml = client.get("/opml", headers={"Accept-Encoding": "identity"}).content
    assert (out / "opml.xml").read_bytes() == opml


def test_a_second_build_leaves_unchanged_files_alone(world: World, tmp_path: Path) -> None:
    """Rebuilding without changes writes nothing; a new entry rewrites only the feeds it is in."""
    out = tmp_path / "site"
    first = build_site(world.feeds, out)
    second = build_site(world.feeds, out)
    assert second.written == [] and len(second.unchanged) == len(first.written)
    world.add("py", 1)
    third = build_site(world.feeds, out)
    rewritten = {
        re.sub(r"\.page-\d+", "", str(p.relative_to(out.resolve()))) for p in third.written
    }
    assert rewritten == {
        f"feeds/{n}.{f}"
        for n in ("all", "source/py", "category/Tech", "category/Tech/Python")
        for f in ("rss", "atom", "json")
    } | {"feeds/digest.atom"}


def _static_get(out: Path, url: str) -> Path:
    """The file a static host serves for ``url``: its path under ``out``, the query ignored."""
    path = unquote(urlsplit(url).path).lstrip("/")
    return out / path / "index.html" if path.endswith("/") or not path else out / path


def test_static_next_links_walk_every_entry_once_on_a_static_host(
    world: World, tmp_path: Path
) -> None:
    """Following next_url as a static host answers it (the query ignored) visits every entry of
    the feed once and ends; Atom's rel=next names the same page file."""
    out = tmp_path / "site"
    world.add("hn", 8)  # 18 entries: pages of 5
    build_site(world.feeds, out)
    seen: list[str] = []
    url: str | None = f"{BASE}/feeds/all.json"
    pages = 0
    while url is not None and pages < 50:
        doc = json.loads(_static_get(out, url).read_bytes())
        seen += [item["id"] for item in doc["items"]]
        url, pages = doc.get("next_url"), pages + 1
    assert pages == 4 and len(seen) == len(set(seen)) == 18
    assert f'href="{BASE}/feeds/all.page-2.atom" rel="next"' in (out / "feeds/all.atom").read_text()
    assert (
        f'href="{BASE}/feeds/all.page-3.atom" rel="self"'
        in (out / "feeds/all.page-3.atom").read_text()
    )


def test_every_feeds_html_alternate_is_a_file_of_the_build(world: World, tmp_path: Path) -> None:
    """The HTML alternate (home page) link of each feed names a file the build wrote: the index,
    which links each feed file."""
    out = tmp_path / "site"
    build_site(world.feeds, out)
    homes = {
        json.loads((out / name).read_bytes())["home_page_url"]
        for name in files(out)
        if name.endswith(".json")
    }
    (home,) = homes
    index = _static_get(out, home)
    assert index == out / "index.html" and index.is_file()
    text = index.read_text(encoding="utf-8")
    for href in re.findall(r'href="([^"]+)"', text):
        assert (out / unquote(href)).is_file(), href
    assert 'href="feeds/category/%E7%A7%91%E6%8A%80.rss"' in text


def test_no_paging_leaves_next_links_and_page_files_out(world: World, tmp_path: Path) -> None:
    """Without paging the first page has no next link, and page files of an earlier build are
    removed."""
    out = tmp_path / "site"
    build_site(world.feeds, out)
    assert (out / "feeds/all.page-2.atom").is_file()
    build_site(world.feeds, out, paging=False)
    assert b'rel="next"' not in (out / "feeds/all.atom").read_bytes()
    assert b'"next_url"' not in (out / "feeds/all.json").read_bytes()
    assert not any(".page-" in name for name in files(out))


def test_names_that_cannot_be_files_are_skipped(tmp_path: Path) -> None:
    """A category part '..' never becomes a path outside the output directory."""
    world = make_world(tmp_path, ODD)
    world.add("odd", 1)
    out = tmp_path / "site"
    report = build_site(world.feeds, out)
    assert "category/../etc" in report.skipped and "category/.." in report.skipped
    assert not (tmp_path / "etc.rss").exists() and not (tmp_path / "feeds").exists()
    assert all(out.resolve() in p.resolve().parents for p in report.written)


def test_build_command(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`aggregator build --out DIR` builds from the configured store and reports the counts."""
    cfg = tmp_path / "agg.toml"
    cfg.write_text(
        SOURCES + OPERATOR + f'[storage]\nurl = "sqlite:///{tmp_path / "agg.db"}"\n',
        encoding="utf-8",
    )
    out = tmp_path / "cli-site"
    assert cli.main(["--config", str(cfg), "build", "--out", str(out)]) == 0
    assert "43 files written, 0 unchanged" in " ".join(capsys.readouterr().out.split())
    reply = world.client().get("/feeds/source/py.rss", headers={"Accept-Encoding": "identity"})
    assert (out / "feeds/source/py.rss").read_bytes() == reply.content
