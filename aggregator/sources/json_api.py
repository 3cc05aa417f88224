"""The ``json`` source kind: any JSON API as a source, described by the config alone.

The options (``JsonOptions``, below) say where the list of items is (``items``), where each field
is inside an item (``[sources.fields]``: a path, several paths of which the first found wins, or a
template such as ``"https://site/p/{id}"``), and optionally where an item's full content is
(``[sources.detail]``: a URL template, default the item's link, and a JSON path or a CSS selector
in that document; ``remove`` drops what its selectors match from either).

Paths are dotted keys with ``[n]`` indexes (negative from the end), ``[*]`` for every element of a
list (or every value of an object) and ``["a.b"]`` for keys with dots: ``data.items``,
``cover[0]``, ``tags[*].name``; ``""`` is the document itself. Our own small syntax rather than
JSONPath or JMESPath: those return nothing when a path misses, while a walk of our own can say
where it stopped (``no key 'titel' (keys: id, title, url)``), which is what turns a config mistake
into a message the operator can act on; and it needs no dependency.

Does not own: fetching (``enrich`` is handed the pipeline's fetch), converting and checking the
found values (``fields``), cleaning HTML (the pipeline).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BeforeValidator, model_validator

from ..config.types import JsonPath, KindOptions, Section, Selector, one_or_many
from ..content.charset import decode_page, decode_text
from ..errors import ParseError
from ..models import FetchResult, Item, ParsedFeed, Source
from . import NO_DEFAULTS, FetchFn
from .fields import (
    FieldSpec,
    Found,
    RawItem,
    build_items,
    content_type,
    fetch_extra,
    ineffective_keys,
    needs_title_or_link,
    scalar_text,
    selected_html,
    short_json,
    without,
)

log = logging.getLogger("aggregator.sources.json")


class _Star:
    def __repr__(self) -> str:
        return "[*]"


STAR = _Star()
Step = str | int | _Star

_STEP = re.compile(r"""\.?([^.\[\]'"\s]+)|\[(-?\d+|\*|"[^"]*"|'[^']*')\]""")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_JSONP = re.compile(r"^\s*[\w$.]+\s*\((.*)\)\s*;?\s*$", re.DOTALL)
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


# --- options: the keys of a [[sources]] table of kind json (checked when the config is read)


class JsonField(FieldSpec):
    path: Annotated[tuple[JsonPath, ...], BeforeValidator(one_or_many)] = ()  # first found wins
    template: str | None = None  # "https://site/p/{id}": {path} placeholders into the item

    @model_validator(mode="after")
    def _path_or_template(self) -> JsonField:
        if bool(self.path) == bool(self.template):
            raise ValueError("give either path or template")
        return self


def _json_field(value: Any) -> Any:
    return {"path": value} if isinstance(value, (str, list)) else value


JsonFieldSpec = Annotated[JsonField, BeforeValidator(_json_field)]


class JsonFields(Section):
    id: JsonFieldSpec | None = None
    title: JsonFieldSpec | None = None
    link: JsonFieldSpec | None = None
    published: JsonFieldSpec | None = None
    updated: JsonFieldSpec | None = None
    author: JsonFieldSpec | None = None
    summary: JsonFieldSpec | None = None
    content: JsonFieldSpec | None = None
    image: JsonFieldSpec | None = None
    categories: JsonFieldSpec | None = None

    @model_validator(mode="after")
    def _useful(self) -> JsonFields:
        needs_title_or_link(self)
        return self


class JsonDetail(Section):
    url: str | None = None  # template with {path} placeholders into the list item; default its link
    content: JsonPath | None = None  # the full content in a JSON detail document
    selector: Selector | None = None  # ... or in an HTML detail document
    remove: Annotated[tuple[Selector, ...], BeforeValidator(one_or_many)] = ()

    @model_validator(mode="after")
    def _content_or_selector(self) -> JsonDetail:
        if (self.content is None) == (self.selector is None):
            raise ValueError("give either content (a JSON path) or selector (a CSS selector)")
        return self


class JsonOptions(KindOptions):
    items: JsonPath  # where the list of items is; "" when the document is the list
    fields: JsonFields
    detail: JsonDetail | None = None

    def ineffective(self) -> list[str]:
        return ineffective_keys(self.fields)


class JsonAdapter:
    kind = "json"
    options_model = JsonOptions
    defaults = NO_DEFAULTS

    def default_url(self, options: Mapping[str, Any]) -> str | None:
        return None

    def request_url(self, source: Source, effective_url: str) -> str:
        return effective_url

    def parse(self, source: Source, result: FetchResult) -> ParsedFeed:
        options = JsonOptions.model_validate(dict(source.options))
        doc = load_json(result.content, content_type(result))
        objects = item_list(doc, options.items)
        specs = field_specs(options)
        raws = [_raw_item(obj, specs) for obj in objects]
        built = build_items(raws, specs, result.url, result.fetched_at)
        return ParsedFeed(
            title=source.title or source.site_name,
            link=None,
            items=built.items,
            undated=built.undated,
        )

    async def enrich(self, source: Source, item: Item, fetch: FetchFn) -> Item:
        options = JsonOptions.model_validate(dict(source.options))
        if options.detail is None:
            return item
        url = item.extra.get("detail_url") or item.link
        extra = await fetch_extra(url, fetch)
        result = extra.result
        if result is None:
            return extra.missing(item)
        if options.detail.content is not None:
            html, why = _json_detail(result, options.detail.content)
            html = without(html, options.detail.remove) if html is not None else None
            why = why or "detail.content: nothing left after remove"
        else:
            text = decode_page(result.content, content_type(result))
            html, why = selected_html(text, options.detail.selector or "", options.detail.remove)
        if html is None:
            log.warning("source=%s event=detail_unusable url=%s problem=%r", source.id, url, why)
            return replace(item, detail_error=f"{url}: detail unusable: {why}")
        return replace(item, content=html)


def field_specs(options: JsonOptions) -> dict[str, JsonField]:
    """The configured fields by name, plus ``detail.url`` when the detail URL is a template."""
    specs = {name: spec for name, spec in options.fields if spec is not None}
    if options.detail is not None and options.detail.url:
        specs["detail.url"] = JsonField(template=options.detail.url)
    return specs


# --- documents -----------------------------------------------------------------------------------


def load_json(content: bytes, content_type_header: str | None = None) -> Any:
    """The decoded document: UTF-8 (a BOM allowed), else the declared or detected charset;
    a JSONP wrapper ``callback({...})`` is unwrapped."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text, _encoding = decode_text(content, content_type_header)
    try:
        return json.loads(text)
    except ValueError as exc:
        wrapped = _JSONP.match(text)
        if wrapped:
            try:
                return json.loads(wrapped.group(1))
            except ValueError:
                pass
        raise ParseError(f"not JSON: {exc}; the answer starts {text.strip()[:120]!r}") from None


def item_list(doc: Any, path: str) -> list[Any]:
    """The list of items at ``path``; ParseError saying where the path stopped or what is there."""
    found, why = lookup(doc, compile_path(path))
    if not found:
        raise ParseError(f"items: path {path!r} found nothing: {why} (document: {short_json(doc)})")
    if len(found) == 1 and not isinstance(found[0], list):
        raise ParseError(
            f"items: path {path!r} is {_kind(found[0])}, not a list: {short_json(found[0])}"
        )
    items: list[Any] = []
    for value in found:  # several only for a [*] path: lists are joined, other matches are items
        items.extend(value if isinstance(value, list) else [value])
    return items


def _raw_item(obj: Any, specs: Mapping[str, JsonField]) -> RawItem:
    found = {name: find_field(obj, spec) for name, spec in specs.items()}
    return RawItem(found=found, sample=short_json(obj))


def find_field(obj: Any, spec: JsonField) -> Found:
    """What a field's paths (first found wins) or template find in one item."""
    if spec.template:
        return _fill_template(obj, spec.template)
    why = "not found"
    for path in spec.path:
        values, stop = lookup(obj, compile_path(path))
        values = _present(values)
        if values:
            return Found(tuple(values))
        why = f"path {path!r} found nothing: {stop or 'null or empty'}"
    return Found((), why)


def _present(values: list[Any]) -> list[Any]:
    """Found values with lists opened one level; nulls and blank strings are absent."""
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return [v for v in flat if v is not None and not (isinstance(v, str) and not v.strip())]


def _fill_template(obj: Any, template: str) -> Found:
    parts: dict[str, str] = {}
    for placeholder in _PLACEHOLDER.findall(template):
        values, stop = lookup(obj, compile_path(placeholder))
        values = _present(values)
        if not values:
            return Found((), f"template {{{placeholder}}} found nothing: {stop or 'null or empty'}")
        try:
            parts[placeholder] = scalar_text(values[0])
        except ValueError as exc:
            return Found((), f"template {{{placeholder}}}: {exc}")
    whole = template.strip()
    if whole.startswith("{") and whole.endswith("}") and whole.count("{") == 1:
        return Found((parts[whole[1:-1]],))  # the value itself, e.g. a URL held by the item
    filled = _PLACEHOLDER.sub(lambda m: quote(parts[m.group(1)], safe=_URL_SAFE), template)
    return Found((filled,))


def _json_detail(result: FetchResult, path: str) -> tuple[str | None, str]:
    try:
        doc = load_json(result.content, content_type(result))
    except ParseError as exc:
        return None, f"detail.content: {exc}"
    values, why = lookup(doc, compile_path(path))
    values = _present(values)
    if not values or not isinstance(values[0], str):
        return None, f"detail.content: path {path!r} found no text: {why or short_json(values)}"
    return values[0], ""


# --- paths ---------------------------------------------------------------------------------------


def compile_path(text: str) -> tuple[Step, ...]:
    """The steps of a path (the config has checked its syntax; a bad one is a ValueError)."""
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        match = _STEP.match(text, pos)
        if match is None:
            raise ValueError(f"not a path: {text!r} (at {text[pos:]!r})")
        key, bracket = match.groups()
        if key is not None:
            steps.append(key)
        elif bracket == "*":
            steps.append(STAR)
        elif bracket[0] in "\"'":
            steps.append(bracket[1:-1])
        else:
            steps.append(int(bracket))
        pos = match.end()
    return tuple(steps)


def lookup(doc: Any, steps: tuple[Step, ...]) -> tuple[list[Any], str]:
    """Every value the steps reach (one unless ``[*]`` is used), else nothing and where it stopped."""
    current = [doc]
    for depth, step in enumerate(steps):
        reached: list[Any] = []
        reason = ""
        for value in current:
            got, why = _step(value, step)
            reached += got
            reason = reason or why
        if not reached:
            return [], f"at {show_path(steps[: depth + 1])}: {reason}"
        current = reached
    return current, ""


def _step(value: Any, step: Step) -> tuple[list[Any], str]:
    if isinstance(step, _Star):
        if isinstance(value, list):
            return value, "" if value else "an empty list"
        if isinstance(value, dict):
            return list(value.values()), "" if value else "an empty object"
        return [], f"{_kind(value)}, not a list"
    if isinstance(step, int):
        if not isinstance(value, list):
            return [], f"{_kind(value)}, not a list"
        if -len(value) <= step < len(value):
            return [value[step]], ""
        return [], f"no index {step} in a list of {len(value)}"
    if isinstance(value, dict):
        if step in value:
            return [value[step]], ""
        keys = ", ".join(list(value)[:15]) + (", …" if len(value) > 15 else "")
        return [], f"no key {step!r} (keys: {keys})"
    return [], f"{_kind(value)}, not an object"


def show_path(steps: tuple[Step, ...]) -> str:
    text = ""
    for step in steps:
        if isinstance(step, str) and re.fullmatch(r"""[^.\[\]'"\s]+""", step):
            text += f".{step}" if text else step
        elif isinstance(step, str):
            text += f"[{json.dumps(step, ensure_ascii=False)}]"
        else:
            text += f"[{step!r}]" if isinstance(step, int) else "[*]"
    return repr(text)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
