"""Content cleaning: sanitizing, absolute URLs, lazy images, image proxy, first image, plain text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.content.clean import CleanOptions, clean, clean_html
from aggregator.content.text import first_image, html_text

QTT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "qutoutiao"
PROXY = CleanOptions(image_proxy="https://cors.zfour.workers.dev/?")
BASE = "http://html2.qktoutiao.com/detail/2021/12/09/1621234567.html"


def _detail() -> str:
    return str(json.loads((QTT / "detail_1621234567.json").read_bytes())["data"]["detail"])


def _seed_body() -> str:
    seed = (QTT / "expected" / "seed.md").read_text(encoding="utf-8")
    start = seed.index("<div>   \n") + len("<div>   \n")
    return seed[start : seed.rindex("  \n</div>")]


def test_detail_cleans_to_the_seed_body() -> None:
    """The Qutoutiao detail HTML, cleaned with the proxy, is exactly the HTML inside the seed."""
    assert clean_html(_detail(), BASE, PROXY) == _seed_body()


@pytest.mark.parametrize(
    "html",
    [
        "seed",
        '<p><a href="/x" onclick="go()">a &amp; b &lt;i&gt;</a><img data-src="i.png" alt="x"></p>',
        "<html><head><title>T</title></head><body>\n<p>text</p>\n</body></html>\n",
    ],
)
def test_cleaning_is_idempotent(html: str) -> None:
    """Cleaning cleaned HTML again changes nothing (with or without a base URL)."""
    once = clean_html(_detail() if html == "seed" else html, BASE, PROXY)
    assert clean_html(once, BASE, PROXY) == once
    assert clean_html(once, None, PROXY) == once


def test_lazy_image_source_takes_the_place_of_data_src() -> None:
    """data-src replaces a placeholder src, in data-src's position; referrerpolicy comes last."""
    html = '<img referrerpolicy="origin" src="blank.gif" alt="a" data-src="/real.jpg" width="3">'
    assert clean_html(html, "https://example.com/post/1", CleanOptions()) == (
        '<img alt="a" src="https://example.com/real.jpg" width="3" referrerpolicy="no-referrer">'
    )


@pytest.mark.parametrize("lazy", ['data-src="/real.jpg"', ""])
def test_both_cleaning_routes_write_the_same_html(lazy: str) -> None:
    """HTML with a lazy image goes through a parsed tree, other HTML only through the sanitizer's
    attribute filter; apart from the lazy image itself, both give the same markup."""
    rest = (
        '<p onclick="x()">a &amp; b<script>bad()</script> <a href="../c?q=1&amp;r=2" title="t">c</a>'
        ' <a href="javascript:alert(1)">j</a><img referrerpolicy="origin" src="http://i.example/p.png"'
        ' alt="p &quot;q&quot;" width="3"><video poster="v.jpg"></video></p>'
    )
    img = f'<img src="blank.gif" {lazy} alt="x">'
    out = clean_html(img + rest, "https://example.com/post/1", PROXY)
    expected_img = (
        '<img src="https://example.com/real.jpg" alt="x" referrerpolicy="no-referrer">'
        if lazy
        else '<img src="https://example.com/post/blank.gif" alt="x" referrerpolicy="no-referrer">'
    )
    assert out == expected_img + (
        '<p>a &amp; b <a href="https://example.com/c?q=1&amp;r=2" title="t" rel="noopener noreferrer">c</a>'
        ' <a rel="noopener noreferrer">j</a><img src="https://cors.zfour.workers.dev/?http://i.example/p.png"'
        ' alt="p &quot;q&quot;" width="3" referrerpolicy="no-referrer"></p>'
    )


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (
            "<IMG Data-Src='/a.jpg' SRC=blank.gif alt=x>",
            '<img src="https://e.example/a.jpg" alt="x"',
        ),
        (
            '<img alt="a > b" data-original=/b.jpg>',
            '<img alt="a &gt; b" src="https://e.example/b.jpg"',
        ),
        (
            '<img data-src=" " data-lazy-src="/c.jpg" src="s.gif">',
            '<img src="https://e.example/c.jpg"',
        ),
        ("<img src=\"/d.jpg\" data-src=''>", '<img src="https://e.example/d.jpg"'),
        ("<img data-src='/e.jpg?q=\"1\"'/>", '<img src="https://e.example/e.jpg?q=&quot;1&quot;"'),
    ],
)
def test_lazy_sources_in_any_spelling_of_the_tag(tag: str, expected: str) -> None:
    """Lazy sources are found whatever the case and quoting; a quoted ">" does not end the tag;
    an empty lazy attribute leaves src alone."""
    out = clean_html(f"<p>{tag} data-src=text</p>", "https://e.example/", CleanOptions())
    assert out == f'<p>{expected} referrerpolicy="no-referrer"> data-src=text</p>'


