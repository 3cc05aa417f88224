"""Several HTTP processes on one port (``[server] processes``), and the cached-feed check bound.

The process tests start the real daemon (``python run.py``) and talk to it over 127.0.0.1; the
FeedService tests use a real SQLite store and a fake clock.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from aggregator.config import loading as config
from aggregator.errors import ConfigError
from aggregator.publish.feeds import FeedService
from aggregator.runtime.reload import diff, restart_safe

from .conftest import REPO
from .feedworld import World, entry, make_world
from .origin import Origin, Reply

T = TypeVar("T")

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Origin</title><id>urn:origin</id>
<updated>2026-01-01T00:00:00Z</updated>
<entry><title>First post</title><id>urn:1</id><link href="http://example.com/1"/>
<updated>2026-01-01T00:00:00Z</updated><summary>One</summary></entry>
</feed>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(check: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """``check()``'s first true result, looking again until ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.05)  # real processes: there is no clock to fake across them
    raise AssertionError(f"timed out waiting for {what or check}")


def write_config(tmp: Path, origin: Origin, port: int, title: str = "Two processes") -> Path:
    url = origin.route("/a.atom", Reply(ATOM.encode(), content_type="application/atom+xml"))
    cfg = tmp / "aggregator.toml"
    cfg.write_text(
        "\n".join(
            [
                "[server]",
                'host = "127.0.0.1"',
                f"port = {port}",
                "processes = 2",
                "[storage]",
                f'url = "sqlite:///{tmp / "agg.db"}"',
                "[fetch]",
                "allow_private_networks = true",
                "per_host_delay = 0",
                "max_retries = 0",
                "[schedule]",
                'dispatch_every = "0.2s"',
                "[publish]",
                f'title = "{title}"',
                "[logging]",
                'level = "INFO"',
                "[[sources]]",
                'id = "a"',
                f'url = "{url}"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
def daemon(tmp_path: Path, origin: Origin) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    cfg = write_config(tmp_path, origin, port)
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run.py")],
        cwd=tmp_path,
        env={**os.environ, "AGGREGATOR_CONFIG": str(cfg)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc, f"http://127.0.0.1:{port}", cfg
    for pid in children(proc.pid):
        os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def children(pid: int) -> list[int]:
    """Live child processes of ``pid``, from /proc."""
    found = []
    for entry_ in Path("/proc").iterdir():
        if entry_.name.isdigit() and alive(int(entry_.name)) and ppid(int(entry_.name)) == pid:
            found.append(int(entry_.name))
    return found


def stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def ppid(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def answers(base: str) -> tuple[int, str]:
    """On one fresh connection: which process answered, and the feed it served."""
    with httpx.Client(base_url=base, timeout=5) as client:
        pid = int(client.get("/healthz").raise_for_status().text.split("pid=")[1])
        feed = client.get("/feeds/all.atom").raise_for_status()
        assert feed.headers["content-type"].startswith("application/atom+xml")
        return pid, feed.text


def serving_pids(base: str, want: str, timeout: float = 20.0) -> set[int]:
    """The processes answering the port, once two of them have served a feed containing ``want``
    (new connections until then: the kernel spreads connections over the processes' sockets)."""
    seen: set[int] = set()

    def two() -> set[int] | None:
        pid, feed = answers(base)
        if want in feed:
            seen.add(pid)
        return seen if len(seen) == 2 else None

    return poll(two, timeout, f"two processes serving {want!r}")


@pytest.mark.slow
def test_two_processes_serve_feeds_reload_and_stop_on_sigterm(
    daemon: tuple[subprocess.Popen[bytes], str, Path], tmp_path: Path
) -> None:
    """processes = 2: the daemon and one forked web process both serve feeds on the port; a
    reload (SIGHUP, passed on) reaches both; SIGTERM stops both, exit 0, no process left."""
    proc, base, cfg = daemon
    pids = serving_pids(base, "First post")
    assert proc.pid in pids
    (child,) = pids - {proc.pid}
    assert ppid(child) == proc.pid

    cfg.write_text(cfg.read_text().replace('title = "Two processes"', 'title = "Renamed"'))
    proc.send_signal(signal.SIGHUP)
    assert serving_pids(base, "Renamed") == pids

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not alive(child)
    log = (tmp_path / "daemon.log").read_text()
    assert f"event=web_process_stopped pid={child} code=0" in log
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/healthz", timeout=2)


@pytest.mark.slow
def test_web_processes_stop_when_the_daemon_is_killed(
    daemon: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    """A web process whose parent is SIGKILLed notices (its pipe from the parent closes) and
    stops by itself, so no orphan keeps serving the port."""
    proc, base, _ = daemon
    pids = serving_pids(base, "First post")
    (child,) = pids - {proc.pid}
    proc.kill()
    proc.wait()
    poll(lambda: not alive(child), 20, "the orphaned web process to stop")


@pytest.mark.slow
def test_a_killed_web_process_is_replaced(
    daemon: tuple[subprocess.Popen[bytes], str, Path], tmp_path: Path
) -> None:
    """A web process killed with SIGKILL is logged and replaced (after 1 s) by a new child of
    the daemon that serves feeds on the port; SIGTERM then stops everything, exit 0."""
    proc, base, _ = daemon
    child, new = kill_and_replace(proc, base, tmp_path / "daemon.log")
    log = (tmp_path / "daemon.log").read_text()
    assert f"event=web_process_exited pid={child} code=-9 restart_in=1s" in log
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not alive(new)


def kill_and_replace(proc: subprocess.Popen[bytes], base: str, log: Path) -> tuple[int, int]:
    """SIGKILL the daemon's web process; its pid and that of its replacement, once the
    replacement (a child of the daemon) serves feeds beside the daemon."""
    pids = serving_pids(base, "First post")
    (child,) = pids - {proc.pid}
    os.kill(child, signal.SIGKILL)

    def replaced() -> int | None:
        found = re.search(
            rf"event=web_process_restarted pid=(\d+) replacing={child}\b", log.read_text()
        )
        return int(found[1]) if found else None

    new = poll(replaced, 20, "a replacement web process")
    assert ppid(new) == proc.pid and new != child
    assert serving_pids(base, "First post") == {proc.pid, new}
    return child, new


@pytest.mark.slow
def test_a_replacement_stops_when_the_daemon_is_killed(
    daemon: tuple[subprocess.Popen[bytes], str, Path], tmp_path: Path
) -> None:
    """A replacement web process holds the daemon's pipe like a forked one: when the daemon
    is SIGKILLed it stops by itself."""
    proc, base, _ = daemon
    _, new = kill_and_replace(proc, base, tmp_path / "daemon.log")
    proc.kill()
    proc.wait()
    poll(lambda: not alive(new), 20, "the orphaned replacement to stop")


def test_processes_must_be_at_least_one() -> None:
    """server.processes below 1 is a config error naming the field."""
    with pytest.raises(ConfigError) as err:
        config.parse("[server]\nprocesses = 0\n")
    assert "processes" in str(err.value)
    assert config.parse("[server]\nprocesses = 3\n").server.processes == 3
    assert config.parse("").server.processes == 1


def rechecking(world: World, seconds: float) -> FeedService:
    return FeedService(
        world.settings, world.store, lambda: world.sources, world.clock, recheck_after=seconds
    )


def write_elsewhere(world: World, key: str) -> None:
    """A new entry stored without telling the FeedService (as another process would)."""
    world.apply("hn", [entry("hn", key, world.clock.now(), ("Tech", "News"))])


async def test_a_confirmed_feed_is_served_unchecked_for_recheck_after(tmp_path: Path) -> None:
    """With recheck_after, a write by another process shows once that much time passed since the
    document was confirmed, and not before (the store is not asked)."""
    world = make_world(tmp_path)
    world.add("hn")
    feeds = rechecking(world, 1.0)
    spec = feeds.all()
    first = await feeds.serve(spec, "atom")
    write_elsewhere(world, "late")
    world.clock.advance(0.9)
    assert await feeds.serve(spec, "atom") is first
    world.clock.advance(0.1)
    assert b"Title late" in (await feeds.serve(spec, "atom")).body


async def _served_once(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A one-source world whose all-feed was served once, rechecked only every 60 s."""
    world = make_world(tmp_path)
    world.add("hn")
    feeds = rechecking(world, 60.0)
    spec = feeds.all()
    await feeds.serve(spec, "atom")
    return world, feeds, spec


async def test_changed_shows_this_process_writes_at_once(tmp_path: Path) -> None:
    """``changed()`` (the daemon calls it after each dispatcher batch) makes the next serve
    confirm the document against the store."""
    world, feeds, spec = await _served_once(tmp_path)
    write_elsewhere(world, "mine")
    feeds.changed()
    assert b"Title mine" in (await feeds.serve(spec, "atom")).body


async def test_a_clock_set_back_does_not_keep_a_document_unchecked(tmp_path: Path) -> None:
    """A confirmation time in the future (the clock went back) does not count as recent."""
    world, feeds, spec = await _served_once(tmp_path)
    write_elsewhere(world, "after")
    world.clock.advance(-3600)
    assert b"Title after" in (await feeds.serve(spec, "atom")).body


def test_a_reload_cannot_change_the_number_of_processes() -> None:
    """server.processes is read at start: a reload reports it as needing a restart and keeps
    running with the old number."""
    running, edited = (
        config.parse("[server]\nprocesses = 2\n"),
        config.parse("[server]\nprocesses = 4\n"),
    )
    assert diff(running, edited).needs_restart == (
        "server.processes: running with 2, the file says 4",
    )
    assert restart_safe(running, edited).server.processes == 2


def test_replacements_back_off_while_they_keep_dying() -> None:
    """Web processes that die soon after their start are replaced after 1, 2, 4 … s, at most
    60 s; one that ran 30 s or more is replaced after 1 s again."""
    from aggregator.runtime.webprocs import WebProcesses

    now = time.monotonic()
    web = WebProcesses([], started={1: now, 2: now - 31})
    assert [web.restart_delay(1) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert web.restart_delay(2) == 1
    assert web.restart_delay(1) == 2
