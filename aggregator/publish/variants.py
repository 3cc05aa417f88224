"""RSSHub's output parameters applied to the entries of one rendering: ``mode=fulltext``,
``image_hotlink_template``, ``brief`` and ``opencc``.

Owns: turning the entries a feed page selected into the entries that variant publishes (new
``Entry`` values; the stored ones are never changed) and the feed title's conversion. Does not own:
reading the query (query.py), caching (feeds.py: each variant has its own cache key, since the
parameters are part of the canonical query) or document syntax (render.py).

What each does, in the order applied:

- ``mode=fulltext``: an entry that has content (the feed's full body, the ``html``/``json`` kinds'
  detail pages, or the full text fetched for a ``fulltext`` source) is published with that content
  only: its summary is dropped, so RSS ``description`` and JSON ``content_html`` carry the full
  text too. Entries with only a summary stay as they are; nothing is fetched at request time.
- ``image_hotlink_template``: every ``<img src>`` (absolute http(s)) in the summary and content
  becomes the template with RSSHub's placeholders filled from that URL: ``${href}``,
  ``${protocol}`` (``https:``), ``${host}`` (with the port), ``${hostname}``, ``${port}``,
  ``${pathname}``, ``${search}`` (with ``?``), ``${hash}``, ``${origin}``, ``${username}``,
  ``${password}``; a ``_ue`` suffix (``${href_ue}``) URL-encodes the value. ``srcset`` on those
  images is dropped (a reader would load it instead).
- ``brief=N``: the summary becomes the text of the summary (else the content), at most N
  characters (cut with ``…``), and the content is dropped.
- ``opencc=CONFIG``: titles, summaries and content converted with OpenCC (the C++ library: about
  2.5 million characters a second, ``bench/output_params.py``); in HTML only the text between tags
  is converted, so a URL with Han characters in an attribute stays the same.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from urllib.parse import quote, urlsplit

from ..content.urls import public_link
from ..models import Entry

# OpenCC's configuration files (the names RSSHub passes on to simplecc).
OPENCC_CONFIGS = (
    "s2t",
    "t2s",
    "s2tw",
    "tw2s",
    "s2hk",
    "hk2s",
    "s2twp",
    "tw2sp",
    "t2tw",
    "tw2t",
    "t2hk",
    "hk2t",
    "t2jp",
    "jp2t",
    "s2hkp",
    "hk2sp",
)
PLACEHOLDERS = (
    "hash",
    "host",
    "hostname",
    "href",
    "origin",
    "password",
    "pathname",
    "port",
    "protocol",
    "search",
    "username",
)
_PLACEHOLDER = re.compile(r"\$\{([^{}]+)\}")
_TAG_SPLIT = re.compile(r"(<[^>]*>)")  # linear: one negated class
# <img ... src="..."> as the cleaner writes it (double quotes); group 2 is the URL.
_IMG_SRC = re.compile(r'(<img\b[^>]*?\ssrc=")([^"]*)(")', re.IGNORECASE)
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_SRCSET = re.compile(r'\ssrcset="[^"]*"', re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")
_SAMPLE = "https://user:pw@img.example.com:8443/a/b.png?x=1#f"
# encodeURIComponent leaves these unescaped
_COMPONENT_SAFE = "-_.!~*'()"


def reshape(
    entries: Sequence[Entry],
    *,
    fulltext: bool = False,
    hotlink: str | None = None,
    brief: int | None = None,
    opencc: str | None = None,
) -> list[Entry]:
    """The entries as this variant publishes them (the same objects when nothing applies)."""
    steps: list[Callable[[Entry], Entry]] = []
    if fulltext:
        steps.append(_fulltext)
    if hotlink:
        steps.append(lambda e: _hotlinked(e, hotlink))
    if brief:
        steps.append(lambda e: _brief(e, brief))
    if opencc:
        convert = converter(opencc)
        steps.append(lambda e: _converted(e, convert))
    out = list(entries)
    for step in steps:
        out = [step(e) for e in out]
    return out


# --- mode=fulltext --------------------------------------------------------------------------------


def _fulltext(entry: Entry) -> Entry:
    return replace(entry, summary=None) if entry.content and entry.content.strip() else entry


# --- image_hotlink_template ------------------------------------------------------------------------


def check_template(template: str) -> str | None:
    """Why ``template`` cannot be used (an unknown placeholder, a result that is no absolute
    http(s) URL), else None."""
    for name in _PLACEHOLDER.findall(template):
        if name.removesuffix("_ue") not in PLACEHOLDERS:
            return f"unknown placeholder ${{{name}}} (known: {', '.join(PLACEHOLDERS)})"
    filled = fill(template, _SAMPLE)
    if (
        not filled
        or public_link(filled) != filled
        or not filled.startswith(("http://", "https://"))
    ):
        return "the template must make an absolute http(s) URL, e.g. https://proxy.example/?url=${href_ue}"
    return None


def fill(template: str, url: str) -> str | None:
    """``template`` with RSSHub's placeholders filled from ``url`` (as JavaScript's URL object
    names its parts); None when ``url`` does not parse."""
    try:
        parts = urlsplit(url)
        port = str(parts.port) if parts.port is not None else ""
        hostname = parts.hostname or ""
    except ValueError:
        return None
    host = hostname + (f":{port}" if port else "")
    values = {
        "href": url,
        "protocol": f"{parts.scheme}:",
        "host": host,
        "hostname": hostname,
        "port": port,
        "pathname": parts.path or "/",
        "search": f"?{parts.query}" if parts.query else "",
        "hash": f"#{parts.fragment}" if parts.fragment else "",
        "origin": f"{parts.scheme}://{host}",
        "username": parts.username or "",
        "password": parts.password or "",
    }

    def value(m: re.Match[str]) -> str:
        name = m[1]
        if name.endswith("_ue"):
            return quote(values.get(name[:-3], ""), safe=_COMPONENT_SAFE)
        return values.get(name, "")

    return _PLACEHOLDER.sub(value, template)


def hotlink_html(text: str | None, template: str) -> str | None:
    """``text`` with each image's absolute http(s) ``src`` replaced by the filled template."""
    if not text or "<img" not in text.lower():
        return text

    def img(tag: re.Match[str]) -> str:
        def src(m: re.Match[str]) -> str:
            url = html.unescape(m[2])
            filled = fill(template, url) if url.startswith(("http://", "https://")) else None
            return m[1] + html.escape(filled, quote=True) + m[3] if filled else m[0]

        rewritten = _IMG_SRC.sub(src, tag[0])
        return _SRCSET.sub("", rewritten) if rewritten != tag[0] else rewritten

    return _IMG_TAG.sub(img, text)


