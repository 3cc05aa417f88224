"""Whatever bytes one source sends, parsing them is safe and bounded: absurd dates are absent,
a body naming a local file is not read, entries per fetch and stored text fields are capped, and
a parse over its CPU budget fails only its source."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from aggregator.cli.sources import fetch_all
from aggregator.clock import FakeClock
from aggregator.models import Entry, FetchResult, FetchStatus, ParseLimits, Selection, Source
from aggregator.pipeline.workers import Offload, ParseTimeout
from aggregator.sources import limits
from aggregator.sources.dates import from_struct, parse_date, plausible
from aggregator.sources.fields import FieldSpec, to_date
from aggregator.sources.limits import newest_indexes, trim_xml
from aggregator.sources.qutoutiao import QutoutiaoAdapter

from .harness import ATOM, Harness, make_settings
from .origin import Origin, Reply


def rss(*items: str) -> bytes:
    return (
        "<?xml version='1.0'?><rss version='2.0' xmlns:dc='http://purl.org/dc/elements/1.1/'>"
        "<channel><title>t</title><link>http://example.com/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def item(n: int, extra: str = "") -> str:
    return f"<item><title>item {n}</title><link>http://example.com/{n}</link>{extra}</item>"


def stored(h: Harness, sid: str) -> dict[str, Entry]:
    """A source's stored entries by title."""
    entries = h.store.list_entries(Selection(source_ids=(sid,), merge_duplicates=False, limit=1000))
    return {e.title: e for e in entries}


def configure(h: Harness, section: str, **values: object) -> None:
    """Change settings of a harness whose [section] the harness config already declares."""
    settings = h.settings
    h.settings = settings.model_copy(
        update={section: getattr(settings, section).model_copy(update=values)}
    )
    h.dispatcher.sources = lambda: {s.id: s for s in h.settings.source_records()}


ABSURD = [
    "0000-00-00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
    "1969-12-31T23:59:59Z",
    "0000-01-01",
    "99999999999999",
]


@pytest.mark.parametrize("text", ABSURD)
def test_absurd_dates_are_absent_never_raised(text: str) -> None:
    """A date that cannot be represented or is before 1970 parses to None, never an exception."""
    assert parse_date(text) is None


