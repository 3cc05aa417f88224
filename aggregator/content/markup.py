"""HTML serialization shared by content cleaning and the adapters that cut HTML out of pages.

Owns one thing: the bs4 formatter that writes HTML5 with attributes in document order (bs4 sorts
them by default) and escapes only ``&``, ``<`` and ``>``, so a Hexo post or a feed keeps the
markup of the source byte for byte where nothing was rewritten.
"""

from __future__ import annotations

from typing import Any

from bs4 import Tag
from bs4.dammit import EntitySubstitution
from bs4.formatter import HTMLFormatter


class InOrder(HTMLFormatter):
    def __init__(self) -> None:
        super().__init__(
            entity_substitution=EntitySubstitution.substitute_xml, void_element_close_prefix=""
        )

    def attributes(self, tag: Tag) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in tag.attrs.items() if v is not None]


IN_ORDER = InOrder()
