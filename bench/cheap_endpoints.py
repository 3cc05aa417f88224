"""Cheap endpoints under load: /healthz on a new connection and /opml, while hundreds of
keep-alive connections ask for a mix of feeds. Prints the figures; asserts nothing.

    .venv/bin/python bench/cheap_endpoints.py                 # 100 sources, 500 connections, 10 s
    .venv/bin/python bench/cheap_endpoints.py --connections 200 --seconds 5 --sources 30
    .venv/bin/python bench/cheap_endpoints.py --repo /path/to/other/checkout   # the same, other code
    .venv/bin/python bench/cheap_endpoints.py --pg postgresql://postgres@127.0.0.1/test

Phases, each against the real daemon (``python run.py``, one process) over a store filled by
fetching ``--sources`` generated feeds from a local origin:
  mix    ``--connections`` keep-alive connections in a separate load process, each asking in
         turn for /feeds/all.atom, per-source and per-category feeds in the three formats (a
         few with a ``limit`` query, so some renderings miss the cache), while this process
         opens a new connection for /healthz every 0.2 s and times it;
  mix+   the same with /opml for one request in eleven (probed as above);
  opml   the same number of connections asking for /opml only: requests a second and the
         median and 99th percentile latency (and /healthz probed as above).

The load generator is a bare HTTP/1.1 client on asyncio streams (wrk is not needed), in its own
process so its CPU is not the daemon's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from perf import feedgen, servers

# --- the load process ----------------------------------------------------------------------------


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _connection(
    port: int, paths: list[str], until: float, seed: int, lat: list[float]
) -> int:
    rng = random.Random(seed)
    done = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            await _one(reader, writer, rng.choice(paths))
            lat.append(time.monotonic() - started)
            done += 1
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
    return done


async def _load(port: int, paths: list[str], connections: int, seconds: float) -> dict[str, Any]:
    until = time.monotonic() + seconds
    lat: list[float] = []
    started = time.monotonic()
    counts = await asyncio.gather(
        *(_connection(port, paths, until, i, lat) for i in range(connections))
    )
    elapsed = time.monotonic() - started
    lat.sort()
    return {
        "requests": sum(counts),
        "rps": sum(counts) / elapsed,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
        "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else None,
    }


def load_main(argv: list[str]) -> None:
    port, connections, seconds = int(argv[0]), int(argv[1]), float(argv[2])
    paths = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_load(port, paths, connections, seconds))))


# --- probes --------------------------------------------------------------------------------------


def probe(port: int, path: str, timeout: float = 60.0) -> float:
    """Seconds to connect, ask for ``path`` and read the whole answer on a new connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass
    return time.monotonic() - started


