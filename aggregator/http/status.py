"""The status pages as HTML strings: the overview at ``/``, one page per source, error pages.

Owns: the markup and the stylesheet (one small inline stylesheet, no scripts, no build step),
laid out as cards that read on a phone and spread into columns on a wide screen, or as a compact
table (``?view=table``; the default past ``COMPACT_FROM`` sources); the overview's order (failing
sources first) and its filter (``?q=`` text, ``?show=failing``), done on the server. Every value that
comes from the config, the store or a fetched document is escaped here with ``esc``; links are
only emitted for http(s) URLs. Does not own: which data is shown (``routes.py`` gathers it; the
source columns are ``report.COLUMNS``, the same as ``aggregator sources``).
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from ..content.urls import public_link, redact_text
from ..models import Entry
from ..store.records import FetchLogLine
from .report import COLUMNS, TIME_COLUMNS, SourceRow, fmt_time

FORMAT_NAMES = (("rss", "RSS"), ("atom", "Atom"), ("json", "JSON Feed"))
COMPACT_FROM = 24  # sources from which the overview is a table unless ?view=cards
LAYOUTS = ("auto", "cards", "table")


@dataclass(frozen=True)
class View:
    """How the overview shows its sources, from the query string."""

    query: str = ""  # ?q=: only sources whose id, name, URL or error contains this (any case)
    failing_only: bool = False  # ?show=failing
    layout: str = "auto"  # ?view=cards or table; auto: a table from COMPACT_FROM sources on
    keep: tuple[tuple[str, str], ...] = ()  # access parameters (key, code) the filter form keeps

    @classmethod
    def of(cls, params: Mapping[str, str]) -> View:
        layout = params.get("view", "auto")
        return cls(
            query=params.get("q", "").strip()[:200],
            failing_only=params.get("show") == "failing",
            layout=layout if layout in LAYOUTS else "auto",
            keep=tuple((k, params[k]) for k in ("key", "code") if params.get(k)),
        )

    def matches(self, row: SourceRow, name: str | None) -> bool:
        if self.failing_only and not row.failing:
            return False
        if not self.query:
            return True
        text = " ".join(filter(None, (row.source_id, name, row.url, row.last_error))).casefold()
        return self.query.casefold() in text

    def table(self, count: int) -> bool:
        return self.layout == "table" or (self.layout == "auto" and count >= COMPACT_FROM)


def failing_first(rows: Sequence[SourceRow]) -> list[SourceRow]:
    """Failing sources first (most consecutive failures first), then new ones, then the rest;
    by id within each group."""

    def rank(row: SourceRow) -> tuple[int, int, str]:
        group = 0 if row.failing else 1 if row.status == "new" else 2
        return (group, -row.failures if row.failing else 0, row.source_id)

    return sorted(rows, key=rank)


@dataclass(frozen=True)
class FeedLink:
    title: str
    path: str  # without the format suffix, e.g. "/feeds/source/hn"
    kind: str  # "all", "source", "category" or "feed" (an operator-defined feed)
    formats: tuple[str, ...] = ("rss", "atom", "json")


@dataclass(frozen=True)
class Notice:
    """A box on top of the page: the config error of the last reload, or settings that need a
    restart."""

    level: str  # "error" or "warning"
    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Overview:
    title: str
    now: datetime
    notices: tuple[Notice, ...]
    rows: tuple[SourceRow, ...]
    feeds: tuple[FeedLink, ...]
    newest: tuple[Entry, ...]
    names: Mapping[str, str]  # source id -> display name
    view: View = View()


@dataclass(frozen=True)
class SourceDetail:
    title: str
    now: datetime
    notices: tuple[Notice, ...]
    row: SourceRow
    name: str
    history: tuple[FetchLogLine, ...]
    entries: tuple[Entry, ...]
    feed: FeedLink | None
    admin: bool  # admin actions are enabled (a token is configured)
    message: str | None = None  # the result of the last admin action


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def safe_href(url: str | None) -> str | None:
    """The URL, escaped for an attribute, when the URL policy lets it be published
    (``urls.public_link``: absolute http/https only)."""
    link = public_link(url)
    return esc(link) if link else None


def overview_page(o: Overview) -> str:
    failing = sum(r.failing for r in o.rows)
    summary = (
        f"{len(o.rows)} sources, {failing} failing"
        if failing
        else f"{len(o.rows)} sources, all healthy"
    )
    body = [
        _header(o.title, "status", o.now, summary),
        *(_notice(n) for n in o.notices),
        '<h2 id="sources">Sources</h2>',
        _sources(o) if o.rows else '<p class="muted">No sources are configured.</p>',
        '<h2 id="feeds">Feeds</h2>',
        _feed_list(o.feeds),
        '<h2 id="newest">Newest entries</h2>',
        _entry_list(o.newest, o.names, show_source=True),
        _footer(),
    ]
    return _document(f"{o.title}: status", body)


def _sources(o: Overview) -> str:
    v = o.view
    shown = [r for r in failing_first(o.rows) if v.matches(r, o.names.get(r.source_id))]
    parts = [_filter_form(v, len(shown), len(o.rows))]
    if not shown:
        parts.append('<p class="muted">No source matches.</p>')
    elif v.table(len(o.rows)):
        parts.append(_source_table(shown, o.names, o.now))
    else:
        parts.append(
            '<div class="cards">'
            + "".join(_source_card(r, o.names.get(r.source_id), o.now, link=True) for r in shown)
            + "</div>"
        )
    return "\n".join(parts)


def _filter_form(v: View, shown: int, total: int) -> str:
    """A GET form (no script): text filter, failing only, layout; and how many are shown."""
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(val)}">' for k, val in v.keep
    )
    layouts = "".join(
        f'<option value="{name}"{" selected" if v.layout == name else ""}>{name}</option>'
        for name in LAYOUTS
    )
    count = f"showing {shown} of {total}" if shown != total else f"{total} shown"
    return (
        '<form class="filter" method="get" action="/" role="search">'
        + hidden
        + f'<input type="search" name="q" value="{esc(v.query)}" placeholder="filter: id, name, URL or error"'
        ' aria-label="filter sources"> '
        f'<label><input type="checkbox" name="show" value="failing"{" checked" if v.failing_only else ""}>'
        " failing only</label> "
        f'<label>view <select name="view">{layouts}</select></label> '
        '<button type="submit">Show</button> '
        f'<span class="muted">{esc(count)}</span></form>'
    )


def _source_table(rows: Sequence[SourceRow], names: Mapping[str, str], now: datetime) -> str:
    """One line per source: the compact view for many sources (scrolls sideways on a phone)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    lines = []
    for row in rows:
        state = _state(row)
        cells = []
        for column, cell in zip(COLUMNS, row.cells(now)):
            if column == "id":
                name = names.get(row.source_id)
                title = f' title="{esc(name)}"' if name and name != row.source_id else ""
                cells.append(
                    f'<th scope="row"{title}><a href="/sources/{esc(quote(row.source_id, safe=""))}">'
                    f"{esc(cell)}</a></th>"
                )
            elif column == "status":
                cells.append(f'<td><span class="badge {state}">{esc(cell)}</span></td>')
            elif column in ("url", "last error"):
                cells.append(f'<td class="cut" title="{esc(cell)}">{esc(cell) or "–"}</td>')
            else:
                cells.append(f"<td>{esc(cell)}</td>")
        lines.append(f'<tr class="{state}" id="source-{esc(row.source_id)}">{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table class="sources"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table></div>"
    )


