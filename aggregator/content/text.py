"""What a reader sees of an HTML fragment, computed one way for every stage.

Owns the one rule for the text of HTML: ``<script>``, ``<style>``, ``<template>`` and
``<noscript>`` are dropped with everything inside them, and so are comments; a block-level tag
(paragraph, list item, heading, table cell, ``<br>``, ``<img>``…) keeps the words either side of it
apart, any other tag joins them (``<b>bo</b>ld`` is ``bold``, which matters for Chinese and
Japanese text without spaces); entities are decoded; runs of white space (any Unicode space,
``&nbsp;`` included) become one space. Also the first image of a fragment and an excerpt.

Used by cleaning (an entry's plain text), categorize (rules on the content), dedupe (fingerprints:
``fingerprint.normalize_text`` folds this text further), the feed renderers (excerpts), the feed
query (``filter_description``) and the feed adapter (which of content and summary says more). Does
not own: cleaning (``clean.py``, nh3) or extracting parts of a page (the adapters, BeautifulSoup
with lxml).

The fragments are read with regular expressions, not a tree: every stored fragment has passed
nh3, whose serialization escapes ``<`` and ``>`` in text and in attribute values, so a tag is
exactly ``<`` to the next ``>``; a tree parse would cost more than the rest of the text's
handling together. Raw markup from a source (a title, a summary before cleaning) is read by the
same rule. Dedupe's stored signatures depend on this rule: changing what it drops or what it
reads as a tag changes them, and needs a migration that recomputes them (``store/schema.py``).
"""

from __future__ import annotations

import html
import re

# Elements whose content a reader never sees, and comments (lazy: up to the element's end tag).
_HIDDEN = re.compile(
    r"<(script|style|template|noscript)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL
)
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)?[^>]*>")  # any "<" to the next ">", named or not
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "br",
        "hr",
        "li",
        "ul",
        "ol",
        "dl",
        "dd",
        "dt",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "table",
        "tr",
        "td",
        "th",
        "figure",
        "figcaption",
        "section",
        "article",
        "header",
        "footer",
        "img",
    }
)
# An <img> start tag and its attributes, as the HTML tokenizer reads them (quoted values may hold
# ">"); cleaning reads lazy images with them too.
IMG_TAG = re.compile(r"""<img(?=[\s/>])((?:[^>"']|"[^"]*"|'[^']*')*)>""", re.IGNORECASE)
ATTRIBUTE = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")


def drop_hidden(markup: str) -> str:
    """``markup`` with scripts, styles, templates, noscripts and comments replaced by a space."""
    return _HIDDEN.sub(" ", markup)


def html_text(markup: str | None) -> str:
    """The plain text of an HTML fragment, by the rule above (``""`` for none)."""
    if not markup:
        return ""
    if "<" not in markup and "&" not in markup:
        return normalize_space(markup)
    # Split at tags: [text, tag name, text, …]; each text is decoded alone (a reference never
    # spans a tag: "&</b>amp;" is "&amp;" as written, not "&").
    pieces = _TAG.split(drop_hidden(markup))
    pieces[::2] = [html.unescape(text) for text in pieces[::2]]
    pieces[1::2] = [" " if name and name.lower() in _BLOCKS else "" for name in pieces[1::2]]
    return normalize_space("".join(pieces))


def normalize_space(text: str) -> str:
    """Runs of white space (Unicode's, not only ASCII's) as one space; none at either end."""
    return " ".join(text.split())


def first_image(markup: str | None) -> str | None:
    """The ``src`` of the first ``<img>`` that has a ``src`` attribute, entities decoded; None
    when there is none or that one is empty (scripts and comments are not looked in)."""
    if not markup or "<img" not in markup.lower():
        return None
    for tag in IMG_TAG.finditer(drop_hidden(markup)):
        for attribute in ATTRIBUTE.finditer(tag.group(1)):
            if attribute.group(1).lower() == "src":
                return html.unescape(unquote(attribute.group(2))) or None
    return None


def unquote(raw: str | None) -> str:
    """An attribute's value as written (``ATTRIBUTE``'s second group) without its quotes."""
    if raw is None:
        return ""
    return raw[1:-1] if raw[:1] in ("'", '"') else raw


def excerpt(markup: str | None, limit: int) -> str:
    """The fragment's text cut to at most ``limit`` characters, an ellipsis ending a cut one."""
    return cut(html_text(markup), limit)


def cut(text: str, limit: int) -> str:
    """``text`` when it has at most ``limit`` characters, else its start and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
