"""``aggregator add URL``: add a feed, or the feed a web page links to, to the config file.

Owns: the command's exit codes, choosing among several feeds a page offers (``--choose N``,
``--yes``, or a prompt on a terminal) and what is printed. Does not own: finding and checking
feeds or writing the ``[[sources]]`` table (``sources/discover.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from ..clock import SystemClock
from ..config.loading import write_config
from ..config.settings import Settings
from ..errors import AggregatorError, ConfigError, UsageError
from ..fetch import Fetcher
from ..sources import discover
from ..sources.discover import Candidate, Feed
from . import output
from .common import load_settings


def cmd_add(args: argparse.Namespace) -> int:
    """``aggregator add URL``: 0 added, 1 not added (no feed, a fetch failed, already
    configured), 2 several feeds and no way to ask which."""
    settings, path = load_settings(args)
    try:
        existing = discover.configured(settings, args.url)
        if existing is not None:
            raise AggregatorError(f"{args.url} is already configured (source {existing!r})")
        return asyncio.run(_add(args, settings, path))
    except AggregatorError as exc:
        if args.json and not isinstance(exc, ConfigError):
            output.print_json({"ok": False, "error": str(exc)})
        raise


async def _add(args: argparse.Namespace, settings: Settings, path: Path) -> int:
    async with Fetcher(settings.fetch, SystemClock()) as fetcher:
        found = await discover.discover(fetcher.fetch, args.url)
        feed: Feed | None = found.feed
        if feed is None:
            chosen = _choose(args, found.candidates)
            if chosen is None:
                return 2
            feed = chosen.feed or await discover.check(fetcher.fetch, chosen.url)
    text = path.read_text(encoding="utf-8")
    added = discover.add_source(
        settings, text, feed, source_id=args.source_id, title=args.title, category=args.category
    )
    write_config(path, added.text)  # atomically: a running daemon reloads it
    if args.json:
        output.print_json(
            {
                "ok": True,
                "id": added.source_id,
                "url": feed.url,
                "title": feed.title,
                "entries": feed.entries,
                "config": str(path),
                "candidates": [c.as_json() for c in found.candidates],
            }
        )
    else:
        output.console.print(
            f"checked  {feed.url}: {feed.title or '(untitled)'}, {feed.entries} entries",
            highlight=False,
            markup=False,
        )
        output.console.print(f"added    {added.source_id} to {path}", highlight=False, markup=False)
    return 0


def _choose(args: argparse.Namespace, candidates: Sequence[Candidate]) -> Candidate | None:
    """The feed to add: the only one, ``--choose N``, ``--yes`` (the first), or the
    answer to a prompt on a terminal; None when there are several and no way to ask."""
    if len(candidates) == 1 or args.yes:
        return candidates[0]
    if args.choose is not None:
        index: int = args.choose
        if not 1 <= index <= len(candidates):
            raise UsageError(f"--choose {index}: the page offers feeds 1 to {len(candidates)}")
        return candidates[index - 1]
    interactive = sys.stdin.isatty() and not args.json
    out = output.console if interactive else output.err_console
    out.print(f"{len(candidates)} feeds found:", highlight=False)
    for line in discover.numbered(candidates):
        out.print(line, highlight=False, markup=False)
    if not interactive:
        if args.json:
            output.print_json(
                {
                    "ok": False,
                    "error": "several feeds found: choose one with --choose N",
                    "candidates": [c.as_json() for c in candidates],
                }
            )
        output.err_console.print(
            "choose one with --choose N (or --yes for the first)", highlight=False
        )
        return None
    return candidates[_ask(len(candidates)) - 1]


def _ask(count: int) -> int:
    while True:
        try:
            answer = input(f"Which one? [1-{count}]: ").strip()
        except EOFError:
            raise UsageError("no feed chosen") from None
        if answer.isdigit() and 1 <= int(answer) <= count:
            return int(answer)
        output.console.print(f"a number from 1 to {count}, please", highlight=False)
