"""ASGI servers side by side: the daemon's app (feeds, /opml, health checks) over the serving
part's store, one process each, served by uvicorn (as the daemon runs it: ``daemon.server_config``)
and by granian (its embedded ASGI server on the same event loop), beside nginx with one worker
serving the same bytes as a file. Prints a line per round; asserts nothing.

    .venv/bin/pip install -e ".[bench]"                 # granian (not a dependency of the daemon)
    .venv/bin/python bench/run.py --only serve          # first: the store and the static copy
    .venv/bin/python bench/serve_servers.py --rounds 3  # wrk -t2 -c64 -d10s /feeds/all.atom

Why: to decide with figures whether another maintained server, through its public interface,
serves a cached feed faster than uvicorn (docs/performance.md has the answer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(BENCH), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

SERVERS = ("uvicorn", "granian")


async def _serve(kind: str, config: Path, port: int) -> None:
    """The child: the app over ``config``'s store, served by ``kind`` on ``port``."""
    from aggregator.clock import SystemClock
    from aggregator.config.loading import load
    from aggregator.http.app import create_app
    from aggregator.publish.feeds import FeedService
    from aggregator.publish.opmlcache import OpmlDocument
    from aggregator.runtime.daemon import RECHECK_AFTER, LiveSources, server_config
    from aggregator.store import open_store

    settings = load(config)
    clock = SystemClock()
    store = open_store(settings.storage.url, clock.now(), settings.storage)
    feeds = FeedService(
        settings, store, LiveSources(settings).get, clock, recheck_after=RECHECK_AFTER
    )
    app = create_app(feeds, opml=OpmlDocument(feeds))
    if kind == "uvicorn":
        import uvicorn

        await uvicorn.Server(server_config(app, settings.server, port)).serve()
        return
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server

    limits = HTTP1Settings(
        header_read_timeout=int(settings.server.header_timeout * 1000),
        max_buffer_size=settings.server.max_header_bytes,
    )
    await Server(
        app,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        log_level=LogLevels.warning,
        backlog=2048,
        http1_settings=limits,
    ).serve()


def _child(kind: str, config: Path, port: int) -> None:
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(kind, config, port))


def _one_process(serve_toml: Path, port: int, out: Path) -> Path:
    """The serving part's config, on ``port``, with one HTTP process."""
    text = serve_toml.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^port = \d+", f"port = {port}", text)
    text = re.sub(r"(?m)^processes = \d+", "processes = 1", text)
    out.write_text(text, encoding="utf-8")
    return out


def measure(kind: str, work: Path, seconds: float) -> dict[str, Any]:
    import httpx
    from perf import servers, serving

    port = serving.port()
    config = _one_process(work / "serve.toml", port, work / f"side-{kind}.toml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO)])}
    with open(work / f"side-{kind}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", kind, str(config), str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            servers.wait_for_port(port, 120, proc)
            url = f"http://127.0.0.1:{port}/feeds/all.atom"
            httpx.get(url, timeout=60).raise_for_status()  # rendered and cached before the run
            return serving.load(url, 64, seconds)
        finally:
            proc.terminate()
            proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "aggregator-bench" / "run-1000",
        help="the serving part's directory (serve.toml, static/all.atom)",
    )
    ap.add_argument(
        "--child", nargs=3, metavar=("SERVER", "CONFIG", "PORT"), help=argparse.SUPPRESS
    )
    opts = ap.parse_args(argv)
    if opts.child:
        _child(opts.child[0], Path(opts.child[1]), int(opts.child[2]))
        return 0
    from perf import servers, serving

    for k in range(opts.rounds):
        row = {kind: measure(kind, opts.workdir, opts.duration) for kind in SERVERS}
        with servers.StaticServer(
            opts.workdir / "static", opts.workdir / "nginx-side", workers="1"
        ) as ngx:
            row["nginx"] = serving.load(f"{ngx.base}/all.atom", 64, opts.duration)
        print(
            f"round {k + 1}: "
            + "; ".join(
                f"{name} {r['rps']:,.0f} req/s ({r['rps'] / row['nginx']['rps']:.2f}x nginx), "
                f"p99 {r['p99_ms']:.1f} ms"
                for name, r in row.items()
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
