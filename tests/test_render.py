"""Feed rendering: RSS 2.0, Atom 1.0 and JSON Feed 1.1 that validators accept, whatever the entries.

Validity is checked three ways: Atom against the RFC 4287 RELAX NG schema with jing; RSS and Atom
against the W3C feed validator's main rules that a schema cannot express (``rss_problems`` and
``atom_problems`` below, each shown to catch what it looks for); every format parsed back.
"""

from __future__ import annotations

import calendar
import html
import html.entities
import json
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz
from functools import cache
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from aggregator.content.clean import clean, clean_html
from aggregator.models import Enclosure, Entry
from aggregator.publish.render import (
    CONTENT_TYPES,
    FALLBACK_TIME,
    FeedMeta,
    Format,
    SourceRef,
    entry_id,
    feed_id,
    render,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCHEMA = SHARED / "schemas" / "atom.rnc"
CORPUS = SHARED / "corpus"
FORMATS: tuple[Format, ...] = ("rss", "atom", "json")
T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
BASE = "https://agg.example.org/"
ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
MEDIA = "{http://search.yahoo.com/mrss/}"

META = FeedMeta(
    id="category/科技",
    title="Aggregator: 科技",
    description="Entries in 科技",
    self_url=BASE + "feeds/category/%E7%A7%91%E6%8A%80.atom",
    site_url=BASE,
    updated=T0 + timedelta(hours=1),
    ttl_minutes=30,
    hub="https://hub.example.net/",
    next_url=BASE + "feeds/category/%E7%A7%91%E6%8A%80.atom?before=2024-05-06T07%3A08%3A09Z.17",
    alternates={f: f"{BASE}feeds/category/%E7%A7%91%E6%8A%80.{f}" for f in FORMATS},
)
EMPTY_META = FeedMeta(
    id="all",
    title="All",
    description="",
    self_url=BASE + "feeds/all.rss",
    site_url=BASE,
    updated=None,
)


def entry(key: str, **changes: Any) -> Entry:
    """A complete, clean entry; ``changes`` override single fields."""
    base = Entry(
        source_id="hn",
        key=key,
        title=f"Entry {key}: 新闻 😀",
        link=f"https://news.example.com/item?id={key}",
        content=f'<p>Full text of {key} 😀 <a href="https://example.com/{key}">more</a></p>',
        summary=f"<p>Summary of {key}</p>",
        author="Jane Doe",
        published=T0 - timedelta(days=1),
        updated=T0 - timedelta(hours=12),
        categories=("tech", "新闻"),
        category_path=("新媒体", "趣头条"),
        enclosures=(Enclosure(f"https://cdn.example.com/{key}.mp3", "audio/mpeg", 1234),),
        first_seen=T0 - timedelta(hours=2),
        changed_at=T0,
        id=17,
    )
    return replace(base, **changes)


CLEAN = [
    entry("a"),
    entry("b", published=T0 - timedelta(days=3), updated=T0 - timedelta(hours=13)),
    entry("c", source_id="lobsters", updated=T0 - timedelta(hours=14)),
]

# Every kind of trouble an entry can bring, one per entry.
NASTY = [
    entry(
        "bare",
        title="",
        link=None,
        content=None,
        summary=None,
        author=None,
        published=None,
        updated=None,
        first_seen=None,
        changed_at=None,
        categories=(),
        category_path=(),
        enclosures=(),
    ),
    entry("markup", title="<b>Bold</b> &amp; <i>it</i> &lt;3 a <x"),
    entry(
        "controls",
        title="a\x00b\x08c\x0bd\x1fe\x7f\x85\ud800\uffff\ufffd\U0001ffff",
        content="<p>x\x00y\x0c\ud83d</p>",
        author="Ja\x01ne",
        categories=("t\x02ag",),
    ),
    entry("long", title="Long " * 2000, content="<p>" + "长文本 " * 200_000 + "</p>"),
    entry(
        "astral",
        title="𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀋 🎉",
        content="<p>🎉 𠀋</p>",
        author="作者 🎉",
        categories=("🎉",),
    ),
    entry("iri", link="https://例子.测试/路径/文章 1?q=中&x=a b#片段"),
    entry("mail", author="jane@example.com (Jane Doe)", summary=None),
    entry("angle", author="Jane Doe <jane@example.com>", content=None),
    entry(
        "enclosures",
        enclosures=(
            Enclosure("ftp://files.example.com/a.bin", None, None),
            Enclosure("https://cdn.example.com/b.mp4", "video/mp4; codecs=avc1", -1),
            Enclosure("https://cdn.example.com/c.jpg", "not a type", 0),
        ),
    ),
    entry("notitle", title="  ", summary="<p>Only a <b>summary</b> here</p>", content=None),
    entry("bare", title="a duplicate of the first: dropped"),
    entry("whitespace", title="  two\n\tlines  ", categories=(" ", "", "tech", "tech")),
]


# --- the W3C validator's rules, as far as they are cheap -----------------------------------------

RFC2822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d [+-]\d\d[03]0$"
)
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
URI = re.compile(r"^[a-zA-Z][0-9a-zA-Z+\-.]*:(//)?[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,#]+$")
TAG = re.compile(r"^tag:[a-z0-9.\-]+?,\d{4}(-\d\d(-\d\d)?)?:[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*$")
UUID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MIME = re.compile(r"^[^\s()<>,;:\\\"/\[\]?=]+/[^\s()<>,;:\\\"/\[\]?=]+$")
BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x80-\x9f\ufffd]")
LINK_RELS = {
    "alternate",
    "self",
    "enclosure",
    "related",
    "via",
    "hub",
    "next",
    "previous",
    "first",
    "last",
    "current",
}


def rfc822_problem(value: str) -> str | None:
    if not RFC2822.match(value):
        return f"not an RFC 2822 date: {value!r}"
    parsed = parsedate_tz(value)
    assert parsed is not None
    if time.strftime("%a", time.gmtime(calendar.timegm(parsed[:9]))) != value[:3]:
        return f"wrong day of week: {value!r}"
    return "implausible date (before 1990)" if parsed[0] < 1990 else None


