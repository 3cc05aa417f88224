"""Shared by the ``json`` and ``html`` source kinds: from what a config's field specs found in each
item to ``Item`` records, and precise reports when a config does not fit a document.

Owns: converting found values (text, links made absolute, dates by Unix time unit, strptime
formats (the first that matches), relative dates against the fetch time or ``dates.read_date``,
patterns), the per-field checks that turn a config mistake into one
``ParseError`` naming every field at fault with a sample of what was found, decoding HTML (meta
charset), describing a page whose selector matched nothing, the inner HTML of a detail document's
selected element, and fetching an extra document without failing the item. Does not own: finding
values in a document (json_api walks paths, html_page runs selectors) or cleaning HTML (the
pipeline does).

A field is a config mistake when it is found in no item at all (unless marked ``optional``), or when
every value found for it fails to convert. A value that fails in only some items is dropped from
those items and the items are kept: sites are uneven, and one odd item should not stop a source.
Items whose date did not parse are counted (``Built.undated``, then ``ParsedFeed.undated``): the
pipeline reports them in the fetch's outcome, the source's status and the log.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

from bs4 import BeautifulSoup, Tag
from pydantic import AfterValidator, BaseModel, BeforeValidator, model_validator

from ..config.types import Section, check_pattern, check_zone, one_or_many
from ..errors import FetchError, ParseError
from ..models import FetchResult, Item
from . import FetchFn
from .dates import plausible, read_date, relative_date

# --- the field specs the json and html kinds share (their options models: json_api.py and
# html_page.py; the config validates them with the rest of a [[sources]] table)


class FieldSpec(Section):
    """What every field of a json or html source may say besides where it is: how to read a date,
    a pattern to keep part of the value, and whether the field may be missing everywhere."""

    # strptime format(s) of a date, e.g. "%Y-%m-%d %H:%M"; the first that matches wins
    format: Annotated[tuple[str, ...], BeforeValidator(one_or_many)] = ()
    unit: Literal["s", "ms", "us", "ns"] | None = None  # a date given as a Unix timestamp
    # for dates without a zone (formats without %z, relative dates such as "昨天 09:15")
    timezone: Annotated[str, AfterValidator(check_zone)] = "+08:00"
    pattern: Annotated[str, AfterValidator(check_pattern)] | None = (
        None  # keep the match (or group 1)
    )
    optional: bool = False  # found in no item at all is not a mistake

    @model_validator(mode="after")
    def _one_date_form(self) -> FieldSpec:
        if self.format and self.unit:
            raise ValueError("give either format or unit, not both")
        return self


def needs_title_or_link(fields: BaseModel) -> None:
    """A fields table that maps none of title, link or content gives entries with nothing in them."""
    if not any(getattr(fields, name) for name in ("title", "link", "content")):
        raise ValueError("map at least one of title, link or content")


DATE_FIELDS = frozenset({"published", "updated"})


def ineffective_keys(fields: BaseModel) -> list[str]:
    """Keys of field specs that would change nothing where they are: date keys (``format``,
    ``unit``, ``timezone``) on a field that is not a date, ``timezone`` with ``unit``."""
    problems: list[str] = []
    for name, spec in fields:
        if spec is None:
            continue
        given = spec.model_fields_set
        if name not in DATE_FIELDS:
            problems += [
                f"fields.{name}.{key}: has no effect: only published and updated are dates"
                for key in ("format", "unit", "timezone")
                if key in given
            ]
        elif spec.unit and "timezone" in given:
            problems.append(
                f"fields.{name}.timezone: has no effect with unit (a Unix time names an instant)"
            )
    return problems


log = logging.getLogger("aggregator.sources")

SAMPLE_CHARS = 200
_UNIT_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_UNIT_NAME = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_PLAUSIBLE_YEARS = range(1995, 2101)
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_LISTY = frozenset({"article", "section", "li", "dl", "tr", "h2", "h3"})


@dataclass(frozen=True)
class Found:
    """What one field's spec found in one item: the values (empty when absent), else why not."""

    values: tuple[Any, ...] = ()
    why: str = "not found"


@dataclass(frozen=True)
class RawItem:
    """One item of a document as the adapter sees it: per field what was found, and a sample."""

    found: Mapping[str, Found]
    sample: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Column:
    values: tuple[Any, ...]  # converted, one per item; None where absent or not convertible
    problem: str | None = None
    failures: tuple[tuple[int, str], ...] = ()  # (item index, why) where a value did not convert


# --- items ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """Items from raw items, and per item whose date did not parse why (``undated``)."""

    items: tuple[Item, ...]
    undated: tuple[str, ...] = ()


