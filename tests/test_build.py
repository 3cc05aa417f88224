"""Static build: every feed written as files, byte for byte what the server sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator import cli
from aggregator.publish.build import build_site

from .feedworld import SOURCES, World, make_world

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


def test_build_writes_every_feed_in_every_format(world: World, tmp_path: Path) -> None:
    """all, each source, each category path and each operator feed, in each of its formats."""
    out = tmp_path / "site"
    build_site(world.feeds, out)
    expected = {"opml.xml", "feeds/digest.atom"}
    for name in ("all", "source/hn", "source/py", "source/ruan", "category/Tech", "category/Tech/News",
                 "category/Tech/Python", "category/科技", "category/科技/博客"):
        expected |= {f"feeds/{name}.{fmt}" for fmt in ("rss", "atom", "json")}
    assert files(out) == expected


def test_built_files_have_the_bytes_the_server_sends(world: World, tmp_path: Path) -> None:
    """Each file equals the uncompressed body of a GET of the same URL path."""
    out = tmp_path / "site"
    build_site(world.feeds, out)
    client = world.client()
    for name in files(out) - {"opml.xml"}:
        reply = client.get("/" + name, headers={"Accept-Encoding": "identity"})
        assert reply.status_code == 200, name
        assert (out / name).read_bytes() == reply.content, name
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
    rewritten = {str(p.relative_to(out.resolve())) for p in third.written}
    assert rewritten == {f"feeds/{n}.{f}" for n in ("all", "source/py", "category/Tech", "category/Tech/Python")
                         for f in ("rss", "atom", "json")} | {"feeds/digest.atom"}


def test_no_paging_leaves_next_links_out(world: World, tmp_path: Path) -> None:
    """With paging the first page of a long feed links to ?before=; without, it does not."""
    build_site(world.feeds, tmp_path / "paged")
    build_site(world.feeds, tmp_path / "flat", paging=False)
    assert b'rel="next"' in (tmp_path / "paged/feeds/all.atom").read_bytes()
    assert b'rel="next"' not in (tmp_path / "flat/feeds/all.atom").read_bytes()
    assert b'"next_url"' not in (tmp_path / "flat/feeds/all.json").read_bytes()


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
    cfg.write_text(SOURCES + OPERATOR + f'[storage]\nurl = "sqlite:///{tmp_path / "agg.db"}"\n',
                   encoding="utf-8")
    out = tmp_path / "cli-site"
    assert cli.main(["--config", str(cfg), "build", "--out", str(out)]) == 0
    assert "29 files written, 0 unchanged" in " ".join(capsys.readouterr().out.split())
    reply = world.client().get("/feeds/source/hn.rss", headers={"Accept-Encoding": "identity"})
    assert (out / "feeds/source/hn.rss").read_bytes() == reply.content
