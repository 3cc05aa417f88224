"""Child processes the benchmarks need: nginx with its own minimal config, a Python fallback
static origin, and helpers to wait for a port and read a process's peak memory.

nginx is run as a child process on a free port with a config written into a temporary
directory, never as the system service. It serves files with ETag and Last-Modified and answers
conditional requests with 304 by itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

NGINX_CONF = """\
{user}
worker_processes {workers};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ application/rss+xml rss.xml; application/atom+xml atom.xml atom; text/xml xml; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    etag on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )


class StaticServer:
    """Serves ``root`` on 127.0.0.1 with ETags and 304s: nginx when present, else Starlette."""

    def __init__(
        self, root: Path, tmp: Path, workers: str = "auto", prefer_nginx: bool = True
    ) -> None:
        self.root = root
        self.tmp = tmp
        self.port = free_port()
        self.workers = workers
        self.kind = "nginx" if prefer_nginx and nginx_path() else "python"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.tmp.mkdir(parents=True, exist_ok=True)
        if self.kind == "nginx":
            self.proc = self._start_nginx()
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "perf.pyorigin", str(self.root), str(self.port)],
                cwd=Path(__file__).resolve().parents[1],
            )
        wait_for_port(self.port, proc=self.proc)
        return self

    def _start_nginx(self) -> subprocess.Popen[bytes]:
        conf = self.tmp / "nginx.conf"
        user = "user root root;" if os.geteuid() == 0 else ""
        conf.write_text(
            NGINX_CONF.format(
                user=user, workers=self.workers, tmp=self.tmp, port=self.port, root=self.root
            )
        )
        binary = nginx_path()
        assert binary
        return subprocess.Popen(
            [binary, "-p", str(self.tmp), "-c", str(conf), "-e", str(self.tmp / "error.log")]
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