def during(
    port: int, paths: list[str], connections: int, seconds: float, probe_path: str | None
) -> tuple[dict[str, Any], list[float]]:
    """Run the load process; probe ``probe_path`` every 0.2 s meanwhile."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--load", str(port), str(connections), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(paths))
    proc.stdin.close()
    probes: list[float] = []
    time.sleep(min(1.0, seconds / 5))  # the connections are open and busy
    while proc.poll() is None and probe_path:
        try:
            probes.append(probe(port, probe_path))
        except OSError:
            probes.append(float("inf"))
        time.sleep(0.2)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait()
    return json.loads(out), probes


# --- set-up --------------------------------------------------------------------------------------


def write_config(path: Path, urls: list[str], store: str, port: int) -> None:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "[storage]",
        f'url = "{store}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "concurrency = 32",
        "per_host_concurrency = 32",
        "max_retries = 0",
        "[schedule]",
        'interval = "1d"',
        'max_interval = "1d"',
        'dispatch_every = "1s"',
        "[logging]",
        'level = "WARNING"',
    ]
    for i, url in enumerate(urls):
        lines += [
            "[[sources]]",
            f'id = "s{i:03d}"',
            f'url = "{url}"',
            f'category = "Bench / c{i % 10}"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def feed_paths(sources: int) -> list[str]:
    paths = []
    for fmt in ("atom", "rss", "json"):
        paths.append(f"/feeds/all.{fmt}")
        paths += [f"/feeds/source/s{i:03d}.{fmt}" for i in range(sources)]
        paths += [f"/feeds/category/Bench/c{i}.{fmt}" for i in range(10)]
        paths += [f"/feeds/all.{fmt}?limit={n}" for n in (5, 10, 15, 20, 25)]
    return paths


def wait_fetched(port: int, sources: int, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        done = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("aggregator_fetches_total{")
        )
        if done >= sources:
            return
        time.sleep(0.5)
    raise RuntimeError("the daemon did not fetch every source in time")


def figures(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no samples"
    values = sorted(values)
    return (
        f"{name}: n={len(values)} median={1000 * statistics.median(values):.0f} ms "
        f"p95={1000 * values[int(len(values) * 0.95)]:.0f} ms max={1000 * values[-1]:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repo", type=Path, default=BENCH.parent, help="the checkout to run")
    parser.add_argument(
        "--pg",
        metavar="URL",
        help="store in a new schema of this PostgreSQL database (dropped after)",
    )
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_, store_url(opts.pg, Path(tmp_)) as store:
        tmp = Path(tmp_)
        feedgen.write(tmp / "feeds", opts.sources, seed=7)
        with servers.StaticServer(tmp / "feeds", tmp / "origin") as origin:
            port = servers.free_port()
            urls = [f"{origin.base}/{s.name}" for s in feedgen.specs(opts.sources, 7)]
            cfg = tmp / "bench.toml"
            write_config(cfg, urls, store, port)
            log = (tmp / "daemon.log").open("wb")
            env = {**os.environ, "AGGREGATOR_CONFIG": str(cfg), "PYTHONPATH": str(opts.repo)}
            daemon = subprocess.Popen(
                [sys.executable, str(opts.repo / "run.py")],
                cwd=tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                servers.wait_for_port(port, 60, daemon)
                wait_fetched(port, opts.sources)
                report(port, opts)
            finally:
                daemon.terminate()
                daemon.wait(30)
                log.close()


@contextlib.contextmanager
def store_url(pg: str | None, tmp: Path) -> Iterator[str]:
    """A SQLite file in ``tmp``, or a fresh schema in the PostgreSQL database ``pg``."""
    if pg is None:
        yield f"sqlite:///{tmp / 'agg.db'}"
        return
    import psycopg

    name = f"bench_{os.getpid()}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{pg}{'&' if '?' in pg else '?'}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def report(port: int, opts: argparse.Namespace) -> None:
    idle = [probe(port, "/healthz") for _ in range(20)]
    print(
        f"code: {opts.repo}; {opts.sources} sources, {opts.connections} connections, "
        f"{opts.seconds:g} s per phase"
    )
    print(figures("/healthz, new connection, idle", idle))
    mix, health = during(port, feed_paths(opts.sources), opts.connections, opts.seconds, "/healthz")
    print(
        f"feed mix: {mix['rps']:.0f} req/s, median {mix['p50_ms']:.0f} ms, p99 {mix['p99_ms']:.0f} ms"
    )
    print(figures("/healthz, new connection, during the feed mix", health))
    paths = feed_paths(opts.sources)
    mixed, health = during(
        port, paths + ["/opml"] * (len(paths) // 10), opts.connections, opts.seconds, "/healthz"
    )
    print(
        f"feed mix with 10% /opml: {mixed['rps']:.0f} req/s, median {mixed['p50_ms']:.0f} ms, "
        f"p99 {mixed['p99_ms']:.0f} ms"
    )
    print(figures("/healthz, new connection, during the feed mix with /opml", health))
    opml, health = during(port, ["/opml"], opts.connections, opts.seconds, "/healthz")
    print(
        f"/opml only: {opml['rps']:.0f} req/s, median {opml['p50_ms']:.0f} ms, "
        f"p99 {opml['p99_ms']:.0f} ms"
    )
    print(figures("/healthz, new connection, during the /opml load", health))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        load_main(sys.argv[2:])
    else:
        main()