def _hotlinked(entry: Entry, template: str) -> Entry:
    return replace(
        entry,
        summary=hotlink_html(entry.summary, template),
        content=hotlink_html(entry.content, template),
    )


# --- brief ------------------------------------------------------------------------------------------


def brief_text(text: str | None, limit: int) -> str:
    """The text of HTML on one line, at most ``limit`` characters (cut with an ellipsis)."""
    plain = " ".join(html.unescape(_TAGS.sub(" ", text or "")).split())
    return plain if len(plain) <= limit else plain[: limit - 1].rstrip() + "…"


def _brief(entry: Entry, limit: int) -> Entry:
    text = brief_text(
        entry.summary if entry.summary and entry.summary.strip() else entry.content, limit
    )
    return replace(entry, summary=html.escape(text, quote=False) or None, content=None)


# --- opencc -----------------------------------------------------------------------------------------


@lru_cache(maxsize=len(OPENCC_CONFIGS))
def converter(config: str) -> Callable[[str], str]:
    """OpenCC's converter for a configuration name (loaded once per process: 20 ms)."""
    import opencc  # 5 MB of dictionaries: loaded by the first request that asks

    convert: Callable[[str], str] = opencc.OpenCC(f"{config}.json").convert
    return convert


def convert_html(text: str | None, convert: Callable[[str], str]) -> str | None:
    """HTML with the text between its tags converted; tags and their attributes unchanged."""
    if not text:
        return text
    parts = _TAG_SPLIT.split(text)
    parts[::2] = [convert(p) if p else p for p in parts[::2]]
    return "".join(parts)


def _converted(entry: Entry, convert: Callable[[str], str]) -> Entry:
    return replace(
        entry,
        title=convert(entry.title) if entry.title else entry.title,
        summary=convert_html(entry.summary, convert),
        content=convert_html(entry.content, convert),
    )
