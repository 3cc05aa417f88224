"""An item's identity within its source: its key and its content hash.

Owns:

- ``entry_keys``: the key of each parsed item within its source (guid, else link, else a hash of
  title and content); a key repeated inside one document is disambiguated, never merged.
- ``content_hash``: changes when the content really changes, not for whitespace or tracking noise.

Does not own: deciding what a changed hash means (decide.py), or identity across sources
(canonical.py, fingerprint.py, dedupe.py).
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Sequence

from ..models import Item
from .canonical import canonical_url

_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_SPACE_AT_TAG = re.compile(r" ?(<[^<>]*>) ?")


def _squash(text: str | None) -> str:
    """Text with entities decoded, Unicode composed and whitespace runs collapsed."""
    decoded = unicodedata.normalize("NFC", html.unescape(text or ""))
    return _SPACE.sub(" ", decoded).strip()


def _squash_html(markup: str | None, tracking_params: Sequence[str]) -> str:
    text = _squash(markup)
    text = _URL_IN_TEXT.sub(lambda m: canonical_url(m.group(0), tracking_params), text)
    return _SPACE_AT_TAG.sub(r"\1", text)  # re-indented markup is the same content


def content_hash(
    title: str | None, content: str | None, link: str | None, tracking_params: Sequence[str]
) -> str:
    """SHA-256 (hex) of the title and body as a reader sees them: whitespace runs, entity
    spellings, whitespace around tags and tracking parameters in URLs do not change it; any
    change of words, markup or real URLs does. The entry's link counts only when there is no
    body (then the link is what the entry is), so two sources carrying the same text under
    their own links share a hash."""
    body = _squash_html(content, tracking_params)
    parts = [_squash(title), body]
    if not body and link:
        parts.append(canonical_url(link, tracking_params))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _base_key(item: Item) -> str:
    if item.guid and item.guid.strip():
        return item.guid.strip()
    if item.link and item.link.strip():
        return item.link.strip()
    text = "\x1f".join((_squash(item.title), _squash(item.content or item.summary)))
    return "hash:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _item_digest(item: Item) -> str:
    text = "\x1f".join(_squash(x) for x in (item.title, item.link, item.content or item.summary))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def entry_keys(items: Sequence[Item]) -> list[str]:
    """One key per item, unique within the document, in the items' order. The first item with a
    given guid (else link, else title+content hash) keeps it as its key; a later item repeating
    it gets ``key#<hash of its title, link and body>``, and ``#2``, ``#3``… if even that repeats.
    Deterministic: the same document always gives the same keys."""
    keys: list[str] = []
    used: set[str] = set()
    for item in items:
        key = _base_key(item)
        if key in used:
            key = f"{key}#{_item_digest(item)}"
        stem, n = key, 1
        while key in used:
            n += 1
            key = f"{stem}#{n}"
        used.add(key)
        keys.append(key)
    return keys
