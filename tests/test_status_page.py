"""The status pages, admin actions, health checks and /metrics of a running app, over real HTTP on
127.0.0.1; the overview is also loaded in headless Chromium at a phone's size."""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.clock import FakeClock
from aggregator.runtime.owners import owner_id

from .ops_stack import Stack, make_config, running_stack
from .origin import Origin, Reply
from .test_reload import atom

CHROMIUM = shutil.which("chromium")


def feeds() -> dict[str, bytes]:
    return {
        "good": atom("good", ["First story", "Tom &amp; Jerry &lt;3", "第三条新闻"]),
        "cached": atom("cached", ["Only one"]),
        "broken": b"",  # replaced by a 500 below
    }


async def setup(tmp_path: Path, origin: Origin, server_extra: str = "") -> tuple[Path, str]:
    extra = {"good": {"title": '"<i>Good</i> & co"', "category": '"Tech / News"'}}
    path, text = make_config(tmp_path, origin, feeds(), server_extra, extra)
    origin.route("/broken", Reply(b"boom", status=500, content_type="text/plain"))
    origin.route(
        "/cached",
        Reply(atom("cached", ["Only one"]), etag='"v1"', content_type="application/atom+xml"),
    )
    return path, text


async def fetch_twice(st: Stack) -> None:
    """Fetch everything, then again 2 h later: 'cached' answers 304 the second time."""
    await st.tick()
    st.clock.advance(7200)
    await st.tick()


