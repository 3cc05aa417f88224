"""Hexo posts: the seed's exact format, the title rule, and exports that write nothing twice."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from aggregator.content.clean import CleanOptions, clean_html
from aggregator.models import Entry
from aggregator.publish.hexo import (
    MANIFEST,
    ExportStats,
    PostSource,
    export_posts,
    post_author,
    post_filename_title,
    render_post,
)
from aggregator.sources.qutoutiao import article_content

QTT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "qutoutiao"
PROXY = CleanOptions(image_proxy="https://cors.zfour.workers.dev/?")
PATH = ("新媒体", "趣头条", "分类")
LINK_1 = "http://html2.qktoutiao.com/detail/2021/12/09/1621234567.html"
LINK_2 = "http://html2.qktoutiao.com/detail/2021/12/09/1621233001.html"
TITLE_2 = "潍坊：冬季供暖保障工作全面启动 | 20万户居民能否温暖过冬?"


def _entry(key: str, title: str, content: str | None, published: datetime | None) -> Entry:
    return Entry(
        source_id="qtt",
        key=key,
        title=title,
        link=key,
        content=content,
        summary=None,
        author=None,
        published=published,
        updated=None,
        category_path=PATH,
    )


def _seed_entry() -> Entry:
    data = json.loads((QTT / "detail_1621234567.json").read_bytes())["data"]
    published = datetime.fromtimestamp(1639044467, UTC)  # the list item's show_time
    return _entry(LINK_1, data["title"], clean_html(data["detail"], LINK_1, PROXY), published)


def _page_entry() -> Entry:
    page = (QTT / "article_1621233001.html").read_text(encoding="utf-8")
    content = clean_html(article_content(page), LINK_2, PROXY)
    return _entry(LINK_2, TITLE_2, content, datetime.fromtimestamp(1639043100, UTC))


def test_render_post_reproduces_the_seed() -> None:
    """The post for item 1621234567 is byte for byte the seed post."""
    post = render_post(_seed_entry(), "趣头条")
    assert post.encode("utf-8") == (QTT / "expected" / "seed.md").read_bytes()


def test_post_from_the_article_page_is_cleaned() -> None:
    """Item 1621233001's page content loses script and onclick; images are absolute and proxied."""
    post = render_post(_page_entry(), "潍坊晚报")
    assert "<script" not in post and "trackView" not in post and "onclick" not in post
    relative = "http://html2.qktoutiao.com/qupost/img/2021/12/09/relative-chart.jpeg"
    assert f'<img src="https://cors.zfour.workers.dev/?{relative}"' in post
    https_image = "https://static-oss.qutoutiao.net/png/2021/12/09/feedbeefcafe.png"
    assert f'<img src="{https_image}" data-size="320,240" referrerpolicy="no-referrer">' in post
    assert "title: '潍坊：冬季供暖保障工作全面启动 _ 20万户居民能否温暖过冬_'\n" in post
    assert "headimg: 'https://cors.zfour.workers.dev/?http://static.1sapp.com/" in post
    assert "date: Thu, 09 Dec 2021 09:45:00 GMT\n" in post


def test_title_rule_replaces_each_forbidden_character() -> None:
    """Each of \\ / : * ? " < > | becomes _, and nothing else changes."""
    assert post_filename_title('a\\b/c:d*e?f"g<h>i|j：k') == "a_b_c_d_e_f_g_h_i_j：k"


def test_front_matter_quotes_what_yaml_would_misread() -> None:
    """A ' in the title is doubled; a site name or category that YAML would misread is quoted."""
    entry = replace(_seed_entry(), title="It's", category_path=("a: b", "ok"))
    post = render_post(entry, "true")
    assert "title: 'It''s'\n" in post
    assert "categories: \n - 'a: b'\n - ok\nheadimg:" in post
    assert "author: 'true'\n" in post


def test_placeholder_image_is_stable_and_in_range() -> None:
    """Without images headimg is a picsum URL whose number comes from the entry's identity."""
    entry = _entry("k1", "t", "<p>text</p>", None)
    post = render_post(entry, "s", placeholder=True)
    line = next(x for x in post.splitlines() if x.startswith("headimg: "))
    number = int(line.removeprefix("headimg: 'https://picsum.photos/400/300?random=").rstrip("'"))
    assert 0 <= number <= 9999
    assert render_post(entry, "s", placeholder=True) == post
    assert f"thumbnail: {line.removeprefix('headimg: ')}\n" in post
    others = {render_post(replace(entry, key=f"k{i}"), "s", placeholder=True) for i in range(20)}
    assert len(others) > 1