def rfc3339_problem(value: str | None) -> str | None:
    if value is None or not RFC3339_Z.match(value):
        return f"not an RFC 3339 UTC (Z) date: {value!r}"
    return "implausible date (before 1990)" if value < "1990-01-01" else None


def plain_text_problem(el: Any, raw_lines: list[str], rss: bool) -> str | None:
    """The validator's 'nonhtml' rule for plain-text elements (titles, categories, names)."""
    value = el.text or ""
    if not value.strip():
        return f"blank <{el.tag}>"
    if re.search(r"</\w+>", value):
        return f"HTML in <{el.tag}>: {value[:60]!r}"
    line = raw_lines[el.sourceline - 1] if el.sourceline else ""
    entities = [
        v
        for v in re.findall(r"&(#?\w+)", value)
        if v in html.entities.name2codepoint or v == "apos" or not v.isalpha()
    ]
    if entities and "&#x" not in line:
        return f"entity-like text in <{el.tag}>: {value[:60]!r}"
    if rss and re.search(r"&#[x0-9]|<[/a-zA-Z]", value) and "&#x" not in line:
        return f"'&' or '<' in <{el.tag}> not written as a hex reference: {value[:60]!r}"
    return None


# The W3C validator's scan of HTML content for relative references (its absUrlMixin).
HTML_REF = re.compile(
    r"""<a\s+href=(?:"(.*?)"|'(.*?)'|([\w-]+))[\s>]|<img\s+[^>]*src=(?:"(.*?)"|'(.*?)'|([\w-]+))[\s>]""",
    re.IGNORECASE,
)
HTML_ELEMENTS = ("description", CONTENT + "encoded", ATOM + "content", ATOM + "summary")


def relative_ref_problems(root: Any) -> list[str]:
    """ContainsRelRef: an empty or relative link or image in HTML content."""
    problems = []
    for el in root.iter(*HTML_ELEMENTS):
        for groups in HTML_REF.findall(el.text or ""):
            ref = html.unescape(next((g for g in groups if g), "")).strip()
            if not re.match(r"\w+:", ref):
                problems.append(f"ContainsRelRef: {ref!r} in <{el.tag}>")
    return problems


def common_problems(doc: bytes, root: Any) -> list[str]:
    problems = relative_ref_problems(root)
    text = doc.decode("utf-8")
    if BAD_CHARS.search(text):
        problems.append(f"bad character {BAD_CHARS.search(text)!r}")
    for el in root.iter():
        for attr in ("href", "url"):
            value = el.get(attr)
            if value is not None and not URI.match(value):
                problems.append(f"InvalidFullLink: not an absolute URI in {attr}: {value!r}")
            elif value is not None and not value.lower().startswith(("http://", "https://")):
                problems.append(f"SchemeNotIANARegistered (or not a web link): {value!r}")
    return problems


def rss_problems(doc: bytes) -> list[str]:
    """What the W3C validator would report for an RSS 2.0 document (its main rules)."""
    root = etree.fromstring(doc)
    lines = doc.decode("utf-8").split("\n")
    problems = common_problems(doc, root)
    channel = root.find("channel")
    if root.tag != "rss" or root.get("version") != "2.0" or channel is None:
        return problems + ["not an RSS 2.0 document"]
    for name in ("title", "link", "description"):
        if not (channel.findtext(name) or "").strip():
            problems.append(f"channel lacks {name}")
    if not URI.match(channel.findtext("link") or ""):
        problems.append("channel link is not an absolute URI")
    if channel.find("title") is not None:
        problems.append(plain_text_problem(channel.find("title"), lines, True) or "")
    selfs = [l for l in channel.findall(ATOM + "link") if l.get("rel") == "self"]
    if len(selfs) != 1 or selfs[0].get("type") != "application/rss+xml":
        problems.append("channel needs one atom:link rel=self type=application/rss+xml")
    for name in ("lastBuildDate", "pubDate"):
        if channel.find(name) is not None:
            problems.append(rfc822_problem(channel.findtext(name) or "") or "")
    ttl = channel.findtext("ttl")
    if ttl is not None and not (ttl.isdigit() and int(ttl) > 0):
        problems.append(f"ttl is not a positive integer: {ttl!r}")
    seen_item = False
    for child in channel:
        if child.tag == "item":
            seen_item = True
        elif seen_item:
            problems.append(f"channel element {child.tag} after the items")
    guids = [i.findtext("guid") for i in channel.findall("item")]
    if len(set(guids)) != len(guids):
        problems.append("duplicate guids")
    for item in channel.findall("item"):
        problems += rss_item_problems(item, lines)
    return [p for p in problems if p]


def rss_item_problems(item: Any, lines: list[str]) -> list[str]:
    problems = []
    names = [c.tag for c in item]
    if "title" not in names and "description" not in names:
        problems.append("item has neither title nor description")
    for name in set(names):
        if name not in ("category", DC + "creator") and names.count(name) > 1:
            problems.append(f"item has more than one {name}")
    for el in item.findall("title") + item.findall("category") + item.findall(DC + "creator"):
        problems.append(plain_text_problem(el, lines, True) or "")
    guid = item.find("guid")
    if guid is None:
        problems.append("item has no guid")
    elif guid.get("isPermaLink") != "false" and not (guid.text or "").startswith("http"):
        problems.append(f"guid {guid.text!r} is not a permalink but isPermaLink is not false")
    elif guid.get("isPermaLink") == "false" and not (
        TAG.match(guid.text or "") or URI.match(guid.text or "")
    ):
        problems.append(f"guid is not a URI: {guid.text!r}")
    if item.find("link") is not None and not URI.match(item.findtext("link") or ""):
        problems.append(f"item link is not an absolute URI: {item.findtext('link')!r}")
    if item.find("pubDate") is not None:
        problems.append(rfc822_problem(item.findtext("pubDate") or "") or "")
    if item.find("author") is not None and "@" not in (item.findtext("author") or ""):
        problems.append("RSS author is not an e-mail address")
    if (
        CONTENT + "encoded" in names
        and "description" not in names[: names.index(CONTENT + "encoded")]
    ):
        problems.append("content:encoded without a description before it")
    for enc in item.findall("enclosure"):
        if not (enc.get("url") or "").startswith(("http://", "https://")):
            problems.append(f"enclosure url is not http(s): {enc.get('url')!r}")
        if not (enc.get("length") or "").isdigit() or not MIME.match(enc.get("type") or ""):
            problems.append(f"enclosure needs a length and a MIME type: {dict(enc.attrib)}")
    return problems


