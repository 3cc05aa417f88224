"""``aggregator run`` (the daemon, in any role) and ``aggregator init`` (a starter config).

Owns: turning the command line into the daemon's arguments and picking the event loop. Does not
own: the daemon itself (``runtime/``) or the starter config's text (``config/``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from ..config import loading as config_mod
from ..errors import AggregatorError
from . import output
from .common import load_settings


def cmd_run(args: argparse.Namespace) -> int:
    from ..runtime.daemon import command_line, run, run_web_child
    from ..runtime.roles import Role

    settings, path = load_settings(args)
    role = Role(getattr(args, "role", Role.ALL))
    adjust = command_line(getattr(args, "host", None), getattr(args, "port", None), role)
    if getattr(args, "listen_fd", None) is not None and args.parent_fd is not None:
        return run_web_child(
            settings, path, args.listen_fd, args.parent_fd, _loop_factory(), adjust
        )
    return run(settings, path, role=role, loop_factory=_loop_factory(), adjust=adjust)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (faster sockets for serving), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_init(args: argparse.Namespace) -> int:
    """Write the packaged starter config to PATH (or --config, or the default path)."""
    target = Path(args.path or args.config or config_mod.DEFAULT_CONFIG)
    if target.exists() and not args.force:
        raise AggregatorError(f"{target} exists; use --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(config_mod.starter_config(), encoding="utf-8")
    output.console.print(
        f"wrote {target}: add your feeds as [[sources]] tables, then run "
        f"`aggregator check --config {target}` and `aggregator run --config {target}`",
        highlight=False,
        markup=False,
    )
    return 0
