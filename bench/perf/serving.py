"""Serving and memory measurements: the real daemon as a child process, wrk (or a small httpx
load generator when wrk is missing), and nginx serving the same bytes as a static file."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .servers import free_port, peak_rss_mb, wait_for_port

REPO = Path(__file__).resolve().parents[2]


def write_config(
    path: Path,
    urls: list[str],
    db: Path,
    port: int,
    interval: str = "1d",
    extra: str = "",
    processes: int = 1,
) -> Path:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"processes = {processes}",
        "[storage]",
        f'url = "sqlite:///{db}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "concurrency = 32",
        "per_host_concurrency = 32",
        "max_retries = 0",
        "[schedule]",
        f'interval = "{interval}"',
        f'max_interval = "{interval}"',
        'dispatch_every = "1s"',
        "[logging]",
        'level = "WARNING"',
        extra,
    ]
    for i, url in enumerate(urls):
        lines += [
            "[[sources]]",
            f'id = "s{i:05d}"',
            f'url = "{url}"',
            f'category = "Bench / c{i % 20}"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Daemon:
    """``python run.py`` with a config file, as an operator would start it."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = log.open("wb")
        env = {**os.environ, "AGGREGATOR_CONFIG": str(config), "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "run.py")],
            cwd=config.parent,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def start(self, timeout: float = 120, processes: int = 1, warm: str | None = None) -> Daemon:
        """Wait until all ``processes`` HTTP processes answer (each names its pid in /healthz;
        new connections until every one was seen), so a load run does not begin on the first
        process alone while the others are still starting; ``warm``: a path each process
        answers once first (on the connection that found it), so every process has it cached."""
        wait_for_port(self.port, timeout, self.proc)
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while len(seen) < processes:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"only {len(seen)} of {processes} processes answered")
            try:
                with httpx.Client(base_url=self.base, timeout=120) as client:
                    pid = client.get("/healthz").text.strip()
                    if pid not in seen and warm:
                        client.get(warm).raise_for_status()
                    seen.add(pid)
            except httpx.HTTPError:
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def peak_rss_mb(self) -> float:
        """The daemon's peak RSS plus that of every process it started (web processes, parser
        workers): a sum of peaks, so at least the most it held at once."""
        return sum(self.peak_rss_by_process().values())

    def peak_rss_by_process(self) -> dict[str, float]:
        """Peak RSS (MB) of the daemon and of each of its child processes, by a short name."""
        out = {"daemon": peak_rss_mb(self.proc.pid)}
        for pid in children(self.proc.pid):
            out[f"{_kind(pid)} {pid}"] = peak_rss_mb(pid)
        return out


def _kind(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "resource_tracker" in cmd:
        return "resource-tracker"
    return "parser-worker" if "multiprocessing" in cmd else "web"


def children(pid: int) -> list[int]:
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in listed.split()]


def load(url: str, connections: int, seconds: float) -> dict[str, Any]:
    """Requests per second and p99 latency (ms) for ``url``: wrk --latency, else httpx."""
    if shutil.which("wrk"):
        return _wrk(url, connections, seconds)
    return asyncio.run(_httpx_load(url, connections, seconds))


def _wrk(url: str, connections: int, seconds: float) -> dict[str, Any]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
        "tool": "wrk",
        "non2xx": int(errors.group(1)) if errors else 0,
    }


async def _httpx_load(url: str, connections: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                (await client.get(url)).raise_for_status()
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else None
    return {"rps": len(latencies) / elapsed, "p99_ms": p99, "tool": "httpx", "non2xx": 0}


def port() -> int:
    return free_port()
