"""Extra HTTP processes of one daemon (``[server] processes = N``): N - 1 forked web processes on
the daemon's port, so serving uses more than one CPU.

Owns: binding the listening sockets before anything else starts (one per process with
``SO_REUSEPORT`` on Linux, so the kernel spreads connections evenly; elsewhere one socket shared
by all), forking the children before the parent starts its event loop (a child gets the
validated settings as they are, no second parse and no event loop to inherit), the pipe by which a
child notices that its parent is gone (its read end sees end-of-file when the parent exits,
even by SIGKILL), forwarding signals, reaping, and replacing a web process that died.

A replacement is not forked: by then the parent runs an event loop, threads and database
connections, none of which a fork may copy safely. It is a fresh interpreter (``posix_spawn``)
running ``aggregator run --role web`` with two inherited descriptors: a new listening socket on
the port (``SO_REUSEPORT``; the shared socket where the kernel does not balance those) and the
read end of a new parent pipe. Replacements wait 1 s after a death, doubling to 60 s while
replacements keep dying within 30 s of their start. Does not own: what a process does once it
runs (``daemon.serve``), or when to look for deaths (the daemon's loop).
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
from pathlib import Path

from ..errors import AggregatorError

log = logging.getLogger("aggregator.webprocs")

STOP_TIMEOUT = 15.0  # seconds a web process gets to finish after SIGTERM before SIGKILL
RESTART_FIRST = 1.0  # seconds before the first replacement of a dead web process
RESTART_MAX = 60.0  # the longest wait between replacements
STABLE_AFTER = 30.0  # a process that ran this long was healthy: the wait starts again at FIRST
# The interpreter's body of a replacement: the command line, then its listening and parent fds.
_ENTRY = "import sys; from aggregator.cli.main import main; sys.exit(main())"

# A forked child's body: its listening socket and the read end of the parent pipe -> exit code.
Child = Callable[[socket.socket, int], int]


@dataclass
class WebProcesses:
    """The forked web processes, seen from the parent."""

    pids: list[int]
    _lifeline: int | None = None  # write end of the parent pipe; never written, closed at exit
    codes: dict[int, int] = field(default_factory=dict)  # pid -> exit code, once reaped
    # How to start a replacement: the CLI arguments of ``aggregator`` for a web process on the
    # same config, host and port (fds appended), and the parent's own listening socket.
    respawn: tuple[list[str], socket.socket] | None = None
    started: dict[int, float] = field(default_factory=dict)  # pid -> monotonic start time
    delay: float = RESTART_FIRST  # wait before the next replacement
    _lifelines: list[int] = field(default_factory=list)  # write ends of replacements' pipes

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

    def restart_delay(self, pid: int) -> float:
        """Seconds to wait before replacing ``pid``, which just exited: RESTART_FIRST after a
        process that ran STABLE_AFTER seconds or more, else twice the last wait (at most
        RESTART_MAX)."""
        if time.monotonic() - self.started.get(pid, -STABLE_AFTER) >= STABLE_AFTER:
            self.delay = RESTART_FIRST
        wait, self.delay = self.delay, min(RESTART_MAX, self.delay * 2)
        return wait

    def replace(self, dead: int) -> int:
        """Start a fresh web process in place of ``dead`` (reaped); its pid. The dead one's exit
        code is forgotten: the exit code of the daemon is about the processes it stops."""
        if self.respawn is None:
            raise AggregatorError("no command line to start a web process with")
        args, own = self.respawn
        sock = another_listener(own)
        readable, lifeline = os.pipe()
        try:
            fds = (sock.fileno(), readable)
            for fd in fds:
                os.set_inheritable(fd, True)
            argv = [
                sys.executable,
                "-c",
                _ENTRY,
                *args,
                "--listen-fd",
                str(fds[0]),
                "--parent-fd",
                str(fds[1]),
            ]
            pid = os.posix_spawn(sys.executable, argv, _child_env())
        except OSError:
            os.close(lifeline)
            raise
        finally:
            os.close(readable)
            if sock is not own:
                sock.close()
            else:  # the shared socket stays ours: no later child process of ours inherits it
                os.set_inheritable(own.fileno(), False)
        self._lifelines.append(lifeline)
        self.pids = [p for p in self.pids if p != dead] + [pid]
        self.codes.pop(dead, None)
        self.started[pid] = time.monotonic()
        return pid

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
        for fd in self._lifelines:
            os.close(fd)
        self._lifelines.clear()
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
    now = time.monotonic()
    return socks[0], WebProcesses(pids, lifeline, started={pid: now for pid in pids})


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


def another_listener(own: socket.socket) -> socket.socket:
    """A socket for one more process on ``own``'s port: a new bound ``SO_REUSEPORT`` socket
    where the kernel balances those (Linux), else ``own`` itself, which they all share."""
    if not _balancing_reuseport():
        return own
    sock = socket.socket(own.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(own.getsockname()[:2])
    except OSError:
        sock.close()
        raise
    return sock


def _child_env() -> dict[str, str]:
    """This environment, with this package importable whatever the working directory."""
    here = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


def _balancing_reuseport() -> bool:
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