def _state(row: SourceRow) -> str:
    return "bad" if row.failing else ("new" if row.status in ("new", "reset") else "good")


def error_page(title: str, status: int, message: str, back: str, back_text: str) -> str:
    """A small HTML page for a refused or failed request, with a link back where it came from."""
    body = [
        f"<header><h1>{status} <small>· {esc(title)}</small></h1></header>",
        f'<section class="notice error" role="alert"><p>{esc(message)}</p></section>',
        f'<p><a href="{esc(back)}">← {esc(back_text)}</a> · <a href="/">all sources</a></p>',
    ]
    return _document(f"{status} {title}", body)


def source_page(d: SourceDetail) -> str:
    body = [
        _header(d.title, d.name, d.now, '<a href="/">← all sources</a>', raw_summary=True),
        *(_notice(n) for n in d.notices),
        f'<p class="flash">{esc(d.message)}</p>' if d.message else "",
        '<div class="cards one">' + _source_card(d.row, d.name, d.now, link=False) + "</div>",
        _admin_form(d.row.source_id)
        if d.admin
        else '<p class="muted">Admin actions are off: set <code>server.admin_token</code> in the config '
        "to fetch now or reset errors from here.</p>",
        _feed_list((d.feed,)) if d.feed else "",
        '<h2 id="history">Recent fetches</h2>',
        _history(d.history),
        '<h2 id="entries">Entries</h2>',
        _entry_list(d.entries, {}, show_source=False),
        _footer(),
    ]
    return _document(f"{d.name}: status", body)


