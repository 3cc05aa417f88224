"""OPML 2.0: the list of sources out, and the feeds of someone else's list into the config file.

Owns: writing the configured sources as an OPML document (outlines nested by category path;
``xmlUrl`` is the source's own feed, or our republished Atom feed for sources that are not feeds,
such as Qutoutiao; titles are plain text, ``htmlUrl`` follows the URL policy of ``urls.py`` and
credentials in URLs are shown as ``***``); reading the feed outlines of an OPML file (safely: no entities, no network);
and adding them to a config file's text as ``[[sources]]`` tables with tomlkit, which keeps every
comment and the layout of what is already there. Does not own: reading or writing files (the CLI
does), validating the config (config.py, called on the result before anyone writes it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import tomlkit
from lxml import etree
from tomlkit.items import AoT, Table

from ..config import Settings, parse
from ..errors import AggregatorError
from ..models import Source, SourceState
from ..urls import public_link, redact
from .catalog import source_title
from .render import plain_text

OPML_TYPE = "text/x-opml; charset=utf-8"
_SLUG = re.compile(r"[^a-z0-9]+")
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_MAX_ID = 60


# --- export -----------------------------------------------------------------------------------------


def export_opml(
    settings: Settings, sources: Mapping[str, Source], states: Iterable[SourceState] = ()
) -> bytes:
    """The configured sources as OPML 2.0, nested by category path; the same bytes every time."""
    known = {s.source_id: s for s in states}
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = f"{settings.publish.title}: sources"
    body = etree.SubElement(root, "body")
    folders: dict[tuple[str, ...], etree._Element] = {(): body}
    ordered = sorted(sources.values(), key=lambda s: (s.category, _title(s, known).casefold(), s.id))
    for src in ordered:
        parent = _folder(folders, src.category)
        etree.SubElement(parent, "outline", _outline(src, known.get(src.id), settings, known))
    document: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
    return document


def _folder(folders: dict[tuple[str, ...], etree._Element], path: tuple[str, ...]) -> etree._Element:
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
    if src.category:
        attrs["category"] = "/" + "/".join(src.category)
    return attrs


def _title(src: Source, known: Mapping[str, SourceState]) -> str:
    """Plain text: a feed's own title may hold markup, which OPML readers would show or run."""
    return plain_text(source_title(src, known.get(src.id))) or src.id


# --- import -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpmlFeed:
    """One feed outline of an OPML file."""

    url: str
    title: str | None = None
    category: tuple[str, ...] = ()


@dataclass
class ImportReport:
    text: str  # the new config text (equal to the old one when nothing was added)
    added: list[tuple[str, str]] = field(default_factory=list)  # (new source id, url)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (url, why)


def read_opml(data: bytes) -> list[OpmlFeed]:
    """The feed outlines (those with an ``xmlUrl``), their folders as category paths."""
    if _ENTITY.search(data):  # OPML needs no DTD; declared entities only serve expansion attacks
        raise AggregatorError("not an OPML file we read: it declares XML entities")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                             remove_pis=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise AggregatorError(f"not an OPML file: {exc}") from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise AggregatorError("not an OPML file: no <opml><body>")
    found: list[OpmlFeed] = []
    _walk(body, (), found)
    return found


def _walk(element: etree._Element, path: tuple[str, ...], found: list[OpmlFeed]) -> None:
    for outline in element.iterchildren("outline"):
        attrs = {k.lower(): v.strip() for k, v in outline.attrib.items()}
        name = attrs.get("title") or attrs.get("text") or ""
        if attrs.get("xmlurl"):
            category = path or _category_attr(attrs.get("category", ""))
            found.append(OpmlFeed(attrs["xmlurl"], name or None, category))
        else:
            _walk(outline, (*path, name) if name else path, found)


def _category_attr(value: str) -> tuple[str, ...]:
    first = value.split(",")[0]
    return tuple(p.strip() for p in first.split("/") if p.strip())


def add_to_config(config_text: str, feeds: Sequence[OpmlFeed], own_base: str | None = None) -> ImportReport:
    """``config_text`` with a ``[[sources]]`` table appended for each new feed of ``feeds``.

    Ids come from titles (else the URL's host), never repeating one; URLs already configured
    (or repeated in the OPML file, or our own feeds) are skipped. The result is validated.
    """
    doc = tomlkit.parse(config_text)
    tables = _sources_of(doc)
    taken = {str(t.get("id", "")) for t in tables}
    seen = {_url_key(str(t["url"])) for t in tables if t.get("url")}
    report = ImportReport(config_text)
    for feed in feeds:
        why = _skip_reason(feed.url, seen, own_base)
        if why:
            report.skipped.append((feed.url, why))
            continue
        seen.add(_url_key(feed.url))
        source_id = derive_id(feed.title, feed.url, taken)
        taken.add(source_id)
        tables = _append(doc, tables, _table(source_id, feed))
        report.added.append((source_id, feed.url))
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
    table.add("url", feed.url)
    if feed.title:
        table.add("title", feed.title)
    if feed.category:
        table.add("category", " / ".join(feed.category))
    table.add(tomlkit.nl())
    return table


def _skip_reason(url: str, seen: set[str], own_base: str | None) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL"
    if own_base and url.startswith(own_base.rstrip("/") + "/feeds/"):
        return "one of this server's own feeds"
    if _url_key(url) in seen:
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
