"""OPML 2.0: the list of sources out, and the feeds of someone else's list into the config file.

Owns: writing the configured sources as an OPML document (outlines nested by category path;
``xmlUrl`` is the source's own feed, or our republished Atom feed for sources that are not feeds,
such as Qutoutiao; titles are plain text, ``htmlUrl`` follows the URL policy of ``content/urls.py``
and credentials in URLs are shown as ``***``; ``agg:`` attributes carry the source id, kind,
configured category path, options, title and interval, so export -> import restores the same
``[[sources]]``); reading the feed outlines of an OPML file (safely: no entities, no network;
``xmlUrl`` or only ``url``; every comma-separated category: the folder, else the first, is the
source's ``category``, the others its ``also_in``; outlines that are not feeds listed with why);
and adding them to a config file's text as ``[[sources]]`` tables with tomlkit, which keeps every
comment and the layout of what is already there. Does not own: reading or writing files (the CLI
does), validating the config (config/loading.py, called on the result before anyone writes it).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import tomlkit
from lxml import etree
from tomlkit.items import AoT, Table

from ..config.loading import parse
from ..config.settings import Settings, SourceSettings
from ..content.urls import public_link, redact
from ..errors import AggregatorError
from ..models import Source, SourceState
from .catalog import source_title
from .render import plain_text

OPML_TYPE = "text/x-opml; charset=utf-8"
# Our own outline attributes (agg:id, agg:kind, agg:category, agg:also_in, agg:url, agg:options,
# agg:title, agg:interval, agg:site_name): what export -> import needs to restore the same
# [[sources]].
NS = "urn:aggregator:opml:1"
_Q = f"{{{NS}}}"
_SLUG = re.compile(r"[^a-z0-9]+")
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_MAX_ID = 60


# --- export -----------------------------------------------------------------------------------------


def export_opml(
    settings: Settings, sources: Mapping[str, Source], states: Iterable[SourceState] = ()
) -> bytes:
    """The configured sources as OPML 2.0, nested by category path; the same bytes every time."""
    known = {s.source_id: s for s in states}
    configured = {s.id: s for s in settings.sources}
    root = etree.Element("opml", version="2.0", nsmap={"agg": NS})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = f"{settings.publish.title}: sources"
    body = etree.SubElement(root, "body")
    folders: dict[tuple[str, ...], etree._Element] = {(): body}
    ordered = sorted(
        sources.values(), key=lambda s: (s.category, _title(s, known).casefold(), s.id)
    )
    for src in ordered:
        parent = _folder(folders, src.category)
        attrs = _outline(src, known.get(src.id), settings, known)
        attrs |= _own_attributes(src, configured.get(src.id), attrs)
        etree.SubElement(parent, "outline", attrs)
    document: bytes = etree.tostring(
        root, encoding="UTF-8", xml_declaration=True, pretty_print=True
    )
    return document


def _folder(
    folders: dict[tuple[str, ...], etree._Element], path: tuple[str, ...]
) -> etree._Element:
    if path not in folders:
        parent = _folder(folders, path[:-1])
        folders[path] = etree.SubElement(parent, "outline", text=path[-1], title=path[-1])
    return folders[path]


def _outline(
    src: Source, state: SourceState | None, settings: Settings, known: Mapping[str, SourceState]
) -> dict[str, str]:
    title = _title(src, known)
    if src.kind == "feed":
        xml_url = state.url if state and state.url else src.url
    else:
        xml_url = f"{settings.server.public_base}/feeds/source/{quote(src.id, safe='')}.atom"
    attrs = {"type": "rss", "text": title, "title": title, "xmlUrl": redact(xml_url)}
    html_url = public_link(state.site_link) if state else None
    if html_url:
        attrs["htmlUrl"] = redact(html_url)
    paths = [p for p in (src.category, *src.also_in) if p]
    if paths:  # OPML 2.0: comma-separated, each a slash-delimited path
        attrs["category"] = ",".join("/" + "/".join(p) for p in paths)
    return attrs


def _own_attributes(
    src: Source, cfg: SourceSettings | None, attrs: Mapping[str, str]
) -> dict[str, str]:
    """The agg: attributes: id, kind and what the source's table says beyond the OPML basics."""
    own = {f"{_Q}id": src.id, f"{_Q}kind": src.kind}
    if cfg is None:
        return own
    if cfg.category is not None:
        own[f"{_Q}category"] = " / ".join(cfg.category)
    if cfg.also_in:  # JSON: a category name may hold a comma
        own[f"{_Q}also_in"] = json.dumps([" / ".join(p) for p in cfg.also_in], ensure_ascii=False)
    if cfg.url and src.kind != "feed":
        own[f"{_Q}url"] = redact(cfg.url)
    if cfg.model_extra:
        own[f"{_Q}options"] = json.dumps(
            cfg.model_extra, ensure_ascii=False, sort_keys=True, default=str
        )
    for name in ("title", "site_name"):
        if getattr(cfg, name):
            own[f"{_Q}{name}"] = plain_text(getattr(cfg, name)) or ""
    if cfg.interval is not None:
        own[f"{_Q}interval"] = f"{cfg.interval:g}"
    if cfg.site_url:  # the configured key, apart from the site the feed names (htmlUrl)
        own[f"{_Q}site_url"] = redact(cfg.site_url)
        if "htmlUrl" not in attrs:
            own["htmlUrl"] = redact(cfg.site_url)
    return own