def test_the_future_rule_needs_the_fetch_time() -> None:
    """A date more than a day after the fetch time is absent; up to a day after, it is kept."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    soon, later = datetime(2026, 1, 1, 23, tzinfo=UTC), datetime(2026, 1, 2, 1, tzinfo=UTC)
    assert plausible(soon, now) == soon and plausible(later, now) is None
    assert plausible(later) == later  # without a fetch time only the 1970 floor applies
    assert from_struct((-1, 11, 30, 0, 0, 0, 1, 334, 0)) is None  # type: ignore[arg-type]


def test_configured_date_fields_treat_absurd_dates_as_absent() -> None:
    """json/html date fields: an absurd date is absent; text that is no date is still a mistake."""
    assert to_date("0001-01-01 00:00", FieldSpec(format="%Y-%m-%d %H:%M")) is None
    assert to_date("0000-00-00", FieldSpec()) is None
    assert to_date("9999-12-31T23:59:59-05:00", FieldSpec()) is None
    with pytest.raises(ValueError, match="is not a date"):
        to_date("soon", FieldSpec())


async def test_absurd_dates_in_every_feed_format_leave_the_entries_undated(
    origin: Origin,
    clock: FakeClock,
    harness_factory,  # type: ignore[no-untyped-def]
) -> None:
    """RSS pubDate, Atom published, RDF dc:date and JSON Feed dates that are impossible, before
    1970 or more than a day after the fetch are absent: every source is stored, entries undated."""
    good = "Wed, 31 Dec 2025 10:00:00 +0000"
    future = "Sat, 03 Jan 2026 00:00:00 +0000"  # the fake clock fetches on 2026-01-01
    dates = [*ABSURD[:5], future]
    origin.route(
        "/rss",
        Reply(
            rss(
                *(item(i, f"<pubDate>{d}</pubDate>") for i, d in enumerate(dates)),
                item(99, f"<pubDate>{good}</pubDate>"),
            )
        ),
    )
    atom = "".join(
        f"<entry><title>a{i}</title><id>urn:a{i}</id><published>{d}</published>"
        f"<updated>{d}</updated></entry>"
        for i, d in enumerate(ABSURD[:4])
    )
    origin.route(
        "/atom", Reply(f"<feed xmlns='http://www.w3.org/2005/Atom'><title>t</title>{atom}</feed>")
    )
    origin.route(
        "/rdf",
        Reply(
            "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' xmlns='http://purl.org/rss/1.0/'"
            " xmlns:dc='http://purl.org/dc/elements/1.1/'><channel rdf:about='http://x/'><title>t</title>"
            "</channel><item rdf:about='http://x/1'><title>r</title><link>http://x/1</link>"
            "<dc:date>0000-01-01</dc:date></item></rdf:RDF>"
        ),
    )
    items = [
        {"id": str(i), "title": f"j{i}", "date_published": d, "date_modified": d}
        for i, d in enumerate(ABSURD[1:4])
    ]
    origin.route(
        "/json",
        Reply(
            json.dumps(
                {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": items}
            ),
            content_type="application/feed+json",
        ),
    )
    sids = ["rss", "atom", "rdf", "json"]
    h = await harness_factory([(s, origin.url(f"/{s}")) for s in sids])
    await h.tick()
    assert [h.state(s).last_status for s in sids] == ["ok"] * 4
    entries = {t: e for s in sids for t, e in stored(h, s).items()}
    assert len(entries) == 7 + 4 + 1 + 3
    assert entries["item 99"].published == datetime(2025, 12, 31, 10, tzinfo=UTC)
    assert [t for t, e in entries.items() if e.published or e.updated] == ["item 99"]


async def test_a_body_naming_a_local_file_is_not_read(
    origin: Origin,
    tmp_path: Path,
    harness_factory,  # type: ignore[no-untyped-def]
) -> None:
    """A body that is the path of a local feed file fails as not a feed; the file is not read."""
    local = tmp_path / "secret.xml"
    local.write_bytes(ATOM)
    origin.route("/path", Reply(str(local).encode(), content_type="text/plain"))
    origin.route("/good", Reply(ATOM))
    h = await harness_factory([("path", origin.url("/path")), ("good", origin.url("/good"))])
    await h.tick()
    assert h.state("path").last_status == "error"
    assert "not a feed" in (h.state("path").last_error or "")
    assert h.entries("path") == 0 and h.entries("good") == 20


def test_newest_indexes_rule() -> None:
    """The kept items are the newest dated ones, then undated ones in document order; the kept
    indexes come back in document order."""
    d = [datetime(2025, 1, day, tzinfo=UTC) for day in range(1, 6)]
    assert newest_indexes([d[0], None, d[4], d[2], None, d[3]], 3) == [2, 3, 5]
    assert newest_indexes([None, d[1], None, None, d[0]], 3) == [0, 1, 4]
    assert newest_indexes([None, None], 5) == [0, 1]


async def test_entries_per_fetch_are_capped_newest_first(
    origin: Origin,
    harness_factory,  # type: ignore[no-untyped-def]
) -> None:
    """With [fetch] max_entries = 3, an RSS feed, an Atom feed and a JSON Feed of ten entries
    each store their three newest (dates out of document order; undated ones, and those dated
    implausibly far ahead, come last)."""
    days = [3, 9, 1, None, 7, 2, 8, None, 4, 5]  # newest three: items 1, 6 and 4
    rss_items = [
        item(i, f"<pubDate>{_rfc822(d)}</pubDate>" if d else "") for i, d in enumerate(days)
    ]
    future = item(10, "<pubDate>01 Jan 2099 00:00:00 +0000</pubDate>")  # absent: counts as undated
    origin.route("/rss", Reply(rss(future, *rss_items)))
    atom = "".join(
        f"<entry><title>item {i}</title><id>urn:{i}</id>"
        + (f"<updated>2025-01-{d:02}T00:00:00Z</updated>" if d else "")
        + "</entry>"
        for i, d in enumerate(days)
    )
    origin.route(
        "/atom", Reply(f"<feed xmlns='http://www.w3.org/2005/Atom'><title>A</title>{atom}</feed>")
    )
    items = [
        {"id": str(i), "title": f"item {i}"}
        | ({"date_published": f"2025-01-{d:02}T00:00:00Z"} if d else {})
        for i, d in enumerate(days)
    ]
    origin.route(
        "/json",
        Reply(
            json.dumps(
                {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}
            ),
            content_type="application/feed+json",
        ),
    )
    undated = rss(*(item(i) for i in range(10)))
    origin.route("/undated", Reply(undated))
    sids = ["rss", "atom", "json", "undated"]
    h = await harness_factory([(s, origin.url(f"/{s}")) for s in sids])
    configure(h, "fetch", max_entries=3)
    await h.tick()
    for sid in ("rss", "atom", "json"):
        assert sorted(stored(h, sid)) == ["item 1", "item 4", "item 6"], sid
    assert h.state("atom").title == "A"  # what is around the items survives the trimming
    assert sorted(stored(h, "undated")) == ["item 0", "item 1", "item 2"]


def _rfc822(day: int) -> str:
    return f"{day:02} Jan 2025 00:00:00 +0000"


def test_trimming_a_document_keeps_the_rest_of_it() -> None:
    """trim_xml keeps the channel, namespaces and kept items as they were; a document lxml
    cannot read keeps its first items."""
    doc = rss(
        item(1, "<dc:creator>Ann</dc:creator><pubDate>01 Jan 2025 00:00:00 +0000</pubDate>"),
        item(2, "<pubDate>02 Jan 2025 00:00:00 +0000</pubDate>"),
        item(3),
    )
    trimmed = feedparser.parse(io.BytesIO(trim_xml(doc, 2)))
    assert [e.title for e in trimmed.entries] == ["item 1", "item 2"]
    assert trimmed.entries[0].author == "Ann" and trimmed.feed.title == "t"
    assert trim_xml(doc, 3) is doc
    for broken in (b"garbage " + doc, doc.replace(b"<channel>", b"<channel><!DOCTYPE x>")):
        assert (
            trim_xml(broken, 2) == broken[: broken.index(b"</item>", broken.index(b"item 2")) + 7]
        )


async def test_stored_text_fields_are_capped(
    origin: Origin,
    harness_factory,  # type: ignore[no-untyped-def]
) -> None:
    """A 2-million-character title, a long author, too many and too long categories, an
    over-long link and guid and huge content are stored within the documented limits."""
    huge_title = "T" * 2_000_000
    cats = "".join(f"<category>{i}{'c' * 300}</category>" for i in range(80))
    long_url = "http://example.com/" + "p" * 5000
    body = "<p>" + "x" * (limits.CONTENT_CHARS + 5000) + "</p>"
    origin.route(
        "/big",
        Reply(
            rss(
                f"<item><title>{huge_title}</title><link>{long_url}</link><guid>{long_url}</guid>"
                f"<author>{'a' * 1000}</author>{cats}<description>{body}</description></item>"
            )
        ),
    )
    h = await harness_factory([("big", origin.url("/big"))])
    await h.tick()
    [entry] = stored(h, "big").values()
    assert len(entry.title) == limits.TITLE_CHARS and entry.title.endswith("…")
    assert entry.author is not None and len(entry.author) == limits.AUTHOR_CHARS
    assert len(entry.categories) == limits.MAX_CATEGORIES
    assert {len(c) for c in entry.categories} == {limits.CATEGORY_CHARS}
    assert entry.link is None and entry.key.startswith("sha256:")
    assert entry.content is not None and len(entry.content) <= limits.CONTENT_CHARS + 10


def many_attributes(n: int = 6_000, elements: int = 6) -> bytes:
    """A document whose parse costs feedparser seconds of CPU (quadratic in ``n`` per element;
    each tag stays under the 64 KiB a tag may have)."""
    attrs = " ".join(f'a{i}="v"' for i in range(n))
    return rss(
        "".join(
            f"<item><title {attrs}>t</title><link>http://example.com/{k}</link></item>"
            for k in range(elements)
        )
    )


async def test_a_tag_over_64_kib_is_refused_before_feedparser_reads_it(
    origin: Origin, tmp_path: Path, clock: FakeClock
) -> None:
    """50,000 attributes on one element (24 s of CPU and over 100 MB in feedparser) are refused at
    once as pathological markup; the other sources are stored."""
    attrs = " ".join(f'a{i}="{i}"' for i in range(50_000))
    sources = [
        ("huge", origin.route("/huge", Reply(rss(f"<item {attrs}><title>t</title></item>"))))
    ]
    sources += [("g", origin.route("/g", Reply(rss(item(1)))))]
    settings = make_settings(tmp_path, sources)
    outcomes = {
        o.source_id: o for o in await fetch_all(settings, settings.source_records(), clock=clock)
    }
    assert outcomes["huge"].error == "not a feed: a tag longer than 64 KiB (pathological markup)"
    assert outcomes["g"].status == FetchStatus.OK


async def test_a_parse_over_its_cpu_budget_fails_only_its_source(
    origin: Origin, tmp_path: Path, clock: FakeClock
) -> None:
    """With worker processes and [content] parse_cpu_budget = 0.5, a document whose parse takes
    seconds of CPU fails with 'parse took too long'; the other sources of the batch are stored."""
    sources = [("slow", origin.route("/slow", Reply(many_attributes())))]
    sources += [(f"g{i}", origin.route(f"/g{i}", Reply(rss(item(i))))) for i in range(3)]
    settings = make_settings(
        tmp_path, sources, extra="[content]\nprocesses = 2\nparse_cpu_budget = 0.5"
    )
    outcomes = {
        o.source_id: o for o in await fetch_all(settings, settings.source_records(), clock=clock)
    }
    assert outcomes["slow"].status == FetchStatus.ERROR
    assert (outcomes["slow"].error or "").startswith("parse took too long")
    assert [outcomes[f"g{i}"].status for i in range(3)] == [FetchStatus.OK] * 3


async def test_a_worker_over_budget_is_replaced_and_the_next_job_runs() -> None:
    """The job over its budget raises ParseTimeout (a ParseError), the pool is replaced, and the
    next document parses in a new worker."""
    offload = Offload(2)
    slow = Source(id="s", url="http://127.0.0.1/feed", limits=ParseLimits(cpu_budget=0.5))
    try:
        result = FetchResult(url=slow.url, status_code=200, content=many_attributes())
        with pytest.raises(ParseTimeout, match="parse took too long"):
            await offload.identify(slow, result, ())
        pool = offload._pool
        assert pool is None  # replaced: the next job starts a new one
        good = FetchResult(url=slow.url, status_code=200, content=ATOM)
        parsed, keyed = await offload.identify(slow, good, ())
        assert len(keyed) == len(parsed.items) == 20
    finally:
        offload.close()


def test_qutoutiao_times_out_of_range_fall_back_or_are_absent() -> None:
    """An overflowing or pre-1970 show_time falls back to publish_time, else the item is undated."""
    raws = [
        {"url": "http://x.example/1", "show_time": "1e300", "publish_time": "1518478934000"},
        {"url": "http://x.example/2", "show_time": "-86400", "publish_time": "1e400"},
    ]
    body = json.dumps({"code": 0, "data": {"data": raws}}).encode()
    source = Source(id="q", url="http://x.example/list", kind="qutoutiao")
    items = (
        QutoutiaoAdapter()
        .parse(source, FetchResult(url=source.url, status_code=200, content=body))
        .items
    )
    assert [i.published for i in items] == [datetime(2018, 2, 12, 23, 42, 14, tzinfo=UTC), None]


def test_a_job_stuck_in_c_code_is_killed_by_its_cpu_limit() -> None:
    """A job that never returns to Python (a C loop) ignores the timer; RLIMIT_CPU kills its
    process with SIGXCPU (the pool then fails the job as too long, see Offload._run)."""
    code = (
        "from aggregator.pipeline.workers import within_budget\n"
        "within_budget(0.1, sum, range(10**13), hard_after=0.0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGXCPU, proc.stderr[-500:]
