"""Extra HTTP processes of one daemon (``[server] processes = N``): N - 1 forked web processes on
the daemon's port, so serving uses more than one CPU.

Owns: binding the listening sockets before anything else starts (one per process with
``SO_REUSEPORT`` on Linux, so the kernel spreads connections evenly; elsewhere one socket shared
by all), forking the children before the parent starts its event loop (a child gets the
validated settings as they are, no second parse and no event loop to inherit), the pipe by which a
child notices that its parent is gone (its read end sees end-of-file when the parent exits,
even by SIGKILL), forwarding signals, and reaping. Does not own: what a process does once it
runs (``daemon.serve``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import AggregatorError

log = logging.getLogger("aggregator.webprocs")

STOP_TIMEOUT = 15.0  # seconds a web process gets to finish after SIGTERM before SIGKILL

# A forked child's body: its listening socket and the read end of the parent pipe -> exit code.
Child = Callable[[socket.socket, int], int]


@dataclass
class WebProcesses:
    """The forked web processes, seen from the parent."""

    pids: list[int]
    _lifeline: int | None = None  # write end of the parent pipe; never written, closed at exit
    codes: dict[int, int] = field(default_factory=dict)  # pid -> exit code, once reaped

    @property
    def running(self) -> list[int]:
        return [pid for pid in self.pids if pid not in self.codes]

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to every web process not yet reaped (an unreaped pid is never reused)."""
        for pid in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def poll(self) -> list[tuple[int, int]]:
        """Reap the web processes that exited since the last look: (pid, exit code) each."""
        done = []
        for pid in self.running:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: nothing to report
                got, status = pid, 0
            if got == pid:
                self.codes[pid] = os.waitstatus_to_exitcode(status)
                done.append((pid, self.codes[pid]))
        return done

    def wait(self, timeout: float = STOP_TIMEOUT) -> dict[int, int]:
        """Wait until every web process exited (SIGKILL after ``timeout`` seconds); their exit
        codes. Blocking: call it off the event loop or after it stopped."""
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            self.poll()
            if self.running:
                time.sleep(0.02)  # real child processes: nothing to fake
        if self.running:
            log.warning("web processes did not stop in %.0f s, killing %s", timeout, self.running)
            self.signal(signal.SIGKILL)
            for pid in self.running:
                _, status = os.waitpid(pid, 0)
                self.codes[pid] = os.waitstatus_to_exitcode(status)
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        return dict(self.codes)


def fork(host: str, port: int, processes: int, child: Child) -> tuple[socket.socket, WebProcesses]:
    """Bind the listening sockets for ``processes`` HTTP processes and fork all but one, each
    running ``child(socket, parent_pipe_fd)`` and exiting with its result (never returning here).
    Return the parent's socket and the children. Call before any event loop, thread or database
    connection exists in this process."""
    socks = listeners(host, port, processes)
    readable, lifeline = os.pipe()
    pids = []
    for k in range(1, processes):
        mine = socks[k] if len(socks) > 1 else socks[0]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(lifeline)
            for s in socks:
                if s is not mine:
                    s.close()
            os._exit(_run_child(child, mine, readable))
        pids.append(pid)
    os.close(readable)
    for s in socks[1:]:
        s.close()  # the child's now: a reuse-port socket no one accepts on would strand connections
    return socks[0], WebProcesses(pids, lifeline)


def _run_child(child: Child, sock: socket.socket, parent: int) -> int:
    code = 1
    try:
        code = child(sock, parent)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001  # the child must never return into the parent's code
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def listeners(host: str, port: int, processes: int) -> list[socket.socket]:
    """Bound (not yet listening) TCP sockets: one per process, all on one port, where the
    kernel balances ``SO_REUSEPORT`` listeners (Linux); else one for all to share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    count = processes if _balancing_reuseport() else 1
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, socks[0].getsockname()[1] if len(socks) > 1 else port))
    except OSError as exc:
        for sock in socks:
            sock.close()
        raise AggregatorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return socks


def _balancing_reuseport() -> bool:
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