def test_scripts_styles_handlers_and_javascript_urls_are_removed() -> None:
    """Scripts and styles vanish with their content; on* attributes and javascript: links too."""
    html = (
        '<p onmouseover="x()">hi<script>alert(1)</script><style>p{}</style>'
        '<a href="javascript:alert(2)">j</a><a href=" JavaScript:alert(3)">k</a></p>'
    )
    out = clean_html(html, "https://example.com/", CleanOptions())
    assert out == '<p>hi<a rel="noopener noreferrer">j</a><a rel="noopener noreferrer">k</a></p>'


def test_unknown_markup_is_dropped_but_article_markup_kept() -> None:
    """The allowlist keeps ordinary article markup and drops forms, iframes and unknown attributes."""
    html = (
        '<h2 class="c" id="h">T</h2><blockquote cite="/q">q</blockquote><form><input></form>'
        '<iframe src="https://evil.example/"></iframe><table><tr><td colspan="2">c</td></tr></table>'
    )
    out = clean_html(html, "https://example.com/a/", CleanOptions())
    assert out == (
        '<h2>T</h2><blockquote cite="https://example.com/q">q</blockquote>'
        '<table><tbody><tr><td colspan="2">c</td></tr></tbody></table>'
    )


def test_empty_links_are_dropped() -> None:
    """An empty href or src is dropped with or without a base (it would point at the feed)."""
    html = '<p><a href="">x</a><a href=" ">y</a><img src=""></p>'
    for base in ("https://example.com/a/page.html", None):
        out = clean_html(html, base, CleanOptions())
        assert "href" not in out and "src" not in out and ">x</a>" in out


def test_relative_links_become_absolute() -> None:
    """Relative hrefs and srcs resolve against the base URL; without a base they stay relative."""
    html = '<a href="../b?x=1&amp;y=2">b</a><img src="//cdn.example.com/i.png">'
    out = clean_html(html, "https://example.com/a/c/page.html", CleanOptions())
    assert 'href="https://example.com/a/b?x=1&amp;y=2"' in out
    assert 'src="https://cdn.example.com/i.png"' in out
    assert 'href="../b?x=1&amp;y=2"' in clean_html(html, None, CleanOptions())


def test_proxy_scope_http_only_or_all() -> None:
    """The proxy prefixes http:// images by default, https:// ones too with scope "all", never twice."""
    html = '<img src="http://a.example/1.jpg"><img src="https://b.example/2.jpg">'
    http_only = clean_html(html, None, CleanOptions(image_proxy="https://p.example/?"))
    assert 'src="https://p.example/?http://a.example/1.jpg"' in http_only
    assert 'src="https://b.example/2.jpg"' in http_only
    every = clean_html(
        html, None, CleanOptions(image_proxy="https://p.example/?", image_proxy_scope="all")
    )
    assert 'src="https://p.example/?https://b.example/2.jpg"' in every
    assert clean_html(every, None, CleanOptions("https://p.example/?", "all")) == every


def test_empty_input_is_empty_output() -> None:
    """No HTML cleans to the empty string."""
    assert clean_html(None, BASE) == ""
    assert clean_html("  \n", BASE) == ""


def test_first_image_is_the_first_src() -> None:
    """first_image gives the src of the first <img> that has one, or None."""
    cleaned = clean_html(_detail(), BASE, PROXY)
    assert first_image(cleaned) == (
        "https://cors.zfour.workers.dev/?http://static.1sapp.com/qupost/img/2021/12/09/"
        "7edb2a9c57b2b7692ea58a9e37283dfd.jpeg"
    )
    assert first_image("<p>no images</p>") is None
    assert first_image(None) is None


def test_html_text_gives_plain_text() -> None:
    """html_text drops tags and scripts, decodes entities and keeps block words apart."""
    html = "<p>One &amp; <b>two</b></p><p>three<script>x()</script></p><br>四"
    assert html_text(html) == "One & two three 四"
    assert html_text(None) == ""


@pytest.mark.parametrize(
    "html",
    [
        "seed",
        "<p>One &amp; <b>two</b></p><p>three<script>x()</script></p><br>四&nbsp;五",
        "<p>a<img src=''><img src='/b.png'></p>",
        "<img alt='x > y src=\"q\"' src='/r?a=1&amp;b=2'><div>&lt;tag&gt;</div>tail",
        "<ul><li>one</li><li>two</li></ul><span>in</span>line",
        "plain text, no tags",
        "",
    ],
)
def test_clean_reads_text_and_image_like_the_tree_readers(html: str) -> None:
    """clean() gives clean_html's HTML with the same text and image as html_text/first_image."""
    source = _detail() if html == "seed" else html
    got = clean(source, BASE, PROXY)
    assert got.html == clean_html(source, BASE, PROXY)
    assert (got.text, got.image) == (html_text(got.html), first_image(got.html))
