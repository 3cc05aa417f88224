"""The daemon's start and stop as an operator sees them: a busy port is one clear line before
anything claims to have started; SIGTERM in the middle of a fetch round stops quietly."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from pathlib import Path

import pytest

from aggregator.clock import FakeClock
from aggregator.runtime.scheduler import Dispatcher, Scheduler
from aggregator.store import SQLStore

from .origin import Origin, Reply
from .test_e2e import Daemon, free_port
from .test_ops_e2e import config
from .test_reload import atom


@pytest.mark.slow
def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    """Another process on the port: exit 2 with one line naming the address, no traceback and
    no `started` event before it."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        path = tmp_path / "aggregator.toml"
        path.write_text(
            config(tmp_path, port, {}).replace('format = "json"', 'format = "kv"'), encoding="utf-8"
        )
        daemon = Daemon(path, port)
        code = daemon.proc.wait(timeout=30)
        out = daemon.output()
    assert code == 2, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    assert "started" not in out and "Traceback" not in out


@pytest.mark.slow
def test_sigterm_during_a_round_stops_quietly(tmp_path: Path, origin: Origin) -> None:
    """SIGTERM while a fetch is in flight: exit 0 within a few seconds, a `stopped` event, and no
    traceback (no CancelledError) in the output."""
    body = atom("slow", ["One"]) + b" " * 12 * 1024  # about 3 s to arrive
    url = origin.route("/slow", Reply(body, content_type="application/atom+xml", chunk_delay=0.25))
    port = free_port()
    path = tmp_path / "aggregator.toml"
    path.write_text(
        config(tmp_path, port, {"slow": url}) + "[content]\nprocesses = 1\n", encoding="utf-8"
    )
    daemon = Daemon(path, port)
    daemon.wait_for(lambda: origin.hits("/slow"))
    time.sleep(0.5)  # the body is arriving, slowly (a real subprocess: no clock to fake)
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(timeout=30)
    took = time.monotonic() - started
    out = daemon.output()
    assert code == 0, out
    assert "Traceback" not in out and "CancelledError" not in out, out
    assert '"event": "stopped"' in out
    assert took < 8, (took, out)  # the fetch in flight finishes (3 s at most), then the stop


async def test_a_tick_cancelled_at_shutdown_ends_quietly(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A dispatcher tick in progress when the scheduler shuts down (APScheduler cancels it) ends
    without an error or a traceback in the log."""
    store = SQLStore(f"sqlite:///{tmp_path / 's.db'}", clock.now())
    dispatcher = Dispatcher(store, None, dict, clock, "w", 10, 60)  # type: ignore[arg-type]
    scheduler = Scheduler(dispatcher, 3600)
    try:
        async with dispatcher._lock:  # a tick now waits here, as one would on a slow claim
            tick = asyncio.create_task(scheduler.tick())
            await asyncio.sleep(0.05)
            tick.cancel()
            assert await tick is None
    finally:
        store.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