def _title(src: Source, known: Mapping[str, SourceState]) -> str:
    """Plain text: a feed's own title may hold markup, which OPML readers would show or run."""
    return plain_text(source_title(src, known.get(src.id))) or src.id


# --- import -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpmlFeed:
    """One feed outline of an OPML file (with our agg: attributes when we exported it)."""

    url: str
    title: str | None = None
    category: tuple[str, ...] = ()
    site_url: str | None = None  # htmlUrl
    source_id: str | None = None  # agg:id: kept, so /feeds/source/ID URLs stay the same
    kind: str = "feed"
    options: Mapping[str, Any] = field(default_factory=dict)  # agg:options
    site_name: str | None = None
    interval: float | None = None
    also_in: tuple[tuple[str, ...], ...] = ()  # the rest of a comma-separated category attribute
    exported: bool = False  # written by our export: its url is our own feed for other kinds


@dataclass
class ImportReport:
    text: str  # the new config text (equal to the old one when nothing was added)
    added: list[tuple[str, str]] = field(default_factory=list)  # (new source id, url)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (url or title, why)
    notes: list[str] = field(default_factory=list)  # what was kept differently


@dataclass(frozen=True)
class Skipped:
    """An outline read_opml does not take as a feed, with why."""

    what: str  # its URL, else its title
    why: str


def read_opml(data: bytes, skipped: list[Skipped] | None = None) -> list[OpmlFeed]:
    """The feed outlines (those with an ``xmlUrl``, or only a ``url``), their folders as category
    paths; outlines that are not feeds (``type="link"``, no URL, no children) go to ``skipped``."""
    if _ENTITY.search(data):  # OPML needs no DTD; declared entities only serve expansion attacks
        raise AggregatorError("not an OPML file we read: it declares XML entities")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        remove_comments=True,
        remove_pis=True,
        huge_tree=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise AggregatorError(f"not an OPML file: {exc}") from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise AggregatorError("not an OPML file: no <opml><body>")
    found: list[OpmlFeed] = []
    _walk(body, (), found, skipped if skipped is not None else [])
    return found


def _walk(
    element: etree._Element, path: tuple[str, ...], found: list[OpmlFeed], skipped: list[Skipped]
) -> None:
    for outline in element.iterchildren("outline"):
        attrs = {
            str(k).lower(): v.strip()
            for k, v in outline.attrib.items()
            if not str(k).startswith("{")
        }
        own = {
            str(k)[len(_Q) :]: v.strip() for k, v in outline.attrib.items() if str(k).startswith(_Q)
        }
        name = attrs.get("title") or attrs.get("text") or ""
        kind = attrs.get("type", "").lower()
        url = attrs.get("xmlurl") or attrs.get("url", "")
        has_children = any(True for _ in outline.iterchildren("outline"))
        if kind == "link" or kind == "include":
            skipped.append(
                Skipped(
                    url or name,
                    f'a type="{kind}" outline (a web page or another OPML file), not a feed',
                )
            )
        elif url:
            found.append(_feed(url, name, path, attrs, own))
        elif has_children:
            _walk(outline, (*path, name) if name else path, found, skipped)
        elif own.get("kind", "feed") != "feed":
            found.append(_feed("", name, path, attrs, own))
        elif name:
            skipped.append(Skipped(name, "no xmlUrl or url: not a feed"))


def _feed(
    url: str, name: str, path: tuple[str, ...], attrs: Mapping[str, str], own: Mapping[str, str]
) -> OpmlFeed:
    categories = _category_attr(attrs.get("category", ""))
    category = path or (categories[0] if categories else ())
    also = tuple(dict.fromkeys(c for c in categories if c != category))
    options = _json(own.get("options"), dict) or {}
    try:
        interval = float(own["interval"]) if own.get("interval") else None
    except ValueError:
        interval = None
    exported = bool(own)
    if exported:  # the configured path only (a kind's default category is not written out)
        category = tuple(p.strip() for p in own.get("category", "").split("/") if p.strip())
        listed = _json(own.get("also_in"), list) or []
        also = tuple(p for p in (_path(str(x)) for x in listed) if p)
    return OpmlFeed(
        url=own.get("url", "") if own.get("kind", "feed") != "feed" else url,
        title=(own.get("title") or None) if exported else (name or None),
        category=category,
        site_url=(own.get("site_url") if exported else attrs.get("htmlurl")) or None,
        source_id=own.get("id") or None,
        kind=own.get("kind") or "feed",
        options=options,
        site_name=own.get("site_name") or None,
        interval=interval,
        also_in=also,
        exported=exported,
    )