async def test_overview_shows_sources_feeds_and_entries(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """The overview lists every source with its status, failures, entries, 304 share and last
    error, subscribe links for every feed and format, and the newest entries, all escaped."""
    path, _ = await setup(tmp_path, origin)
    async with running_stack(path, clock) as st:
        await fetch_twice(st)
        async with st.client() as http:
            r = await http.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        for sid in ("good", "cached", "broken"):
            assert f'href="/sources/{sid}"' in page
        assert '<span class="badge bad">error</span>' in page
        assert "HTTP 500" in page or "500" in page
        assert "<dt>fails</dt><dd>2" in page  # broken failed twice in a row
        assert "<dt>304s</dt><dd>50%" in page  # cached: one 200, one 304
        assert "<dt>entries</dt><dd>3" in page
        assert "&lt;i&gt;Good&lt;/i&gt; &amp; co" in page and "<i>Good</i>" not in page
        assert "Tom &amp; Jerry &lt;3" in page and "第三条新闻" in page
        for href in (
            "/feeds/all.rss",
            "/feeds/all.atom",
            "/feeds/all.json",
            "/feeds/source/good.atom",
            "/feeds/source/broken.json",
        ):
            assert f'href="{href}"' in page
        assert "/feeds/category/Tech.rss" in page and "/feeds/category/Tech/News.json" in page


async def test_source_page_shows_history_and_entries(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """/sources/ID shows the source's recent fetches (newest first) and its entries; an unknown
    id is a 404."""
    path, _ = await setup(tmp_path, origin)
    async with running_stack(path, clock) as st:
        await fetch_twice(st)
        async with st.client() as http:
            cached = (await http.get("/sources/cached")).text
            broken = (await http.get("/sources/broken")).text
            missing = await http.get("/sources/nope")
        history = cached[cached.index('<ol class="history">') :]
        assert history.index("<b>not_modified</b>") < history.index("<b>ok</b>")
        assert "Only one" in cached and "/feeds/source/cached.rss" in cached
        assert broken.count('<li class="h bad"><b>error</b>') == 2
        assert "Admin actions are off" in broken
        assert missing.status_code == 404


async def test_admin_actions_need_a_configured_token(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """Without server.admin_token the server is read-only: POST is 403 with a reason, GET 405."""
    path, _ = await setup(tmp_path, origin)
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            r = await http.post("/sources/broken/reset", data={"token": "anything"})
            assert r.status_code == 403 and "read-only" in r.text
            assert (await http.get("/sources/broken/reset")).status_code == 405
        state = st.store.get_state("broken")
        assert state is not None and state.consecutive_failures == 1


async def test_admin_actions_with_token(tmp_path: Path, origin: Origin, clock: FakeClock) -> None:
    """With a token, a POST carrying it (form field or Bearer) fetches now or resets errors and
    pokes the scheduler; a missing or wrong token is refused and changes nothing."""
    path, _ = await setup(tmp_path, origin, 'admin_token = "s3cret"')
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            page = (await http.get("/sources/broken")).text
            assert 'formaction="/sources/broken/reset"' in page
            assert (await http.post("/sources/broken/reset")).status_code == 403
            wrong = await http.post("/sources/broken/reset", data={"token": "s3cre"})
            assert wrong.status_code == 403
            assert st.store.get_state("broken").consecutive_failures == 1  # type: ignore[union-attr]
            assert not st.pokes

            ok = await http.post("/sources/broken/reset", data={"token": "s3cret"})
            assert ok.status_code == 303 and ok.headers["location"] == "/sources/broken?done=reset"
            state = st.store.get_state("broken")
            assert state is not None and state.consecutive_failures == 0
            assert state.next_fetch_at == clock.now() and st.pokes

            good = st.store.get_state("good")
            assert (
                good is not None
                and good.next_fetch_at is not None
                and good.next_fetch_at > clock.now()
            )
            bearer = await http.post(
                "/sources/good/fetch-now", headers={"Authorization": "Bearer s3cret"}
            )
            assert bearer.status_code == 303
            assert st.store.get_state("good").next_fetch_at == clock.now()  # type: ignore[union-attr]
            assert "Fetch requested" in (await http.get(bearer.headers["location"])).text
            assert (
                await http.post("/sources/nope/reset", data={"token": "s3cret"})
            ).status_code == 404


async def test_health_and_readiness(tmp_path: Path, origin: Origin, clock: FakeClock) -> None:
    """/healthz answers while the process runs; /readyz is 200 only while the scheduler runs."""
    path, _ = await setup(tmp_path, origin)
    async with running_stack(path, clock) as st, st.client() as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and "store=ok" in ready.text
        st.ready["scheduler"] = False
        down = await http.get("/readyz")
        assert down.status_code == 503 and "scheduler=down" in down.text


async def test_metrics_parse(tmp_path: Path, origin: Origin, clock: FakeClock) -> None:
    """/metrics is Prometheus text: fetch counters by outcome, bytes, entries, fetch and render
    histograms, and per-source gauges from the store."""
    path, _ = await setup(tmp_path, origin)
    async with running_stack(path, clock) as st:
        await fetch_twice(st)
        async with st.client() as http:
            assert (await http.get("/feeds/all.atom")).status_code == 200
            r = await http.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
        }

        def value(name: str, **labels: str) -> float:
            return samples[(name, tuple(sorted(labels.items())))]

        own = {"role": "all", "process": owner_id()}  # this process's
        assert value("aggregator_fetches_total", outcome="ok", **own) == 2
        assert value("aggregator_fetches_total", outcome="not_modified", **own) == 2  # same bytes
        assert value("aggregator_fetches_total", outcome="error", **own) == 2
        assert value("aggregator_entries_added_total", **own) == 4
        assert value("aggregator_fetch_bytes_total", **own) > 0
        assert value("aggregator_fetch_seconds_count", **own) == 6
        assert value("aggregator_render_seconds_count", format="atom", **own) >= 1
        assert value("aggregator_source_consecutive_failures", source="broken") == 2
        assert value("aggregator_source_last_success_timestamp_seconds", source="broken") == 0
        assert (
            value("aggregator_source_last_success_timestamp_seconds", source="good")
            == clock.now().timestamp()
        )
        assert (
            value("aggregator_source_next_fetch_timestamp_seconds", source="good")
            > clock.now().timestamp()
        )
        assert value("aggregator_source_entries", source="good") == 3


# --- a real browser ---------------------------------------------------------------------------


async def chromium(*args: str, profile: Path) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out


def screenshot_is_readable(png: bytes) -> None:
    """Not blank: many distinct colours and a good share of dark (text) pixels."""
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    assert image.size == (412, 915)
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, f"only {len(colours or [])} colours: blank page"
    grey = image.convert("L").tobytes()
    dark = sum(1 for p in grey if p < 128) / len(grey)
    assert dark > 0.01, f"only {dark:.2%} dark pixels: no text"


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
async def test_status_page_in_headless_chromium(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """Chromium at a phone's size renders the overview: the screenshot is not blank, and the page's
    text (its DOM after rendering) shows every source, the error and the entries."""
    path, _ = await setup(tmp_path, origin)
    shot = tmp_path / "status.png"
    async with running_stack(path, clock) as st:
        await fetch_twice(st)
        url = st.base + "/"
        dom, _ = await asyncio.gather(
            chromium("--dump-dom", url, profile=tmp_path / "p1"),
            chromium(f"--screenshot={shot}", "--window-size=412,915", url, profile=tmp_path / "p2"),
        )
    text = dom.decode("utf-8")
    for sid in ("good", "cached", "broken"):
        assert f'id="source-{sid}"' in text
    assert "First story" in text and "第三条新闻" in text and "HTTP 500" in text
    screenshot_is_readable(shot.read_bytes())
    keep = Path(__file__).resolve().parents[1] / ".pytest_cache" / "status-page.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)  # for a person to look at after the run
