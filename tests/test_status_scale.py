"""The status page at 300 sources: failing first, a filter, a compact table; headings that do not
break mid-word; badges that follow a reset; a refused admin action with a way back."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.clock import FakeClock
from aggregator.http.report import SourceRow
from aggregator.http.status import COMPACT_FROM, STYLE, Overview, View, overview_page

from .ops_stack import running_stack
from .origin import Origin
from .test_status_page import CHROMIUM, chromium, setup

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rows(n: int = 300) -> tuple[SourceRow, ...]:
    """n sources, every 25th failing, names long enough to wrap on a phone."""
    out = []
    for i in range(n):
        bad = i % 25 == 7
        out.append(
            SourceRow(
                f"source-{i:03d}",
                "error" if bad else "ok",
                NOW - timedelta(minutes=i),
                3 if bad else 0,
                NOW + timedelta(minutes=30),
                i,
                10,
                2,
                f"https://site{i}.example/feed.xml",
                None,
                "HTTP 500 Internal Server Error" if bad else None,
            )
        )
    return tuple(out)


def page(view: View, n: int = 300) -> str:
    names = {
        f"source-{i:03d}": f"Frankfurter Allgemeine Gesellschaftsnachrichten {i}" for i in range(n)
    }
    return overview_page(Overview("agg", NOW, (), rows(n), (), (), names, view))


def shown_ids(html: str) -> list[str]:
    return re.findall(r'id="source-(source-\d+)"', html)


def test_failing_sources_come_first() -> None:
    """The 12 failing sources lead the list; the rest follow by id."""
    ids = shown_ids(page(View()))
    failing = [f"source-{i:03d}" for i in range(300) if i % 25 == 7]
    assert ids[:12] == failing and len(ids) == 300
    assert ids[12:] == sorted(ids[12:])


def test_filter_by_text_and_failing_only() -> None:
    """?q= matches id, name, URL or error; ?show=failing keeps the failing ones."""
    assert shown_ids(page(View(query="SITE12.example"))) == ["source-012"]
    assert shown_ids(page(View(query="gesellschaftsnachrichten 299"))) == ["source-299"]
    only = page(View.of({"show": "failing", "key": "k1"}))
    assert len(shown_ids(only)) == 12 and "showing 12 of 300" in only
    assert '<input type="hidden" name="key" value="k1">' in only  # the form keeps access
    assert "No source matches." in page(View(query="nothing-like-it"))


def test_many_sources_get_the_compact_table() -> None:
    """From COMPACT_FROM sources the overview is a table (one line each); ?view=cards overrides,
    and a few sources stay cards."""
    assert '<table class="sources">' in page(View())
    assert '<table class="sources">' not in page(View(layout="cards"))
    assert '<table class="sources">' not in page(View(), n=COMPACT_FROM - 1)
    assert '<table class="sources">' in page(View(layout="table"), n=3)


def test_headings_do_not_break_inside_words() -> None:
    """No `word-break: break-all` (which cut `Gesellsc/haft`) anywhere in the stylesheet."""
    assert "break-all" not in STYLE


def _content_height(png: bytes) -> int:
    """Pixels from the top to the last row that is not plain background."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    width, height = image.size
    data = image.tobytes()
    for y in range(height - 1, -1, -1):
        row = data[y * width : (y + 1) * width]
        if min(row) < 200:
            return y + 1
    return 0


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
async def test_300_sources_in_chromium_desktop_and_phone(tmp_path: Path) -> None:
    """Rendered by Chromium at 1280 and 412 px wide, the 300-source overview is a page of about
    one line per source (under 11,000 px; as cards it was 55,000)."""
    html = tmp_path / "status.html"
    html.write_text(page(View()), encoding="utf-8")
    url = html.as_uri()
    heights = {}
    for width in (1280, 412):
        shot = tmp_path / f"{width}.png"
        await chromium(
            f"--screenshot={shot}",
            f"--window-size={width},11000",
            url,
            profile=tmp_path / f"p{width}",
        )
        heights[width] = _content_height(shot.read_bytes())
    assert all(300 * 20 < h < 10900 for h in heights.values()), heights


async def test_reset_turns_the_error_badge_into_reset(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """After "Reset errors" the source's badge says reset (not error) until its next fetch."""
    path, _ = await setup(tmp_path, origin, 'admin_token = "s3cret"')
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            assert (
                '<span class="badge bad">error</span>' in (await http.get("/sources/broken")).text
            )
            ok = await http.post("/sources/broken/reset", data={"token": "s3cret"})
            assert ok.status_code == 303
            after = (await http.get("/sources/broken")).text
            assert '<span class="badge new">reset</span>' in after and "badge bad" not in after
            overview = (await http.get("/")).text
            assert "all healthy" in overview


async def test_a_wrong_token_lands_on_a_page_with_a_way_back(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A browser posting a wrong admin token gets a 403 HTML page linking back to the source."""
    path, _ = await setup(tmp_path, origin, 'admin_token = "s3cret"')
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            r = await http.post(
                "/sources/broken/reset",
                data={"token": "nope"},
                headers={"Accept": "text/html,application/xhtml+xml"},
            )
            assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
            assert (
                'href="/sources/broken"' in r.text
                and "wrong or missing admin token" in r.text.lower()
            )
            plain = await http.post("/sources/broken/reset", data={"token": "nope"})
            assert plain.text.startswith("403 Forbidden: wrong or missing admin token")