def _json(value: str | None, kind: type) -> Any:
    """An agg: attribute's JSON value when it is of ``kind``, else None."""
    try:
        found = json.loads(value) if value else None
    except ValueError:
        return None
    return found if isinstance(found, kind) else None


def _path(value: str) -> tuple[str, ...]:
    """A category path from ``/a/b`` (OPML) or ``a / b`` (our config's spelling)."""
    return tuple(p.strip() for p in value.split("/") if p.strip())


def _category_attr(value: str) -> list[tuple[str, ...]]:
    """Every path of a comma-separated category attribute (``/Tech/News,/科技``)."""
    paths = [_path(part) for part in value.split(",")]
    return [p for p in paths if p]


def add_to_config(
    config_text: str,
    feeds: Sequence[OpmlFeed],
    own_base: str | None = None,
    skipped: Sequence[Skipped] = (),
) -> ImportReport:
    """``config_text`` with a ``[[sources]]`` table appended for each new feed of ``feeds``.

    Ids are the exported ``agg:id`` when there is one and it is free, else derived from titles
    (else the URL's host), never repeating one; URLs already configured (or repeated in the OPML
    file, or our own feeds) are skipped, as are the ``skipped`` outlines read_opml set aside.
    The result is validated.
    """
    doc = tomlkit.parse(config_text)
    tables = _sources_of(doc)
    taken = {str(t.get("id", "")) for t in tables}
    seen = {_url_key(str(t["url"])) for t in tables if t.get("url")}
    report = ImportReport(config_text, skipped=[(s.what, s.why) for s in skipped])
    for feed in feeds:
        why = _skip_reason(feed, seen, taken, own_base)
        if why:
            report.skipped.append((feed.url or feed.source_id or feed.title or "", why))
            continue
        if feed.url:
            seen.add(_url_key(feed.url))
        source_id = (
            feed.source_id
            if feed.source_id and feed.source_id not in taken
            else derive_id(feed.title, feed.url, taken)
        )
        taken.add(source_id)
        tables = _append(doc, tables, _table(source_id, feed))
        report.added.append((source_id, feed.url or f"kind {feed.kind}"))
    if report.added:
        report.text = tomlkit.dumps(doc)
        parse(report.text, "the config with the imported sources")  # raises ConfigError
    return report


def _sources_of(doc: tomlkit.TOMLDocument) -> list[Table]:
    existing = doc.get("sources")
    if existing is None:
        return []
    if not isinstance(existing, AoT):
        raise AggregatorError("the config's sources are not written as [[sources]] tables")
    return list(existing)


def _append(doc: tomlkit.TOMLDocument, tables: list[Table], table: Table) -> list[Table]:
    existing = doc.get("sources")
    if isinstance(existing, AoT):
        last = existing[-1] if len(existing) else None
        if last is not None and not last.as_string().endswith("\n\n"):
            last.add(tomlkit.nl())  # a blank line between the old last table and the new one
        existing.append(table)
    else:
        aot = tomlkit.aot()
        aot.append(table)
        doc.append("sources", aot)
    return [*tables, table]


def _table(source_id: str, feed: OpmlFeed) -> Table:
    table = tomlkit.table()
    table.add("id", source_id)
    if feed.kind != "feed":
        table.add("kind", feed.kind)
    if feed.url:
        table.add("url", feed.url)
    if feed.title:
        table.add("title", feed.title)
    if feed.category:
        table.add("category", " / ".join(feed.category))
    if feed.also_in:
        table.add("also_in", [" / ".join(p) for p in feed.also_in])
    if feed.site_name:
        table.add("site_name", feed.site_name)
    if feed.site_url:
        table.add("site_url", feed.site_url)
    if feed.interval is not None:
        table.add("interval", int(feed.interval) if feed.interval.is_integer() else feed.interval)
    for key, value in feed.options.items():
        table.add(key, value)
    table.add(tomlkit.nl())
    return table


def _skip_reason(
    feed: OpmlFeed, seen: set[str], taken: set[str], own_base: str | None
) -> str | None:
    if feed.kind != "feed" and feed.source_id:
        return f"already configured (id {feed.source_id})" if feed.source_id in taken else None
    parts = urlsplit(feed.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL"
    if own_base and feed.url.startswith(own_base.rstrip("/") + "/feeds/"):
        return "one of this server's own feeds"
    if _url_key(feed.url) in seen:
        return "already configured"
    return None


def _url_key(url: str) -> str:
    """URLs that name the same feed compare equal: case of scheme and host, default port,
    a trailing slash."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/") or ""
    return f"{scheme}://{host}{path}" + (f"?{parts.query}" if parts.query else "")


def derive_id(title: str | None, url: str, taken: Iterable[str]) -> str:
    """A source id from a title (ASCII letters and digits), else from the URL's host, made
    unique with a ``-2``, ``-3`` … suffix."""
    base = _slug(title or "") or _slug(_host(url)) or "feed"
    used = set(taken)
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SLUG.sub("-", ascii_text.lower()).strip("-")[:_MAX_ID].strip("-")


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")