def _document(title: str, body: Sequence[str]) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body><main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main></body></html>\n"
    )


def _header(
    title: str, subtitle: str, now: datetime, summary: str, raw_summary: bool = False
) -> str:
    return (
        f"<header><h1>{esc(subtitle)} <small>· {esc(title)}</small></h1>"
        f'<p class="muted">{summary if raw_summary else esc(summary)} · '
        f"as of {esc(fmt_time(now))} UTC</p></header>"
    )


def _notice(n: Notice) -> str:
    items = "".join(f"<li>{esc(redact_text(line))}</li>" for line in n.lines)
    return f'<section class="notice {esc(n.level)}" role="alert"><h2>{esc(n.title)}</h2><ul>{items}</ul></section>'


def _source_card(row: SourceRow, name: str | None, now: datetime, link: bool) -> str:
    sid = row.source_id
    heading = f'<a href="/sources/{esc(quote(sid, safe=""))}">{esc(sid)}</a>' if link else esc(sid)
    extra = f' <span class="muted">{esc(name)}</span>' if name and name != sid else ""
    times = row.times()
    fields = []
    for column, cell in zip(COLUMNS, row.cells(now)):
        if column in ("id", "status"):
            continue
        wide = " wide" if column in ("url", "last error") else ""
        exact = times.get(column) if column in TIME_COLUMNS else None
        at = (
            f' <span class="at">{esc(exact.strftime("%m-%d %H:%M"))}</span>'
            if exact and cell != "never"
            else ""
        )
        fields.append(
            f'<div class="f{wide}"><dt>{esc(column)}</dt><dd>{esc(cell) or "–"}{at}</dd></div>'
        )
    state = _state(row)
    return (
        f'<article class="card {state}" id="source-{esc(sid)}"><h3>{heading}{extra}'
        f' <span class="badge {state}">{esc(row.status)}</span></h3>'
        f"<dl>{''.join(fields)}</dl></article>"
    )


def _feed_list(feeds: Sequence[FeedLink]) -> str:
    if not feeds:
        return '<p class="muted">No feeds.</p>'
    items = []
    for f in feeds:
        links = " ".join(
            f'<a class="fmt" href="{esc(f.path)}.{fmt}">{name}</a>'
            for fmt, name in FORMAT_NAMES
            if fmt in f.formats
        )
        items.append(f'<li><span class="kind">{esc(f.kind)}</span> {esc(f.title)}<br>{links}</li>')
    return f'<ul class="feeds">{"".join(items)}</ul>'


def _entry_list(entries: Sequence[Entry], names: Mapping[str, str], show_source: bool) -> str:
    if not entries:
        return '<p class="muted">No entries yet.</p>'
    items = []
    for e in entries:
        href = safe_href(e.link)
        title = (
            f'<a href="{href}" rel="noopener noreferrer">{esc(e.title)}</a>'
            if href
            else esc(e.title)
        )
        when = fmt_time(e.published or e.first_seen)
        source = ""
        if show_source:
            source = (
                f' · <a href="/sources/{esc(quote(e.source_id, safe=""))}">'
                f"{esc(names.get(e.source_id, e.source_id))}</a>"
            )
        items.append(f'<li>{title}<br><span class="muted">{esc(when)}{source}</span></li>')
    return f'<ol class="entries">{"".join(items)}</ol>'


def _history(history: Sequence[FetchLogLine]) -> str:
    if not history:
        return '<p class="muted">Not fetched yet.</p>'
    rows = []
    for h in history:
        status = h.status or ""
        bad = " bad" if status in ("error", "gone") else ""
        counts = f"+{h.added} new, {h.updated} changed, {_size(h.bytes or 0)}"
        error = f'<br><span class="err">{esc(redact_text(h.error))}</span>' if h.error else ""
        rows.append(
            f'<li class="h{bad}"><b>{esc(status)}</b> {esc(fmt_time(h.at))} · {esc(counts)}'
            f" · {float(h.elapsed or 0):.2f} s{error}</li>"
        )
    return f'<ol class="history">{"".join(rows)}</ol>'