def test_date_falls_back_to_first_seen() -> None:
    """Without a published time the date is first_seen, in RFC 1123 GMT form."""
    seen = datetime(2024, 2, 29, 23, 5, 1, tzinfo=UTC)
    post = render_post(replace(_seed_entry(), published=None, first_seen=seen), "趣头条")
    assert "date: Thu, 29 Feb 2024 23:05:01 GMT\n" in post


def test_export_writes_once_and_then_nothing(tmp_path: Path) -> None:
    """A second export of the same entries writes nothing and leaves every file as it was."""
    entries = [_seed_entry(), _page_entry()]
    sources = {"qtt": PostSource(site_name="趣头条", placeholder_image=True)}
    assert export_posts(entries, sources, tmp_path) == ExportStats(written=2, unchanged=0)
    seed_file = tmp_path / "山东潍坊市残联：主动当好残疾人的_小棉袄__店小二__小保姆_.md"
    assert seed_file.read_bytes() == (QTT / "expected" / "seed.md").read_bytes()
    assert (tmp_path / "潍坊：冬季供暖保障工作全面启动 _ 20万户居民能否温暖过冬_.md").exists()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert export_posts(entries, sources, tmp_path) == ExportStats(written=0, unchanged=2)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_same_title_gets_a_numeric_suffix_and_keeps_it(tmp_path: Path) -> None:
    """Two entries with one title get name.md and name-2.md, on this run and every later one."""
    a = _entry("a", "Same: title", "<p>A</p>", None)
    b = _entry("b", "Same: title", "<p>B</p>", None)
    export_posts([a, b], {}, tmp_path)
    assert "<p>A</p>" in (tmp_path / "Same_ title.md").read_text(encoding="utf-8")
    assert "<p>B</p>" in (tmp_path / "Same_ title-2.md").read_text(encoding="utf-8")
    stats = export_posts([b, replace(a, content="<p>A2</p>")], {}, tmp_path)
    assert stats == ExportStats(written=1, unchanged=1)
    assert "<p>A2</p>" in (tmp_path / "Same_ title.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [MANIFEST, "Same_ title.md", "Same_ title-2.md"]
    )


def test_a_foreign_file_with_the_same_name_is_not_overwritten(tmp_path: Path) -> None:
    """A file the export did not write keeps its bytes; the post takes the next free name."""
    (tmp_path / "hello.md").write_text("mine", encoding="utf-8")
    export_posts([_entry("a", "hello", "<p>x</p>", None)], {}, tmp_path)
    assert (tmp_path / "hello.md").read_text(encoding="utf-8") == "mine"
    assert (tmp_path / "hello-2.md").exists()


def test_file_names_are_safe(tmp_path: Path) -> None:
    """A title that starts with a dot, spans lines or is very long still makes a visible short name."""
    entries = [_entry("a", ".hidden\nline", None, None), _entry("b", "长" * 300, None, None)]
    export_posts(entries, {}, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != MANIFEST)
    assert "hidden line.md" in names
    assert all(len(n.encode("utf-8")) <= 210 and not n.startswith(".") for n in names)


def test_author_is_site_name_then_entry_author_then_source_title_then_site_title() -> None:
    """``author``: the source's site_name, else the entry's author, else the source's title,
    else the site's title; never the source id."""
    entry = replace(_entry("a", "t", "<p>x</p>", None), source_id="kc0011-rss")
    assert post_author(entry, PostSource(site_name="趣头条", title="T"), "Site") == "趣头条"
    assert post_author(replace(entry, author="Ann"), PostSource(title="T"), "Site") == "Ann"
    assert (
        post_author(replace(entry, author="  "), PostSource(title="Tech News"), "Site")
        == "Tech News"
    )
    assert post_author(entry, PostSource(), "My site") == "My site"


def test_export_uses_the_author_rule(tmp_path: Path) -> None:
    """An exported post of a feed source without site_name names the entry's author, else the
    feed's title; an unknown source falls back to the site's title."""
    a = replace(_entry("a", "A", "<p>x</p>", None), source_id="tc", author="Jo: Smith")
    b = replace(_entry("b", "B", "<p>y</p>", None), source_id="tc")
    c = replace(_entry("c", "C", "<p>z</p>", None), source_id="gone")
    export_posts([a, b, c], {"tc": PostSource(title="TechCrunch")}, tmp_path, "Daily")
    assert "author: 'Jo: Smith'\n" in (tmp_path / "A.md").read_text(encoding="utf-8")
    assert "author: TechCrunch\n" in (tmp_path / "B.md").read_text(encoding="utf-8")
    assert "author: Daily\n" in (tmp_path / "C.md").read_text(encoding="utf-8")


