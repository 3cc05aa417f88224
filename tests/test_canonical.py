"""Canonical URLs (dedupe/canonical.py): the one spelling of a story's address."""

from __future__ import annotations

from aggregator.dedupe import canonical

from .test_dedupe import TRACKING


def test_canonical_url_normalizes_case_port_fragment_and_query_order() -> None:
    """Scheme and host are lower-cased, the default port and the fragment go, the query is sorted."""
    url = "HTTPS://News.Example.COM:443/World/Story?b=2&a=1#comments"
    assert canonical.canonical_url(url, TRACKING) == "https://news.example.com/World/Story?a=1&b=2"


def test_canonical_url_removes_tracking_parameters_by_name_and_prefix() -> None:
    """``utm_*`` removes every utm_ parameter; exact names match case-insensitively."""
    url = "https://a.example/p?id=7&utm_source=rss&UTM_Medium=x&fbclid=abc&Spm=1.2&keep=yes"
    assert canonical.canonical_url(url, TRACKING) == "https://a.example/p?id=7&keep=yes"
    assert (
        canonical.canonical_url("https://a.example/p?utm_source=rss", TRACKING)
        == "https://a.example/p"
    )


def test_canonical_url_keeps_other_ports_and_hashbang_routes() -> None:
    """A non-default port and a ``#!`` route identify a page, so they stay."""
    assert canonical.canonical_url("http://a.example:8080/x", ()) == "http://a.example:8080/x"
    assert (
        canonical.canonical_url("https://a.example/#!/story/9", ())
        == "https://a.example/#!/story/9"
    )


def test_canonical_url_spells_non_ascii_paths_one_way() -> None:
    """A raw Chinese path and its percent-encoded form give the same canonical URL."""
    raw = canonical.canonical_url("https://例子.example/新闻/1.html", ())
    encoded = canonical.canonical_url("https://例子.example/%e6%96%b0%e9%97%bb/1.html", ())
    assert raw == encoded


def test_canonical_url_leaves_non_http_identifiers_alone() -> None:
    """A urn, a mailto or a relative reference comes back only stripped."""
    assert canonical.canonical_url(" urn:uuid:1225c695 ", TRACKING) == "urn:uuid:1225c695"
    assert (
        canonical.canonical_url("/relative/path?utm_source=x", TRACKING)
        == "/relative/path?utm_source=x"
    )


def test_canonical_url_keeps_order_of_repeated_parameters() -> None:
    """Parameters are sorted by name; values of one repeated name keep their order."""
    assert (
        canonical.canonical_url("https://a.example/?t=2&s=1&t=1", ())
        == "https://a.example/?s=1&t=2&t=1"
    )


def test_home_pages_are_not_specific_urls() -> None:
    """A site's home page cannot identify a story; a path or a query can."""
    assert not canonical.is_specific_url("https://a.example/")
    assert canonical.is_specific_url("https://a.example/2024/story")
    assert canonical.is_specific_url("https://a.example/?p=12")
    assert not canonical.is_specific_url(None)
