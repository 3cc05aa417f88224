"""Live config reload: new sources fetched at once, removed ones stop, changed ones take their new
settings, broken configs are kept out and shown; the file watcher notices edits by itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from aggregator.clock import FakeClock
from aggregator.config import loading as config_mod
from aggregator.config.settings import Settings
from aggregator.runtime.reload import Reloader, diff, restart_safe

from .ops_stack import make_config, running_stack, source_block
from .origin import Origin, Reply


def atom(name: str, titles: list[str]) -> bytes:
    entries = "".join(
        f"<entry><id>urn:{name}:{i}</id><title>{t}</title><link href='http://example.com/{name}/{i}'/>"
        f"<updated>2025-12-0{1 + i % 9}T10:00:00Z</updated><content type='html'>&lt;p&gt;{t} body "
        f"text&lt;/p&gt;</content></entry>"
        for i, t in enumerate(titles)
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
        f"<id>urn:{name}</id><title>{name} feed</title><updated>2025-12-09T10:00:00Z</updated>"
        f"{entries}</feed>"
    ).encode()


def fetched(outcomes: list) -> set[str]:  # type: ignore[type-arg]
    return {o.source_id for o in outcomes}


async def test_new_source_is_fetched_at_once(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A source added to the file is synced, the scheduler is poked, and the next tick fetches it."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    url_b = origin.route("/b", Reply(atom("b", ["B1", "B2"]), content_type="application/atom+xml"))
    async with running_stack(path, clock, serve=False) as st:
        assert fetched(await st.tick()) == {"a"}
        clock.advance(10)
        st.write(text + source_block("b", url_b))
        assert st.ops.reloader.check() is True
        assert st.pokes, "the scheduler was not poked"
        assert "b" in st.live.get()
        assert fetched(await st.tick()) == {"b"}
        assert st.store.entry_counts()["b"] == 2


async def test_removed_source_stops_and_keeps_entries(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A source removed from the file is not fetched again, while its entries stay."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"]), "b": atom("b", ["B1"])})
    async with running_stack(path, clock, serve=False) as st:
        assert fetched(await st.tick()) == {"a", "b"}
        st.write(text.split('[[sources]]\nid = "b"')[0])
        assert st.ops.reloader.check() is True
        assert st.ops.reloader.state.last_change.removed == ("b",)
        clock.advance(86400 * 3)
        assert fetched(await st.tick()) == {"a"}
        assert st.store.entry_counts()["b"] == 1
        assert [s.source_id for s in st.store.list_states()] == ["a"]


async def test_changed_interval_is_taken(tmp_path: Path, origin: Origin, clock: FakeClock) -> None:
    """A changed source is made due now and is next scheduled with its new interval."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    async with running_stack(path, clock, serve=False) as st:
        await st.tick()
        first = st.store.get_state("a")
        assert first is not None and first.next_fetch_at == clock.now() + timedelta(minutes=30)
        clock.advance(60)
        st.write(text + 'interval = "2h"\n')
        assert st.ops.reloader.check() is True
        assert st.ops.reloader.state.last_change.changed == ("a",)
        assert fetched(await st.tick()) == {"a"}
        state = st.store.get_state("a")
        assert state is not None and state.next_fetch_at == clock.now() + timedelta(hours=2)