def test_tags_come_from_the_entry_categories() -> None:
    """``tags`` lists the entry's categories (feed and rule categories), once each, quoted as YAML
    needs; an entry without categories has no tags line (the seed)."""
    entry = replace(_seed_entry(), categories=("AI", "科技 / 中文", "yes", "AI"))
    post = render_post(entry, "趣头条")
    assert "\n - 分类\ntags: \n - AI\n - 科技 / 中文\n - 'yes'\nheadimg: " in post
    assert "tags:" not in render_post(_seed_entry(), "趣头条")


def test_placeholder_image_only_when_the_source_asks() -> None:
    """Without an image of its own a post has no headimg/thumbnail unless the source asks for the
    picsum placeholder; its own first image is used either way."""
    bare = _entry("k", "t", "<p>text</p>", None)
    assert "headimg" not in render_post(bare, "s") and "thumbnail" not in render_post(bare, "s")
    assert "picsum.photos" in render_post(bare, "s", placeholder=True)
    pictured = replace(bare, content='<p><img src="https://i.test/a.png"></p>')
    assert "headimg: 'https://i.test/a.png'" in render_post(pictured, "s")


def test_qutoutiao_sources_ask_for_the_placeholder_and_feeds_do_not() -> None:
    """``hexo_placeholder_image`` defaults to true for Qutoutiao, false otherwise; both can be set."""
    from aggregator.config.settings import ScheduleSettings, SourceSettings, to_source

    def record(**kw: object) -> bool:
        return to_source(
            SourceSettings.model_validate(kw), ScheduleSettings()
        ).hexo_placeholder_image

    assert record(id="q", kind="qutoutiao", cid=1) is True
    assert record(id="q", kind="qutoutiao", cid=1, hexo_placeholder_image=False) is False
    assert record(id="f", url="https://a.test/feed") is False
    assert record(id="f", url="https://a.test/feed", hexo_placeholder_image=True) is True


HOSTILE = (
    "<p>Use {{ site.title }} and {%raw%}{% if x %}{%endraw%} then {# gone? #} {{{triple}}} #}.</p>\n"
    "\n"
    "<p>after a blank line</p>\n"
    "    <p>indented four spaces</p>\n"
    " \t \n"
    "<pre>line 1\n\n    line 3 indented\n\tline 4 tabbed\n```js\nfenced()\n```\n~~~\n</pre>\r\n\r\n"
    '<p><a href="https://a.test/?q={{x}}">link</a></p>'
)


def _body(post: str) -> str:
    return post.split("\n---\n", 2)[2].removeprefix("\n")


def test_hostile_html_is_made_inert_but_means_the_same() -> None:
    """Template syntax, tabs, code fences and blank lines are rewritten as character references:
    no ``{{``/``{%``/``{#``/``#}``, tab, fence line or blank line remains; the HTML reads the same."""
    from html import unescape

    body = _body(render_post(_entry("h", "hostile", HOSTILE, None), "s"))
    assert not any(t in body for t in ("{{", "{%", "{#", "#}", "\t"))
    lines = body.split("\n")[:-1]  # the seed's whitespace line after </div> ends the post
    assert all(line.strip() for line in lines)
    assert not any(line.lstrip(" \t>").startswith(("```", "~~~")) for line in lines)
    expected = "<div>   \n" + HOSTILE.replace("\r\n", "\n") + "  \n</div>"
    assert unescape(body.rsplit("\n", 1)[0]) == expected


def test_export_command_names_the_feeds_own_title_as_author(tmp_path: Path) -> None:
    """`export hexo` over a store: a source with no site_name, no configured title and entries
    without authors gets the feed's own stored title as author, never the source id."""
    from aggregator.cli.publish import export_hexo
    from aggregator.models import FetchOutcome, FetchStatus

    from .feedworld import make_world

    storage = f'\n[storage]\nurl = "sqlite:///{tmp_path / "agg.db"}"\n'
    extra = '[[sources]]\nid = "kc0011-rss"\nurl = "https://kc.example.com/rss"\n'
    world = make_world(tmp_path, storage + extra)
    world.sources["kc0011-rss"] = next(
        s for s in world.settings.source_records() if s.id == "kc0011-rss"
    )
    state = world.store.get_state("kc0011-rss")
    assert state is not None
    outcome = FetchOutcome("kc0011-rss", FetchStatus.OK)
    world.store.apply(replace(state, title="KC News"), [], [], outcome, world.clock.now())
    world.add("kc0011-rss", 1, author=None, title="Untagged story", categories=())
    world.add("hn", 1, author=None, title="HN story")
    world.store.close()
    export_hexo(world.settings, tmp_path / "posts", None, None, 10)
    kc = (tmp_path / "posts" / "Untagged story.md").read_text(encoding="utf-8")
    assert "author: KC News\n" in kc and "tags:" not in kc and "headimg" not in kc
    hn = (tmp_path / "posts" / "HN story.md").read_text(encoding="utf-8")
    assert "author: Hacker News\n" in hn and "tags: \n - general\n" in hn