def build_items(
    raws: Sequence[RawItem],
    specs: Mapping[str, FieldSpec],
    base_url: str,
    now: datetime | None = None,
) -> Built:
    """Items from raw items; ParseError naming every field that does not fit the document.

    ``specs`` maps field names (``title``, ``link``, … and ``detail.url``) to their specs; ``now``
    (the fetch time) is what relative dates are relative to."""
    columns = {name: _column(name, spec, raws, base_url, now) for name, spec in specs.items()}
    problems = [c.problem for c in columns.values() if c.problem]
    if problems:
        raise ParseError("; ".join(problems))
    built = [(_item(i, raw, columns), i) for i, raw in enumerate(raws)]
    undated = {
        index: f"fields.{name}: {why}"
        for name in DATE_FIELDS
        if name in columns
        for index, why in columns[name].failures
    }
    items = tuple(item for item, _ in built if item is not None)
    return Built(
        no_newer_than_dated(items),
        tuple(undated[i] for item, i in built if item is not None and i in undated),
    )


def no_newer_than_dated(items: tuple[Item, ...]) -> tuple[Item, ...]:
    """Items without a published date dated like the oldest dated item of the same document, so
    an undated item never sorts above (or passes ``filter_time`` before) the source's dated ones;
    a document without any date is left alone (its items are then dated by first-seen time)."""
    dates = [item.published for item in items if item.published is not None]
    if not dates or len(dates) == len(items):
        return items
    floor = min(dates)
    return tuple(item if item.published else replace(item, published=floor) for item in items)


def _column(
    name: str, spec: FieldSpec, raws: Sequence[RawItem], base: str, now: datetime | None
) -> _Column:
    values: list[Any] = []
    failures: list[tuple[int, str]] = []
    for index, raw in enumerate(raws):
        found = raw.found.get(name, Found())
        try:
            values.append(convert(name, spec, found.values, base, now) if found.values else None)
        except ValueError as exc:
            values.append(None)
            failures.append((index, f"{exc} (item {index}: {raw.sample})"))
    present = sum(1 for raw in raws if raw.found.get(name, Found()).values)
    where = name if "." in name else f"fields.{name}"
    if raws and not present and not spec.optional:
        first = raws[0]
        why = first.found.get(name, Found()).why
        return _Column(
            tuple(values), f"{where}: {why} (in all {len(raws)} items; item 0: {first.sample})"
        )
    if present and len(failures) == present:
        return _Column(tuple(values), f"{where}: {failures[0][1]}")
    return _Column(tuple(values), failures=tuple(failures))


def _item(index: int, raw: RawItem, columns: Mapping[str, _Column]) -> Item | None:
    def get(name: str) -> Any:
        column = columns.get(name)
        return column.values[index] if column else None

    link, title, content = get("link"), get("title"), get("content")
    if not (link or title or content):
        return None
    extra = dict(raw.extra)
    if get("detail.url"):
        extra["detail_url"] = get("detail.url")
    return Item(
        guid=get("id") or link,
        link=link,
        title=title,
        content=content,
        summary=get("summary"),
        author=get("author"),
        published=get("published"),
        updated=get("updated"),
        categories=get("categories") or (),
        image=get("image"),
        extra=extra,
    )


# --- values --------------------------------------------------------------------------------------


def convert(
    name: str, spec: FieldSpec, values: Sequence[Any], base: str, now: datetime | None = None
) -> Any:
    """One field's value from what was found; ValueError saying what is wrong with it."""
    texts = [_pattern(spec, scalar_text(v)) for v in values]
    if name == "categories":
        return tuple(dict.fromkeys(t for t in texts if t))
    first = texts[0]
    if name in ("published", "updated"):
        return to_date(first, spec, now)
    if name in ("link", "image", "detail.url"):
        return absolute_link(first, base)
    if name == "title":
        return " ".join(first.split())
    return first