async def test_invalid_config_is_kept_out_and_shown(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A config that fails validation changes nothing, is reported on the status page, and a fixed
    file is then applied and the report cleared."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    url_b = origin.route("/b", Reply(atom("b", ["B1"]), content_type="application/atom+xml"))
    async with running_stack(path, clock) as st:
        st.write(text + source_block("b", "not a url") + "colour = 1\n")
        assert st.ops.reloader.check() is False
        error = st.ops.reloader.state.error
        assert any("sources[1] (id=b).url" in p for p in error), error
        assert "b" not in st.live.get()
        assert fetched(await st.tick()) == {"a"}
        async with st.client() as http:
            page = (await http.get("/")).text
            assert "has errors and was not applied" in page
            assert "sources[1] (id=b).url: not an http(s) URL" in page
            assert "colour: unknown key" in page
        st.write(text + source_block("b", url_b))
        assert st.ops.reloader.check() is True
        assert st.ops.reloader.state.error == ()
        assert fetched(await st.tick()) == {"b"}
        async with st.client() as http:
            assert "has errors" not in (await http.get("/")).text


async def test_restart_only_settings_are_reported_not_applied(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A new port or storage URL is listed as needing a restart; everything else still applies."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    async with running_stack(path, clock) as st:
        port = st.ops.reloader.settings.server.port
        edited = text.replace(f"port = {port}", "port = 1").replace("[publish]", "")
        st.write(edited + '[publish]\ntitle = "Renamed"\n')
        assert st.ops.reloader.check() is True
        running = st.ops.reloader.settings
        assert running.server.port == port and running.publish.title == "Renamed"
        assert any(line.startswith("server.port:") for line in st.ops.reloader.state.needs_restart)
        async with st.client() as http:
            page = (await http.get("/")).text
            assert "take effect only after a restart" in page and "server.port" in page


async def test_live_settings_reach_the_feeds(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A changed publish title shows in the next rendering of a feed (no stale cached bytes)."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            assert "<title>aggregator</title>" in (await http.get("/feeds/all.atom")).text
            st.write(text + '[publish]\ntitle = "Nightly digest"\n')
            assert st.ops.reloader.check() is True
            assert "<title>Nightly digest</title>" in (await http.get("/feeds/all.atom")).text


async def test_same_bytes_do_not_reload(tmp_path: Path, origin: Origin, clock: FakeClock) -> None:
    """Touching the file without changing its bytes is not a reload."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    async with running_stack(path, clock, serve=False) as st:
        st.write(text)
        assert st.ops.reloader.check() is False
        assert st.ops.reloader.reload("SIGHUP") is True  # a forced reload still runs


async def test_watcher_notices_an_edit(tmp_path: Path, origin: Origin, clock: FakeClock) -> None:
    """With the watcher started, editing the file applies it without anyone calling reload."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    url_b = origin.route("/b", Reply(atom("b", ["B1"]), content_type="application/atom+xml"))
    async with running_stack(path, clock, serve=False) as st:
        st.ops.start(every=0.01)
        try:
            st.write(text + source_block("b", url_b))
            for _ in range(300):  # the watcher polls on real time; at most 3 s
                if "b" in st.live.get():
                    break
                await asyncio.sleep(0.01)
            assert "b" in st.live.get()
        finally:
            await st.ops.stop()


def test_diff_and_restart_safe() -> None:
    """diff names added, removed and changed sources; restart_safe keeps the running port."""
    old = config_mod.parse(
        '[server]\nport = 1\n[[sources]]\nid = "a"\nurl = "http://x/a"\n'
        '[[sources]]\nid = "b"\nurl = "http://x/b"\n'
    )
    new = config_mod.parse(
        '[server]\nport = 2\n[[sources]]\nid = "a"\nurl = "http://x/a2"\n'
        '[[sources]]\nid = "c"\nurl = "http://x/c"\n'
    )
    change = diff(old, new)
    assert (change.added, change.removed, change.changed) == (("c",), ("b",), ("a",))
    assert change.needs_restart == ("server.port: running with 1, the file says 2",)
    assert restart_safe(old, new).server.port == 1
    assert restart_safe(old, new).sources == new.sources


async def test_read_only_reload_leaves_the_store_alone(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A web process's reloader (sync_store=False) takes the new settings but writes no rows."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    async with running_stack(path, clock, serve=False) as st:
        seen: list[Settings] = []
        reader = Reloader(path, st.settings, st.store, clock, [seen.append], sync_store=False)
        st.write(text + source_block("b", "http://127.0.0.1:9/b"))
        assert reader.check() is True
        assert [s.id for s in seen[0].sources] == ["a", "b"]
        assert [s.source_id for s in st.store.list_states()] == ["a"]


async def test_a_reloaded_retention_interval_reschedules_the_job(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """retention.every changed by a reload is applied: the running retention job is rescheduled
    to the new interval (and nothing says it needs a restart)."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    async with running_stack(path, clock, serve=False) as st:
        st.scheduler.start()
        assert st.scheduler.retention_every() == 3600
        st.write(text + '[retention]\nevery = "2h"\n')
        assert st.ops.reloader.check() is True
        assert st.scheduler.retention_every() == 7200
        assert st.ops.reloader.state.needs_restart == ()


def test_every_setting_is_applied_by_a_reload_or_reported() -> None:
    """Each key of each config section is either applied by a reload (reload.LIVE) or reported
    as needing a restart (reload.RESTART_ONLY): no setting is silently ignored."""
    from aggregator.runtime.reload import LIVE, RESTART_ONLY

    known = set(LIVE) | set(RESTART_ONLY)
    missing = []
    for section, info in Settings.model_fields.items():
        if section == "sources" or (section, None) in known:
            continue
        model = info.annotation
        assert isinstance(model, type), section
        missing += [f"{section}.{key}" for key in model.model_fields if (section, key) not in known]
    assert missing == []


def test_a_command_line_port_is_not_reported_as_needing_a_restart(tmp_path: Path) -> None:
    """A process started with --port reloads the file with the same override: the file's own
    port is not a change that needs a restart."""
    from aggregator.runtime.daemon import command_line
    from aggregator.runtime.roles import Role

    path = tmp_path / "a.toml"
    path.write_text("[server]\nport = 8080\n[publish]\ntitle = 'One'\n", encoding="utf-8")
    adjust = command_line(None, 9000, Role.WEB)
    assert adjust is not None
    running = adjust(config_mod.load(path))
    clock = FakeClock()
    from aggregator.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'a.db'}", clock.now())
    try:
        reloader = Reloader(path, running, store, clock, sync_store=False, adjust=adjust)
        path.write_text("[server]\nport = 8080\n[publish]\ntitle = 'Two'\n", encoding="utf-8")
        assert reloader.reload("test") is True
        assert reloader.state.needs_restart == ()
        assert reloader.settings.server.port == 9000
        assert reloader.settings.publish.title == "Two"
    finally:
        store.close()


async def test_changed_request_options_are_fetched_at_once(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A new user agent or referer (the usual fix for a source that answers 403) is a change like
    any other: the source is due now and is fetched with it."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    async with running_stack(path, clock, serve=False) as st:
        await st.tick()
        clock.advance(60)
        st.write(text + 'user_agent = "Mozilla/5.0 (reader)"\nreferer = "https://a.example/"\n')
        assert st.ops.reloader.check() is True
        assert fetched(await st.tick()) == {"a"}
        last = origin.requests[-1].headers
        assert (last["user-agent"], last["referer"]) == (
            "Mozilla/5.0 (reader)",
            "https://a.example/",
        )


def test_the_stored_digest_holds_no_secret() -> None:
    """What the database keeps of a source's request options are header names and the values of
    a few headers that are never secrets: a new cookie value or password changes nothing in it."""
    from aggregator.models import RequestOptions, Source
    from aggregator.store.sources import config_digest

    def with_request(cookie: str, password: str, ua: str = "R/1") -> Source:
        headers = (("User-Agent", ua), ("Cookie", f"sid={cookie}"), ("X-Token", cookie))
        request = RequestOptions(headers=headers, username="u", password=password)
        return Source(id="a", url="http://a.test/feed", request=request)

    assert config_digest(with_request("s-1", "p-1")) == config_digest(with_request("s-2", "p-2"))
    assert config_digest(with_request("s-1", "p-1")) != config_digest(
        with_request("s-1", "p-1", "R/2")
    )
    plain = Source(id="a", url="http://a.test/feed")
    assert config_digest(plain) != config_digest(with_request("s-1", "p-1"))
