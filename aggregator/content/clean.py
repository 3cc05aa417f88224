"""HTML cleaning for every source: the one gate that entry HTML passes before it is stored.

Owns: fixing lazy images (``data-src`` becomes ``src`` where ``data-src`` stood), making links and
image sources absolute against the entry's URL (an empty one is dropped), the optional image proxy prefix, the
``referrerpolicy="no-referrer"`` that every ``<img>`` ends with, and the allowlist sanitizer (nh3)
that removes scripts, styles, event handlers, ``javascript:`` URLs and everything else unknown.
The cleaned HTML's plain text and first image are read by ``text.py``, the one reader of them.

Does not own: fetching, deciding which HTML an entry has, or where the options come from (the
pipeline builds ``CleanOptions`` from the ``[content]`` settings).

All rewriting happens inside nh3's one parse: its attribute filter makes URLs absolute, drops script
URLs and proxies image sources (six times faster than rewriting a BeautifulSoup tree first, which
this module did before). The one rewrite the filter cannot do, renaming a lazy ``data-src`` to
``src``, is done beforehand on the ``<img>`` start tags that have one, read with the HTML
tokenizer's rules for attributes; the sanitizer parses the result like any input, so its
serialization is always the final word. Cleaning cleaned HTML changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import nh3

from .text import ATTRIBUTE, IMG_TAG, first_image, html_text, unquote


@dataclass(frozen=True)
class CleanOptions:
    image_proxy: str | None = None  # prefix put before image URLs, e.g. "https://cors.example/?"
    image_proxy_scope: Literal["http", "all"] = "http"  # proxy http:// images only, or all


# Elements removed together with their content. noscript usually repeats a lazy image.
_DROP_WITH_CONTENT = frozenset(
    {"script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "math", "title"}
)
_TAGS = frozenset(nh3.ALLOWED_TAGS) - _DROP_WITH_CONTENT
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"lang", "title"},
    "a": {"href", "hreflang"},
    # referrerpolicy="no-referrer" is set by the sanitizer after every other attribute; a
    # source's own referrerpolicy is dropped.
    "img": {"src", "alt", "width", "height", "align", "data-size"},
}
# Attributes that hold one URL; srcset is not kept (its URLs could not be proxied).
_URL_ATTRIBUTES = ("href", "src", "cite", "poster", "longdesc")
_LAZY_SOURCES = ("data-src", "data-original", "data-lazy-src")
_SCRIPT_URL = re.compile(r"^\s*(javascript|vbscript|data):", re.IGNORECASE)
_DEFAULT = CleanOptions()
_LAZY = re.compile("|".join(_LAZY_SOURCES), re.IGNORECASE)
_SET_ATTRIBUTES = {"img": {"referrerpolicy": "no-referrer"}}


def clean_html(html: str | None, base_url: str | None, options: CleanOptions = _DEFAULT) -> str:
    """Sanitized, absolutized HTML with lazy images fixed and images proxied; "" for no HTML."""
    if not html or not html.strip():
        return ""
    if _LAZY.search(html):
        html = IMG_TAG.sub(_unlazy, html)
    return _sanitize(html, _url_filter(base_url, options))


# Only <img> tags with a lazy source are rewritten; the sanitizer parses the result anyway.


def _unlazy(match: re.Match[str]) -> str:
    """The tag with its lazy source as ``src``, in the lazy attribute's position (the old ``src``
    and the other lazy attributes dropped); unchanged when no lazy attribute has a value."""
    attrs = [(m.group(1).lower(), m.group(2)) for m in ATTRIBUTE.finditer(match.group(1))]
    values = {name: unquote(raw) for name, raw in reversed(attrs)}  # the first of a name counts
    lazy = next((name for name in _LAZY_SOURCES if values.get(name, "").strip()), None)
    if lazy is None:
        return match.group(0)
    out = []
    for name, raw in attrs:
        if name == lazy:
            value = values[lazy].strip()
            out.append(f"src='{value}'" if '"' in value else f'src="{value}"')
        elif name != "src" and name not in _LAZY_SOURCES:
            out.append(name if raw is None else f"{name}={raw}")
    return "<img " + " ".join(out) + ">"


def _sanitize(html: str, attribute_filter: Callable[[str, str, str], str | None] | None) -> str:
    return nh3.clean(
        html,
        tags=set(_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes=_ATTRIBUTES,
        strip_comments=True,
        link_rel="noopener noreferrer",
        attribute_filter=attribute_filter,
        set_tag_attribute_values=_SET_ATTRIBUTES,
    ).strip()  # whitespace around a whole document's <body> does not survive a second pass


def _url_filter(
    base_url: str | None, options: CleanOptions
) -> Callable[[str, str, str], str | None]:
    """nh3's per-attribute hook doing what ``_rewrite`` does on a tree: ``javascript:`` and
    friends dropped, URLs made absolute, image sources proxied (event handlers and unknown
    attributes never reach it: the allowlist drops them)."""

    def rewrite(tag: str, name: str, value: str) -> str | None:
        if name not in _URL_ATTRIBUTES:
            return value
        if _SCRIPT_URL.match(value):
            return None
        url = absolute_url(value.strip(), base_url)
        if not url:  # href="": a reader resolves it against the feed's URL (ContainsRelRef)
            return None
        return proxied(url, options) if tag == "img" and name == "src" and url else url

    return rewrite


@dataclass(frozen=True)
class Cleaned:
    """One fragment cleaned, with what the pipeline reads from it."""

    html: str  # clean_html's result
    text: str  # its plain text (text.html_text)
    image: str | None  # its first image (text.first_image)


def clean(html: str | None, base_url: str | None, options: CleanOptions = _DEFAULT) -> Cleaned:
    """``clean_html`` with the cleaned HTML's plain text and first image."""
    cleaned = clean_html(html, base_url, options)
    return Cleaned(cleaned, html_text(cleaned), first_image(cleaned))


def absolute_url(url: str, base_url: str | None) -> str:
    """``url`` resolved against ``base_url`` (unchanged when there is no usable base)."""
    if not base_url or not url or urlsplit(url).scheme:
        return url
    return urljoin(base_url, url)


def proxied(src: str, options: CleanOptions) -> str:
    """The image URL behind the configured proxy prefix, when its scheme is in scope."""
    prefix = options.image_proxy
    if not prefix or src.startswith(prefix):
        return src
    scheme = urlsplit(src).scheme.lower()
    if scheme == "http" or (scheme == "https" and options.image_proxy_scope == "all"):
        return prefix + src
    return src