def scalar_text(value: Any) -> str:
    """The text of a found scalar: strings as they are, numbers without a needless ``.0``."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"found {short_json(value)}, not text or a number")  # noqa: TRY004 - a value error of the document, like every conversion here
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _pattern(spec: FieldSpec, text: str) -> str:
    if not spec.pattern:
        return text
    match = re.search(spec.pattern, text)
    if match is None:
        raise ValueError(f"pattern {spec.pattern!r} does not match {text!r}")
    return (match.group(1) if match.re.groups else match.group(0)).strip()


def to_date(text: str, spec: FieldSpec, now: datetime | None = None) -> datetime | None:
    """The instant ``text`` names: by the spec's unit; else by the first of its formats that
    matches or as a relative date against ``now`` (the fetch time), both in the spec's zone;
    without formats also in any form ``dates.read_date`` knows. None (absent) for a date that is no plausible instant
    (``dates.plausible``); ValueError when ``text`` is none of these."""
    if spec.unit:
        return _from_epoch(text, spec.unit)
    where = zone(spec.timezone)
    for form in spec.format:
        try:
            parsed = datetime.strptime(text, form)
        except ValueError:
            continue
        return plausible(parsed if parsed.tzinfo else parsed.replace(tzinfo=where))
    if now is not None:
        relative = relative_date(text, now, where)
        if relative is not None:
            return plausible(relative, now)
    if spec.format:
        forms = ", ".join(repr(f) for f in spec.format)
        raise ValueError(f"{text!r} matches no format ({forms}) and is no relative date")
    is_date, found = read_date(text)
    if is_date:
        return found
    raise ValueError(f"{text!r} is not a date (give format or unit)")


def _from_epoch(text: str, unit: str) -> datetime:
    try:
        when = datetime.fromtimestamp(float(text) / _UNIT_SCALE[unit], UTC)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of {_UNIT_NAME[unit]}") from None
    except (OverflowError, OSError):
        raise ValueError(f"{text!r} in {_UNIT_NAME[unit]} is out of range; wrong unit?") from None
    if when.year not in _PLAUSIBLE_YEARS:
        raise ValueError(f"{text!r} in {_UNIT_NAME[unit]} is {when:%Y-%m-%d}; wrong unit?")
    return when


def zone(name: str) -> tzinfo:
    """A zone from ``UTC``, ``+08:00`` / ``+0800`` or an IANA name (the config checked it)."""
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    match = _OFFSET.match(name)
    if match:
        minutes = int(match[2]) * 60 + int(match[3])
        return timezone(timedelta(minutes=-minutes if match[1] == "-" else minutes))
    return ZoneInfo(name)


def absolute_link(text: str, base: str) -> str:
    """``text`` resolved against ``base``; only http(s) links are links."""
    url = urljoin(base, text.strip())
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} is not a link")
    return url


# --- samples -------------------------------------------------------------------------------------


def short(text: str, limit: int = SAMPLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_json(value: Any, limit: int = SAMPLE_CHARS) -> str:
    return short(json.dumps(value, ensure_ascii=False, default=str), limit)


def short_html(tag: Tag, limit: int = SAMPLE_CHARS) -> str:
    return short(str(tag), limit)


# --- HTML ----------------------------------------------------------------------------------------


def soup_of(text: str) -> BeautifulSoup:
    return BeautifulSoup(text, "lxml")


def describe_page(soup: BeautifulSoup) -> str:
    """What a page holds, to help fix a selector: its title and its most repeated elements."""
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    counts = Counter(_shape(tag) for tag in soup.find_all(True) if _shape(tag))
    common = [f"{shape} ×{n}" for shape, n in counts.most_common(8) if n >= 2]
    head = f"the page has <title>{short(title, 80)}</title>" if title else "the page has no <title>"
    body = len(soup.find_all(True))
    return head + (f"; repeated: {', '.join(common)}" if common else f" and {body} elements")


def _shape(tag: Tag) -> str:
    """``div.item`` for an element with classes (the first one), the name of a few bare ones."""
    classes = tag.get("class")
    names = classes.split() if isinstance(classes, str) else list(classes or [])
    if names:
        return f"{tag.name}.{names[0]}"
    return tag.name if tag.name in _LISTY else ""


def selected_html(text: str, selector: str, remove: Sequence[str]) -> tuple[str | None, str]:
    """The inner HTML of the first element ``selector`` matches, without ``remove`` matches;
    else None and why."""
    soup = soup_of(text)
    element = soup.select_one(selector)
    if not isinstance(element, Tag):
        return None, f"selector {selector!r} matched nothing; {describe_page(soup)}"
    for unwanted in remove:
        for tag in element.select(unwanted):
            tag.decompose()
    html = element.decode_contents().strip()
    return (html, "") if html else (None, f"selector {selector!r} matched an empty element")


def without(html: str, remove: Sequence[str]) -> str | None:
    """An HTML fragment without what the ``remove`` selectors match; None when nothing is left."""
    if not remove:
        return html
    soup = soup_of(f"<div>{html}</div>")
    root = soup.find("div")
    if not isinstance(root, Tag):
        return html
    for unwanted in remove:
        for tag in root.select(unwanted):
            tag.decompose()
    return root.decode_contents().strip() or None


# --- extra documents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Extra:
    """An extra document (an item's detail or article page): its successful fetch, or why not."""

    result: FetchResult | None
    error: str | None = None  # why there is no result; None when there was no URL to fetch

    def missing(self, item: Item) -> Item:
        """``item`` marked as missing its detail for this reason (unchanged without a reason)."""
        return replace(item, detail_error=self.error) if self.error else item


async def fetch_extra(url: str | None, fetch: FetchFn) -> Extra:
    """Fetch ``url``; an extra document never fails the item, its failure is only recorded
    (``Item.detail_error``) so the item's detail is retried at later fetches."""
    if not url:
        return Extra(None)
    try:
        result = await fetch(url)
    except FetchError as exc:
        return Extra(None, f"{url}: {exc}")
    if result.ok and result.content.strip():
        return Extra(result)
    why = result.error or ("empty response" if result.ok else f"HTTP {result.status_code}")
    return Extra(None, f"{url}: {why}")


def content_type(result: FetchResult) -> str | None:
    return next((v for k, v in result.headers.items() if k.lower() == "content-type"), None)