def _admin_form(source_id: str) -> str:
    sid = esc(quote(source_id, safe=""))
    return (
        f'<form class="admin" method="post" action="/sources/{sid}/fetch-now">'
        '<label>Admin token <input type="password" name="token" autocomplete="current-password" '
        "required></label> "
        f'<button type="submit" formaction="/sources/{sid}/fetch-now">Fetch now</button> '
        f'<button type="submit" formaction="/sources/{sid}/reset">Reset errors</button></form>'
    )


def _footer() -> str:
    return (
        '<footer class="muted"><a href="/metrics">metrics</a> · <a href="/healthz">healthz</a>'
        ' · <a href="/readyz">readyz</a></footer>'
    )


def _size(n: int) -> str:
    return (
        f"{n} B"
        if n < 1024
        else f"{n / 1024:.1f} KiB"
        if n < 1024 * 1024
        else f"{n / 1048576:.1f} MiB"
    )


STYLE = """
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg:#fff;--card:#f6f8fa;--good:#1a7f37;
--bad:#cf222e;--warn:#9a6700;--link:#0550ae}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC",
sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1100px;margin:0 auto;padding:12px 14px 40px}
h1{font-size:1.45rem;margin:.2em 0}h1 small{font-weight:400;color:var(--muted);font-size:.8em}
h2{font-size:1.15rem;margin:1.4em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:.2em}
h3{font-size:1.05rem;margin:0 0 .4em;overflow-wrap:break-word;word-break:normal;hyphens:manual}
a{color:var(--link)}.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}
.cards.one{grid-template-columns:1fr}
.card{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--good);
border-radius:8px;padding:10px 12px}
.card.bad{border-left-color:var(--bad)}.card.new{border-left-color:var(--muted)}
.badge{display:inline-block;font-size:.8rem;font-weight:600;padding:1px 8px;border-radius:10px;
color:#fff;background:var(--good);vertical-align:middle}
.badge.bad{background:var(--bad)}.badge.new{background:var(--muted)}
dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(104px,1fr));gap:4px 12px;margin:0}
.f{min-width:0}.f.wide{grid-column:1/-1}
dt{font-size:.75rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.at{display:block;font-size:.75rem;color:var(--muted)}
.notice{border:2px solid var(--bad);background:#ffebe9;border-radius:8px;padding:8px 12px;margin:12px 0}
.notice.warning{border-color:var(--warn);background:#fff8c5}
.notice h2{border:0;margin:0 0 .3em;font-size:1.05rem}.notice ul{margin:0;padding-left:1.2em}
.notice li{overflow-wrap:anywhere}
ul.feeds,ol.entries,ol.history{padding-left:1.2em}
ul.feeds li,ol.entries li,ol.history li{margin:.45em 0;overflow-wrap:anywhere}
.kind{font-size:.75rem;color:var(--muted);text-transform:uppercase}
a.fmt{display:inline-block;margin:4px 6px 0 0;padding:3px 10px;border:1px solid var(--line);
border-radius:6px;text-decoration:none;background:var(--card)}
.history .bad b,.err{color:var(--bad)}
form.admin{margin:12px 0;padding:10px 12px;border:1px dashed var(--line);border-radius:8px}
form.admin input{font:inherit;padding:6px;max-width:100%}
form.admin button{font:inherit;padding:6px 12px;margin-top:6px}
.flash{background:#dafbe1;border:1px solid var(--good);border-radius:8px;padding:8px 12px}
footer{margin-top:2em;font-size:.9rem}
form.filter{display:flex;flex-wrap:wrap;gap:6px 10px;align-items:center;margin:0 0 10px}
form.filter input[type=search]{font:inherit;padding:5px 8px;flex:1 1 14em;min-width:0}
form.filter select,form.filter button{font:inherit;padding:4px 8px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table.sources{border-collapse:collapse;width:100%;font-size:.88rem;white-space:nowrap}
table.sources th,table.sources td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left}
table.sources thead th{font-size:.75rem;text-transform:uppercase;color:var(--muted);position:sticky;top:0;
background:var(--bg)}
table.sources td.cut{max-width:22em;overflow:hidden;text-overflow:ellipsis}
table.sources tr.bad th{border-left:4px solid var(--bad)}
table.sources tr.bad td.cut:last-child{color:var(--bad)}
"""


def _style_hash() -> str:
    digest = hashlib.sha256(STYLE.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


# Every HTML page: nothing but our own resources and our one inline style block, never framed,
# no MIME sniffing, no referrer to the sites entries link to.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        f"default-src 'self'; style-src {_style_hash()}; img-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