def atom_problems(doc: bytes) -> list[str]:
    """What the W3C validator would report for an Atom document beyond the schema (main rules)."""
    root = etree.fromstring(doc)
    lines = doc.decode("utf-8").split("\n")
    problems = common_problems(doc, root)
    if root.tag != ATOM + "feed":
        return problems + ["not an Atom feed"]
    for name in ("id", "title", "updated"):
        if root.find(ATOM + name) is None:
            problems.append(f"feed lacks {name}")
    problems.append(id_problem(root.findtext(ATOM + "id")) or "")
    problems.append(rfc3339_problem(root.findtext(ATOM + "updated")) or "")
    feed_author = root.find(ATOM + "author") is not None
    links = root.findall(ATOM + "link")
    if not [l for l in links if l.get("rel") == "self" and l.get("type") == "application/atom+xml"]:
        problems.append("feed lacks link rel=self type=application/atom+xml")
    problems += link_problems(links)
    ids = [e.findtext(ATOM + "id") for e in root.findall(ATOM + "entry")]
    if len(set(ids)) != len(ids):
        problems.append("duplicate entry ids")
    updated = [e.findtext(ATOM + "updated") for e in root.findall(ATOM + "entry")]
    if len(set(updated)) != len(updated):
        problems.append("DuplicateUpdated: entries share an updated time")
    for e in root.findall(ATOM + "entry"):
        problems += atom_entry_problems(e, feed_author, lines)
    return [p for p in problems if p]


def atom_entry_problems(e: Any, feed_author: bool, lines: list[str]) -> list[str]:
    problems = [
        id_problem(e.findtext(ATOM + "id")) or "",
        rfc3339_problem(e.findtext(ATOM + "updated")) or "",
    ]
    if e.find(ATOM + "published") is not None:
        problems.append(rfc3339_problem(e.findtext(ATOM + "published")) or "")
    if e.find(ATOM + "author") is None and not feed_author:
        problems.append("entry without author in a feed without author")
    for author in e.findall(ATOM + "author"):
        problems.append(plain_text_problem(author.find(ATOM + "name"), lines, False) or "")
    problems.append(plain_text_problem(e.find(ATOM + "title"), lines, False) or "")
    content, links = e.find(ATOM + "content"), e.findall(ATOM + "link")
    if content is None and e.find(ATOM + "summary") is None:
        problems.append("entry has no textual content (neither content nor summary)")
    if content is None and not [l for l in links if l.get("rel", "alternate") == "alternate"]:
        problems.append("entry has neither content nor an alternate link")
    for name in ("content", "summary"):
        el = e.find(ATOM + name)
        if el is not None and not (el.text or "").strip():
            problems.append(f"blank {name}")
    for cat in e.findall(ATOM + "category"):
        if not (cat.get("term") or "").strip():
            problems.append("blank category term")
    return problems + link_problems(links)


def id_problem(value: str | None) -> str | None:
    if value and (TAG.match(value) or UUID.match(value) or URI.match(value)):
        return None
    return f"id is not a (canonical) URI: {value!r}"


def link_problems(links: Sequence[Any]) -> list[str]:
    problems, seen = [], set()
    for link in links:
        key = (link.get("rel", "alternate"), link.get("type"), link.get("hreflang"))
        if key in seen and key[0] == "alternate" or key[0] == "self" and key in seen:
            problems.append(f"duplicate link {key}")
        seen.add(key)
        if key[0] not in LINK_RELS:
            problems.append(f"unregistered link rel {key[0]!r}")
        if link.get("length") is not None and not link.get("length").isdigit():
            problems.append(f"link length is not a non-negative integer: {link.get('length')!r}")
    return problems


def json_problems(doc: bytes) -> list[str]:
    """JSON Feed 1.1's required fields and value types."""
    feed = json.loads(doc)
    problems = []
    if feed.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append("version is not JSON Feed 1.1")
    if not isinstance(feed.get("title"), str) or not isinstance(feed.get("items"), list):
        problems.append("title and items are required")
    for key in ("home_page_url", "feed_url", "next_url"):
        if key in feed and not URI.match(feed[key]):
            problems.append(f"{key} is not a URL")
    for hub in feed.get("hubs", []):
        if not (isinstance(hub.get("type"), str) and URI.match(hub.get("url", ""))):
            problems.append(f"bad hub {hub}")
    ids = [i.get("id") for i in feed.get("items", [])]
    if len(set(ids)) != len(ids) or not all(isinstance(i, str) and i for i in ids):
        problems.append("item ids must be unique non-empty strings")
    for item in feed.get("items", []):
        problems += json_item_problems(item)
    return problems


