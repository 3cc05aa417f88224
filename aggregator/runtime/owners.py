"""Who holds a lease: this process's owner id, and whether the process an owner id names is gone.

An owner id is ``host:pid:start``, the start being the process's start time (clock ticks since
boot, from Linux's ``/proc``; 0 where that is not available). The start time tells a process
that crashed from a new one that was given its pid (in a container, a restarted daemon is pid 1
again). Only this host's owners can be judged; another host's are never called gone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def owner_id() -> str:
    """This process's owner id for claims and leases."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid) or 0}"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None when it does not exist or
    the system does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5); fields[0] is field 3


def is_gone(owner: str) -> bool:
    """True when ``owner`` names a process of this host that no longer runs: its pid is not
    running, or is running with another start time (reused by a later process)."""
    parts = owner.split(":")
    if len(parts) not in (2, 3) or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if not _running(pid):
        return True
    if len(parts) == 2 or parts[2] == "0":  # no start time to compare
        return False
    started = process_start(pid)
    return started is not None and started != parts[2]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running, as another user
        return True
    return True
