"""The kind-specific keys of a feed source (``kind = "feed"``, the default): full text for
summary-only feeds. Kept apart from feed.py so a parser worker, which imports feed.py to parse,
never loads pydantic; the config reads this model through ``FeedAdapter.options_model``."""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator

from ..config.types import Bool, KindOptions, Selector


class FeedOptions(KindOptions):
    """Full text (sources/fulltext.py): each new entry's article page (its link) is fetched and
    its main content becomes the entry's content; ``fulltext_selector`` picks it by CSS."""

    fulltext: Bool = False
    fulltext_selector: Selector | None = None  # the content on the article page; default: found

    @field_validator("fulltext_selector")
    @classmethod
    def _selector_needs_fulltext(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("fulltext"):
            raise ValueError("has no effect without fulltext = true")
        return value