def json_item_problems(item: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(item.get("content_html", item.get("content_text")), str):
        problems.append("item needs content_html or content_text")
    for key in ("url", "image"):
        if key in item and not URI.match(item[key]):
            problems.append(f"item {key} is not a URL")
    for key in ("date_published", "date_modified"):
        if key in item:
            problems.append(rfc3339_problem(item[key]) or "")
    if not all(isinstance(a.get("name"), str) for a in item.get("authors", [])):
        problems.append("author without a name")
    if not all(isinstance(t, str) and t for t in item.get("tags", [])):
        problems.append("tags must be non-empty strings")
    for att in item.get("attachments", []):
        if not URI.match(att.get("url", "")) or not MIME.match(att.get("mime_type", "")):
            problems.append(f"attachment needs url and mime_type: {att}")
    return [p for p in problems if p]


def problems(fmt: Format, doc: bytes) -> list[str]:
    return {"rss": rss_problems, "atom": atom_problems, "json": json_problems}[fmt](doc)


def jing(paths: Sequence[Path]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("jing")
    if exe is None:
        pytest.skip("jing is not installed (Debian package 'jing'): cannot check the Atom schema")
    if not SCHEMA.exists():
        pytest.skip(f"needs {SCHEMA}, which is not beside a plain clone")
    return subprocess.run(
        [exe, "-c", str(SCHEMA), *map(str, paths)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- entries from real feeds -----------------------------------------------------------------------


def _corpus_feeds() -> list[str]:
    """Every file of the shared corpus that feedparser reads entries from, as its MANIFEST says
    (``n=`` entries; the files with none have nothing to republish)."""
    manifest = CORPUS / "MANIFEST.txt"
    if not manifest.is_file():
        return []
    found = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        count = (
            re.search(r"\bn=(\d+)", cols[5]) if len(cols) > 5 and not line.startswith("#") else None
        )
        if count and int(count[1]) > 0 and (CORPUS / cols[0]).is_file():
            found.append(cols[0])
    return sorted(found)


CORPUS_FEEDS = _corpus_feeds() or [
    pytest.param(
        "",
        marks=pytest.mark.skip(
            reason=f"the shared feed corpus is not at {CORPUS} (it sits beside the repository in CI)"
        ),
    )
]


def _time(parsed: Any) -> datetime | None:
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None


def _length(value: Any) -> int | None:
    return int(value) if str(value or "").isdigit() else None


@cache
def corpus_entries(name: str) -> tuple[Entry, ...]:
    """The feed's entries as the store would hand them over (feedparser did the reading)."""
    parsed = feedparser.parse(
        (CORPUS / name).read_bytes(),
        response_headers={"content-location": f"https://corpus.example/{name}"},
    )
    out = []
    for n, e in enumerate(parsed.entries):
        link = e.get("link")
        content = clean((e.get("content") or [{}])[0].get("value"), link)
        out.append(
            Entry(
                source_id=Path(name).stem,
                key=e.get("id") or e.get("link") or str(n),
                title=e.get("title", ""),
                link=link,
                content=content.html or None,
                summary=clean_html(e.get("summary"), link) or None,
                image=content.image,
                author=e.get("author"),
                published=_time(dict.get(e, "published_parsed")),
                updated=_time(dict.get(e, "updated_parsed")),
                categories=tuple(t["term"] for t in e.get("tags", []) if t.get("term")),
                enclosures=tuple(
                    Enclosure(x["href"], x.get("type"), _length(x.get("length")))
                    for x in e.get("enclosures", [])
                    if x.get("href")
                ),
                first_seen=T0,
                changed_at=T0,  # one fetch: the store's change time is the same for all
            )
        )
    return tuple(out)


@cache
def corpus_doc(name: str, fmt: Format) -> bytes:
    """The entries as a merged feed republishes them (with source attribution)."""
    entries = corpus_entries(name)
    return render(fmt, attributed(META, entries), entries)


def attributed(meta: FeedMeta, entries: Sequence[Entry]) -> FeedMeta:
    """``meta`` naming the source of every entry, as merged feeds do."""
    refs = {
        e.source_id: SourceRef(
            feed_id=f"source/{e.source_id}",
            title=f"Source {e.source_id} & co",
            site_url=f"https://{e.source_id.lower().replace('_', '-')}.example.com/",
            feed_urls={f: f"{BASE}feeds/source/{e.source_id}.{f}" for f in FORMATS},
        )
        for e in entries
    }
    return replace(meta, sources=refs)


# --- validity ----------------------------------------------------------------------------------------

SCENARIOS = {
    "clean": (META, CLEAN),
    "nasty": (META, NASTY),
    "empty": (EMPTY_META, []),
    "bare": (EMPTY_META, NASTY[:1]),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_documents_pass_the_validator_rules(fmt: Format, scenario: str) -> None:
    """Clean, hostile, bare and empty feeds in every format break none of the validator's rules."""
    meta, entries = SCENARIOS[scenario]
    assert problems(fmt, render(fmt, meta, entries)) == []


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", CORPUS_FEEDS)
def test_real_entries_pass_the_validator_rules(fmt: Format, name: str) -> None:
    """Entries read from real third-party feeds render to documents that break no rule."""
    assert corpus_entries(name)
    assert problems(fmt, corpus_doc(name, fmt)) == []


def test_atom_documents_match_the_rfc4287_schema(tmp_path: Path) -> None:
    """Every Atom document (scenarios and real entries) is valid against atom.rnc (jing)."""
    docs = {f"scenario-{k}": render("atom", m, e) for k, (m, e) in SCENARIOS.items()}
    docs.update(
        {
            f"corpus-{Path(n).stem}": corpus_doc(n, "atom")
            for n in CORPUS_FEEDS
            if isinstance(n, str)
        }
    )
    paths = []
    for name, doc in docs.items():
        paths.append(tmp_path / f"{name}.xml")
        paths[-1].write_bytes(doc)
    result = jing(paths)
    assert result.returncode == 0, result.stdout


def test_jing_rejects_an_invalid_atom_document(tmp_path: Path) -> None:
    """The schema check can fail: an entry without id and updated is refused."""
    bad = tmp_path / "bad.xml"
    bad.write_bytes(
        render("atom", META, CLEAN[:1])
        .replace(b"<updated>", b"<modified>")
        .replace(b"</updated>", b"</modified>")
    )
    result = jing([bad])
    assert result.returncode != 0 and "modified" in result.stdout


def test_the_rule_checks_catch_what_they_look_for() -> None:
    """rss_problems and atom_problems report broken documents (so a passing check means something)."""
    rss = render("rss", META, CLEAN[:1]).decode()
    broken_rss = (
        rss.replace('<guid isPermaLink="false">', "<guid>")
        .replace("+0000</pubDate>", "GMT+1</pubDate>")
        .replace('rel="self" type="application/rss+xml"', 'rel="self"')
        .replace("<title>Entry a", "<title>&lt;b&gt;x&lt;/b&gt; Entry a")
    )
    found = " | ".join(rss_problems(broken_rss.encode()))
    for expected in ("isPermaLink", "RFC 2822", "rel=self", "HTML in <title>"):
        assert expected in found
    atom = render("atom", META, CLEAN[:1]).decode()
    head, rest = atom.split("<entry>", 1)
    body = "<entry>" + rest.replace("</feed>", "")
    broken_atom = re.sub(
        r"<author>\s*<name>[^<]*</name>\s*</author>", "", head + body + body + "</feed>"
    )
    broken_atom = broken_atom.replace("Z</updated>", "+00:00</updated>", 1)
    found = " | ".join(atom_problems(broken_atom.encode()))
    for expected in ("entry without author", "RFC 3339", "duplicate entry ids", "DuplicateUpdated"):
        assert expected in found
    hostile = atom.replace(
        'href="https://news.example.com/item?id=a"', 'href="web+x:a b"', 1
    ).replace("&lt;/a&gt;", "&lt;/a&gt;&lt;a href=&quot;&quot;&gt;x&lt;/a&gt;", 1)
    found = " | ".join(atom_problems(hostile.encode()))
    for expected in ("InvalidFullLink", "ContainsRelRef"):
        assert expected in found
    found = " | ".join(
        rss_problems(
            rss.replace(
                "<link>https://news.example.com/item?id=a</link>",
                '<link>https://news.example.com/item?id=a</link><source url="gopher://x/">s</source>',
            ).encode()
        )
    )
    assert "SchemeNotIANARegistered" in found


# --- round trips -------------------------------------------------------------------------------------


def own_updated(e: Entry) -> datetime:
    """What the entry's updated time is published as: its own updated, else published."""
    t = e.updated or e.published or e.first_seen
    assert t is not None
    return t


def _parse(doc: bytes) -> Any:
    parsed = feedparser.parse(doc)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def _struct(t: datetime | None) -> time.struct_time:
    assert t is not None
    return t.utctimetuple()


def _terms(e: Entry) -> list[str]:
    return list(e.categories) + ["/".join(e.category_path)]


def test_rss_round_trips_through_feedparser() -> None:
    """Titles, links, ids, dates, authors, categories, text and enclosures come back from RSS."""
    parsed = _parse(render("rss", META, CLEAN))
    assert parsed.version == "rss20" and len(parsed.entries) == len(CLEAN)
    for got, e in zip(parsed.entries, CLEAN):
        assert (got.id, got.title, got.link) == (entry_id(e, BASE), e.title, e.link)
        assert got.published_parsed == _struct(e.published)
        assert got.author == e.author
        assert [t.term for t in got.tags] == _terms(e)
        assert got.summary == e.summary and got.content[0].value == e.content
        enc = e.enclosures[0]
        assert got.enclosures == [{"href": enc.url, "type": enc.type, "length": str(enc.length)}]
    assert parsed.feed.title == META.title and parsed.feed.link == BASE
    assert parsed.feed.ttl == "30" and parsed.feed.updated_parsed == _struct(META.updated)


def test_atom_round_trips_through_feedparser() -> None:
    """Titles, links, ids, both dates, authors, categories, text and enclosures come back from Atom."""
    parsed = _parse(render("atom", META, CLEAN))
    assert parsed.version == "atom10" and len(parsed.entries) == len(CLEAN)
    for got, e in zip(parsed.entries, CLEAN):
        assert (got.id, got.title, got.link) == (entry_id(e, BASE), e.title, e.link)
        assert got.updated_parsed == _struct(own_updated(e))
        assert got.published_parsed == _struct(e.published)
        assert got.author_detail == {"name": e.author}
        assert [t.term for t in got.tags] == _terms(e)
        assert got.content[0].value == e.content and got.content[0].type == "text/html"
        assert got.summary == e.summary
        enc = e.enclosures[0]
        assert got.enclosures == [{"href": enc.url, "type": enc.type, "length": str(enc.length)}]
    assert parsed.feed.id == feed_id(META) and parsed.feed.title == META.title


def test_json_feed_round_trips_through_json() -> None:
    """The JSON Feed carries the same ids, titles, links, dates, authors, tags and attachments."""
    feed = json.loads(render("json", META, CLEAN))
    assert [i["id"] for i in feed["items"]] == [entry_id(e, BASE) for e in CLEAN]
    for got, e in zip(feed["items"], CLEAN):
        assert (got["title"], got["url"], got["content_html"]) == (e.title, e.link, e.content)
        assert datetime.fromisoformat(got["date_published"]) == e.published
        assert datetime.fromisoformat(got["date_modified"]) == own_updated(e)
        assert got["authors"] == [{"name": e.author}] and got["tags"] == _terms(e)
        assert got["summary"] == "Summary of " + e.key
        assert got["attachments"] == [
            {"url": e.enclosures[0].url, "mime_type": "audio/mpeg", "size_in_bytes": 1234}
        ]


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_hostile_entries_parse_cleanly_and_keep_their_text(fmt: Format) -> None:
    """Markup, control characters, huge and astral text: feedparser reads every entry (bozo 0)."""
    parsed = _parse(render(fmt, META, NASTY))
    titles = [e.title for e in parsed.entries]
    assert titles[:5] == [
        "Untitled",
        "Bold & it <3 a <x",
        "abcde",
        ("Long " * 2000).strip(),
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀋 🎉",
    ]
    assert "two lines" in titles and "Only a summary here" in titles
    by_title = {e.title: e for e in parsed.entries}
    assert len(by_title[("Long " * 2000).strip()].content[0].value) == len(NASTY[3].content or "")
    assert by_title["𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀋 🎉"].content[0].value == "<p>🎉 𠀋</p>"
    assert by_title["abcde"].content[0].value == "<p>xy</p>"


@pytest.mark.parametrize("name", CORPUS_FEEDS)
def test_real_entries_round_trip_in_every_format(name: str) -> None:
    """Every real entry comes back from RSS, Atom and JSON with its id and link."""
    entries = corpus_entries(name)
    ids = list(dict.fromkeys(entry_id(e, BASE) for e in entries))
    for fmt in FORMATS[:2]:
        assert [e.id for e in _parse(corpus_doc(name, fmt)).entries] == ids
    items = json.loads(corpus_doc(name, "json"))["items"]
    assert [i["id"] for i in items] == ids


# --- the rules of the output -------------------------------------------------------------------------


def test_titles_are_plain_text_in_every_format() -> None:
    """Markup in a title is reduced to its text; XML-illegal characters are dropped."""
    nasty = NASTY[1:3]
    rss = etree.fromstring(render("rss", META, nasty))
    atom = etree.fromstring(render("atom", META, nasty))
    items = json.loads(render("json", META, nasty))["items"]
    expected = ["Bold & it <3 a <x", "abcde"]
    assert [t.text for t in rss.iter("title")][1:] == expected
    assert [e.findtext(ATOM + "title") for e in atom.iter(ATOM + "entry")] == expected
    assert [i["title"] for i in items] == expected


def test_rss_plain_text_uses_hex_character_references() -> None:
    """In RSS titles '&' and '<' are written as &#x26; and &#x3C;, as the RSS profile asks."""
    doc = render("rss", META, NASTY[1:2])
    assert b"<title>Bold &#x26; it &#x3C;3 a &#x3C;x</title>" in doc


def test_missing_title_falls_back_to_text_then_link_then_untitled() -> None:
    """No title: the start of the summary or content, else the link, else 'Untitled'."""
    long_text = entry("t", title="", summary=None, content="<p>" + "word " * 40 + "</p>")
    link_only = entry("l", title="", summary=None, content=None)
    items = json.loads(render("json", META, [long_text, link_only, NASTY[0]]))["items"]
    assert items[0]["title"] == ("word " * 16).strip() + "…"
    assert len(items[0]["title"]) == 80
    assert [i["title"] for i in items[1:]] == [link_only.link, "Untitled"]


@pytest.mark.parametrize(
    ("changed", "updated", "published", "first_seen", "expected"),
    [
        (T0, T0 - timedelta(1), T0 - timedelta(2), T0 - timedelta(3), T0 - timedelta(1)),
        (None, T0 - timedelta(1), T0 - timedelta(2), T0 - timedelta(3), T0 - timedelta(1)),
        (T0, None, T0 - timedelta(2), T0 - timedelta(3), T0 - timedelta(2)),
        (T0, None, None, T0 - timedelta(3), T0 - timedelta(3)),
        (None, None, None, None, FALLBACK_TIME),
    ],
)
def test_updated_is_the_entrys_own_updated_or_published_or_first_seen(
    changed: datetime | None,
    updated: datetime | None,
    published: datetime | None,
    first_seen: datetime | None,
    expected: datetime,
) -> None:
    """Atom updated and JSON date_modified come from the entry's own dates, never the store time."""
    e = entry("u", changed_at=changed, updated=updated, published=published, first_seen=first_seen)
    parsed = _parse(render("atom", META, [e]))
    assert parsed.entries[0].updated_parsed == _struct(expected)
    item = json.loads(render("json", META, [e]))["items"][0]
    assert item.get("date_modified") == (None if first_seen is None else _z(expected))


def test_no_two_entries_share_an_updated_time() -> None:
    """Entries of one fetch (same store time, same or no dates) get distinct, stable times."""
    batch = [
        entry(k, changed_at=T0, updated=None, published=None, first_seen=T0) for k in "abcd"
    ] + [entry("e", changed_at=T0, updated=T0 - timedelta(days=1))]
    doc = render("atom", META, batch)
    times = [e.findtext(ATOM + "updated") for e in etree.fromstring(doc).iter(ATOM + "entry")]
    assert times[:4] == [_z(T0 - timedelta(seconds=n)) for n in range(4)]
    assert times[4] == _z(T0 - timedelta(days=1)) and atom_problems(doc) == []
    assert render("atom", META, batch) == doc
    modified = [i["date_modified"] for i in json.loads(render("json", META, batch))["items"]]
    assert modified == times


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_published_is_published_or_first_seen_and_omitted_without_either() -> None:
    """RSS pubDate and Atom published: published, else first seen, else absent."""
    first_seen_only = entry("f", published=None)
    undated = NASTY[0]
    rss = _parse(render("rss", META, [first_seen_only, undated])).entries
    atom = _parse(render("atom", META, [first_seen_only, undated])).entries
    assert (
        rss[0].published_parsed == atom[0].published_parsed == _struct(first_seen_only.first_seen)
    )
    assert "published" not in rss[1] and "published" not in atom[1]
    assert "date_published" not in json.loads(render("json", META, [undated]))["items"][0]


def test_dates_are_utc_whole_seconds() -> None:
    """Any time zone and microseconds become UTC seconds: RFC 822 in RSS, 'Z' in Atom and JSON."""
    tz = timezone(timedelta(hours=8))
    e = entry(
        "z",
        published=datetime(2024, 5, 6, 15, 8, 9, 999_999, tzinfo=tz),
        changed_at=None,
        updated=None,
    )
    assert b"<pubDate>Mon, 06 May 2024 07:08:09 +0000</pubDate>" in render("rss", META, [e])
    assert b"<published>2024-05-06T07:08:09Z</published>" in render("atom", META, [e])
    assert (
        json.loads(render("json", META, [e]))["items"][0]["date_published"]
        == "2024-05-06T07:08:09Z"
    )


def test_entries_keep_their_order_and_repeated_ids_are_dropped() -> None:
    """Order is the caller's; an entry whose id was already written is left out."""
    items = json.loads(render("json", META, NASTY))["items"]
    assert len(items) == len(NASTY) - 1
    assert [i["id"] for i in items] == list(dict.fromkeys(entry_id(e, BASE) for e in NASTY))
    assert items[0]["title"] == "Untitled"


def test_links_become_ascii_uris() -> None:
    """An IRI link is written with a punycode host and percent-encoded path, query and fragment."""
    link = json.loads(render("json", META, NASTY[5:6]))["items"][0]["url"]
    assert link == (
        "https://xn--fsqu00a.xn--0zwm56d/%E8%B7%AF%E5%BE%84/%E6%96%87%E7%AB%A0%201"
        "?q=%E4%B8%AD&x=a%20b#%E7%89%87%E6%AE%B5"
    )


def test_author_forms_are_split_into_name_and_email() -> None:
    """'mail (Name)' and 'Name <mail>' give Atom name and email; RSS gets dc:creator, never author."""
    people = NASTY[6:8]
    atom = _parse(render("atom", META, people)).entries
    assert [a.author_detail for a in atom] == [
        {"name": "Jane Doe", "email": "jane@example.com"}
    ] * 2
    rss = etree.fromstring(render("rss", META, people))
    assert [i.findtext(DC + "creator") for i in rss.iter("item")] == ["Jane Doe", "Jane Doe"]
    assert rss.find(".//item/author") is None


def test_enclosures_one_in_rss_all_in_atom_and_json() -> None:
    """RSS gets the first enclosure; Atom and JSON all http(s) ones (an ftp: one is dropped by the
    URL policy), with a MIME type always present."""
    e = NASTY[8]
    rss = _parse(render("rss", META, [e])).entries[0]
    assert rss.enclosures == [
        {"href": "https://cdn.example.com/b.mp4", "type": "video/mp4", "length": "0"}
    ]
    atom = _parse(render("atom", META, [e])).entries[0]
    assert [(x.href, x.type, x.get("length")) for x in atom.enclosures] == [
        ("https://cdn.example.com/b.mp4", "video/mp4", None),
        ("https://cdn.example.com/c.jpg", "application/octet-stream", "0"),
    ]
    attachments = json.loads(render("json", META, [e]))["items"][0]["attachments"]
    assert [a["mime_type"] for a in attachments] == [
        "video/mp4",
        "application/octet-stream",
    ]
    assert all("size_in_bytes" not in a for a in attachments)


def test_rss_description_is_summary_or_content_and_content_encoded_is_content() -> None:
    """Summary-less entries repeat the content in description; content-less ones have no encoded."""
    rss = etree.fromstring(render("rss", META, [NASTY[6], NASTY[7]]))
    no_summary, no_content = rss.findall("channel/item")
    assert (
        no_summary.findtext("description")
        == no_summary.findtext(CONTENT + "encoded")
        == NASTY[6].content
    )
    assert no_content.findtext("description") == NASTY[7].summary
    assert no_content.find(CONTENT + "encoded") is None


def test_feed_links_self_hub_next_and_alternates() -> None:
    """Each format links itself, the hub, the next page and the other formats (never itself twice)."""
    for fmt in FORMATS[:2]:
        links = {
            (l.rel, l.get("type")): l.href for l in _parse(render(fmt, META, CLEAN)).feed.links
        }
        assert (
            links[("hub", "text/html")] == META.hub
            and links[("next", "text/html")] == META.next_url
        )
        assert links[("self", f"application/{fmt}+xml")] == META.self_url
        others = [f for f in FORMATS if f != fmt]
        assert {links[("alternate", CONTENT_TYPES[f].split(";")[0])] for f in others} == {
            META.alternates[f] for f in others
        }
        assert ("alternate", f"application/{fmt}+xml") not in links
    feed = json.loads(render("json", META, CLEAN))
    assert (feed["feed_url"], feed["next_url"], feed["home_page_url"]) == (
        META.self_url,
        META.next_url,
        BASE,
    )
    assert feed["hubs"] == [{"type": "WebSub", "url": META.hub}]


def test_empty_feed_without_time_hub_or_ttl() -> None:
    """An empty feed has no lastBuildDate, ttl, hub or next link, and a fixed Atom updated."""
    rss = etree.fromstring(render("rss", EMPTY_META, []))
    for name in ("lastBuildDate", "ttl", "item"):
        assert rss.find(f"channel/{name}") is None
    assert [l.get("rel") for l in rss.iter(ATOM + "link")] == ["self"]
    assert rss.findtext("channel/description") == "All"  # RSS requires one: the title stands in
    atom = etree.fromstring(render("atom", EMPTY_META, []))
    assert atom.findtext(ATOM + "updated") == "2000-01-01T00:00:00Z"
    assert json.loads(render("json", EMPTY_META, []))["items"] == []


def test_feed_time_falls_back_to_the_newest_entry() -> None:
    """Without meta.updated the feed's time is the newest entry's updated time."""
    meta = replace(META, updated=None)
    newest = max(own_updated(e) for e in CLEAN)
    assert _parse(render("rss", meta, CLEAN)).feed.updated_parsed == _struct(newest)
    assert _parse(render("atom", meta, CLEAN)).feed.updated_parsed == _struct(newest)


def test_content_types_name_utf8() -> None:
    """Each format's media type with charset=utf-8; an unknown format is refused."""
    assert CONTENT_TYPES == {
        "rss": "application/rss+xml; charset=utf-8",
        "atom": "application/atom+xml; charset=utf-8",
        "json": "application/feed+json; charset=utf-8",
    }
    with pytest.raises(ValueError):
        render("html", META, CLEAN)  # type: ignore[arg-type]


# --- ids and determinism ----------------------------------------------------------------------------


def test_entry_ids_are_tag_uris_from_source_and_key() -> None:
    """The id depends on source and key only: not the row id, the title or the time."""
    a = entry("a")
    same = replace(a, id=99, title="changed", changed_at=T0 + timedelta(days=9), content="new")
    assert entry_id(a, BASE) == entry_id(same, BASE)
    assert TAG.match(entry_id(a, BASE)) and entry_id(a, BASE).startswith(
        "tag:agg.example.org,2026:entry/hn/"
    )
    assert entry_id(a, BASE) != entry_id(replace(a, key="b"), BASE)
    assert entry_id(a, BASE) != entry_id(replace(a, source_id="other"), BASE)
    assert entry_id(replace(a, source_id="a/b"), BASE) != entry_id(
        replace(a, source_id="a", key="b/a"), BASE
    )


def test_ids_without_a_host_name_are_uuid_urns() -> None:
    """A base URL without a DNS host (empty, IPv6 literal) gives a urn:uuid, still stable."""
    a = entry("a")
    for base in ("", "http://[::1]:8080/"):
        assert UUID.match(entry_id(a, base)) and entry_id(a, base) == entry_id(
            replace(a, id=5), base
        )
    assert feed_id(META) == "tag:agg.example.org,2026:feed/category/%E7%A7%91%E6%8A%80"


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_is_deterministic(fmt: Format) -> None:
    """Same meta and entries give the same bytes; row ids never show in the output."""
    first = render(fmt, META, NASTY + CLEAN)
    renumbered = [replace(e, id=1000 + n) for n, e in enumerate(NASTY + CLEAN)]
    assert render(fmt, META, NASTY + CLEAN) == first
    assert render(fmt, META, renumbered) == first


def test_ids_use_the_recorded_authority_not_the_site_url() -> None:
    """With an id authority, entry and feed ids ignore a changed base URL."""
    meta = replace(META, id_authority="agg.example.org")
    moved = replace(meta, site_url="https://proxy.example.net/agg/", self_url="https://x.example/a")
    for fmt in FORMATS:
        assert _ids(render(fmt, meta, CLEAN), fmt) == _ids(render(fmt, moved, CLEAN), fmt)
    assert feed_id(moved) == feed_id(META)
    assert _ids(render("atom", moved, CLEAN), "atom")[0] == entry_id(CLEAN[0], "agg.example.org")
    assert _ids(
        render("atom", replace(META, site_url="https://proxy.example.net/"), CLEAN), "atom"
    ) != _ids(render("atom", meta, CLEAN), "atom")


def _ids(doc: bytes, fmt: Format) -> list[str]:
    if fmt == "json":
        return [i["id"] for i in json.loads(doc)["items"]]
    return [e.id for e in _parse(doc).entries] + [_parse(doc).feed.get("id", "")]


def test_merged_entries_name_their_source_in_every_format() -> None:
    """Atom <source> (id, title, updated, links), RSS <source url> and JSON _aggregator.source."""
    meta = attributed(META, CLEAN)
    atom = etree.fromstring(render("atom", meta, CLEAN))
    src = atom.find(ATOM + "entry").find(ATOM + "source")
    assert src.findtext(ATOM + "id") == "tag:agg.example.org,2026:feed/source/hn"
    assert src.findtext(ATOM + "title") == "Source hn & co"
    assert src.findtext(ATOM + "updated") == _z(own_updated(CLEAN[0]))  # newest of hn here
    links = {l.get("rel"): l.get("href") for l in src.findall(ATOM + "link")}
    assert links == {"alternate": "https://hn.example.com/", "self": BASE + "feeds/source/hn.atom"}
    rss = etree.fromstring(render("rss", meta, CLEAN))
    sources = [(s.get("url"), s.text) for s in rss.iter("source")]
    assert sources[2] == (BASE + "feeds/source/lobsters.rss", "Source lobsters & co")
    assert rss_problems(render("rss", meta, CLEAN)) == []
    items = json.loads(render("json", meta, CLEAN))["items"]
    assert items[2]["_aggregator"]["source"] == {
        "id": "source/lobsters",
        "title": "Source lobsters & co",
        "home_page_url": "https://lobsters.example.com/",
        "feed_url": BASE + "feeds/source/lobsters.json",
    }
    plain = render("atom", META, CLEAN)
    assert b"<source>" not in plain and b"_aggregator" not in render("json", META, CLEAN)


def test_empty_links_stored_before_the_cleaner_dropped_them_are_not_published() -> None:
    """`<a href="">` and `<img src="">` in stored HTML lose the empty attribute in every format."""
    e = entry(
        "h",
        content='<p><a href="">x</a> <img src="" alt="i"> <a href="https://a.example/">y</a></p>',
    )
    for fmt in FORMATS:
        doc = render(fmt, META, [e]).decode()
        assert 'href=\\"\\"' not in doc and "href=&quot;&quot;" not in doc and 'href=""' not in doc
        assert "src=&quot;&quot;" not in doc and 'src=\\"\\"' not in doc
    assert problems("atom", render("atom", META, [e])) == []


def test_the_entry_image_is_published_in_every_format() -> None:
    """RSS and Atom carry the image as media:thumbnail, resolved like JSON Feed's image."""
    pic = entry("p", image="/img/p.jpg?a=1#x", link="https://news.example.com/a/p")
    want = "https://news.example.com/img/p.jpg?a=1#x"
    for fmt in ("rss", "atom"):
        thumbs = etree.fromstring(render(fmt, META, [pic])).iter(MEDIA + "thumbnail")
        assert [t.get("url") for t in thumbs] == [want]
        assert _parse(render(fmt, META, [pic])).entries[0].media_thumbnail[0]["url"] == want
    assert json.loads(render("json", META, [pic]))["items"][0]["image"] == want


def test_relative_enclosures_resolve_in_every_format() -> None:
    """A relative enclosure is published absolute (against the entry's link) in RSS, Atom, JSON."""
    e = entry(
        "r",
        link="https://news.example.com/a/r",
        enclosures=(Enclosure("enclosure?q=a#fragment", "audio/mpeg", 10),),
    )
    want = "https://news.example.com/a/enclosure?q=a#fragment"
    assert _parse(render("rss", META, [e])).entries[0].enclosures[0]["href"] == want
    assert _parse(render("atom", META, [e])).entries[0].enclosures[0]["href"] == want
    assert json.loads(render("json", META, [e]))["items"][0]["attachments"][0]["url"] == want
