"""The ``html`` source kind: any web page listing articles as a source, by CSS selectors.

The options (``HtmlOptions``, below) give a selector matching each item on the page (``items``),
per field a selector inside the item (``""`` for the item element itself) and what to take from the
match: its text (default), an attribute (``attr``; several, the first present wins, for lazy images
``["data-src", "src"]``) or its inner HTML (``html = true``); optionally ``[sources.detail]`` with
the selector of the full content on the item's own page (its link) and selectors to remove there.
Categories take every match; other fields the first. Links are made absolute against the page's
URL (or its ``<base href>``). The page is decoded by its HTTP charset, else its meta charset.

Does not own: fetching (``enrich`` is handed the pipeline's fetch), converting and checking the
found values (``fields``), cleaning HTML (the pipeline).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ..config.types import (
    KindOptions,
    Section,
    Selector,
    SelectorOrSelf,
    check_selector,
    one_or_many,
)
from ..content.charset import decode_page
from ..errors import ParseError
from ..models import FetchResult, Item, ParsedFeed, Source
from . import NO_DEFAULTS, FetchFn
from .fields import (
    FieldSpec,
    Found,
    RawItem,
    build_items,
    content_type,
    describe_page,
    fetch_extra,
    ineffective_keys,
    needs_title_or_link,
    selected_html,
    short_html,
    soup_of,
)

log = logging.getLogger("aggregator.sources.html")


# --- options: the keys of a [[sources]] table of kind html (checked when the config is read)


class HtmlField(FieldSpec):
    selector: SelectorOrSelf = ""  # relative to the item element; "" is the item element itself
    attr: Annotated[tuple[str, ...], BeforeValidator(one_or_many)] = ()  # first present wins
    html: bool = False  # the inner HTML instead of the text

    @model_validator(mode="after")
    def _attr_or_html(self) -> HtmlField:
        if self.attr and self.html:
            raise ValueError("give either attr or html, not both")
        return self


def _html_field(value: Any) -> Any:
    return {"selector": value} if isinstance(value, str) else value


HtmlFieldSpec = Annotated[HtmlField, BeforeValidator(_html_field)]


class HtmlFields(Section):
    id: HtmlFieldSpec | None = None
    title: HtmlFieldSpec | None = None
    link: HtmlFieldSpec | None = None
    published: HtmlFieldSpec | None = None
    updated: HtmlFieldSpec | None = None
    author: HtmlFieldSpec | None = None
    summary: HtmlFieldSpec | None = None
    content: HtmlFieldSpec | None = None
    image: HtmlFieldSpec | None = None
    categories: HtmlFieldSpec | None = None

    @model_validator(mode="after")
    def _useful(self) -> HtmlFields:
        needs_title_or_link(self)
        return self


class HtmlDetail(Section):
    selector: Selector  # the full content on the item's own page (its link)
    remove: Annotated[tuple[Selector, ...], BeforeValidator(one_or_many)] = ()  # dropped inside it


class HtmlOptions(KindOptions):
    items: Annotated[str, Field(min_length=1), AfterValidator(check_selector)]  # one match per item
    fields: HtmlFields
    detail: HtmlDetail | None = None

    def ineffective(self) -> list[str]:
        return ineffective_keys(self.fields)


class HtmlAdapter:
    kind = "html"
    options_model = HtmlOptions
    defaults = NO_DEFAULTS

    def default_url(self, options: Mapping[str, Any]) -> str | None:
        return None

    def request_url(self, source: Source, effective_url: str) -> str:
        return effective_url

    def parse(self, source: Source, result: FetchResult) -> ParsedFeed:
        options = HtmlOptions.model_validate(dict(source.options))
        soup = soup_of(decode_page(result.content, content_type(result)))
        elements = [e for e in soup.select(options.items) if isinstance(e, Tag)]
        if not elements:
            raise ParseError(
                f"items: selector {options.items!r} matched nothing; {describe_page(soup)}"
            )
        specs = {name: spec for name, spec in options.fields if spec is not None}
        raws = [
            RawItem(
                {name: find_field(e, name, spec) for name, spec in specs.items()}, short_html(e)
            )
            for e in elements
        ]
        built = build_items(raws, specs, page_base(soup, result.url), result.fetched_at)
        return ParsedFeed(
            title=source.title or page_title(soup),
            link=result.url,
            items=built.items,
            undated=built.undated,
        )

    async def enrich(self, source: Source, item: Item, fetch: FetchFn) -> Item:
        options = HtmlOptions.model_validate(dict(source.options))
        if options.detail is None:
            return item
        extra = await fetch_extra(item.link, fetch)
        result = extra.result
        if result is None:
            return extra.missing(item)
        text = decode_page(result.content, content_type(result))
        html, why = selected_html(text, options.detail.selector, options.detail.remove)
        if html is None:
            log.warning(
                "source=%s event=detail_unusable url=%s problem=%r", source.id, item.link, why
            )
            return replace(item, detail_error=f"{item.link}: detail unusable: {why}")
        return replace(item, content=html)


def find_field(element: Tag, name: str, spec: HtmlField) -> Found:
    """What a field's selector and attribute find in one item element."""
    targets = [element] if not spec.selector else [t for t in element.select(spec.selector)]
    if not targets:
        return Found((), f"selector {spec.selector!r} matched nothing")
    if name != "categories":
        targets = targets[:1]
    values = [v for v in (_value(t, spec) for t in targets) if v]
    if values:
        return Found(tuple(values))
    what = f"{spec.selector!r}" if spec.selector else "the item element"
    if spec.attr:
        return Found((), f"{what} has no {' or '.join(spec.attr)} attribute")
    return Found((), f"{what} is empty")


def _value(tag: Tag, spec: HtmlField) -> str:
    if spec.html:
        return tag.decode_contents().strip()
    for attr in spec.attr:
        value = tag.get(attr)
        text = " ".join(value) if isinstance(value, list) else (value or "")
        if text.strip():
            return text.strip()
    if spec.attr:
        return ""
    return tag.get_text(" ", strip=True)


def page_base(soup: BeautifulSoup, url: str) -> str:
    """The URL relative links on the page are relative to: its ``<base href>``, else its own."""
    base = soup.find("base", href=True)
    href = base.get("href") if isinstance(base, Tag) else None
    return urljoin(url, href) if isinstance(href, str) and href.strip() else url


def page_title(soup: BeautifulSoup) -> str | None:
    return soup.title.get_text(" ", strip=True) or None if soup.title else None
