"""The command line: init, run, check, add, fetch, sources, explain, export, import, build, db.

Every command reads the config through ``config.load`` (``--config`` or ``$AGGREGATOR_CONFIG``),
prints errors as readable lines (never a traceback for a user mistake) and returns an exit code:
0 all went well, 1 some sources (or the entry asked for) failed, 2 a usage or config error.
Global options (``--config``, ``--json``) are accepted before or after the subcommand; output is
fitted to a terminal's width, and full width when it goes to a pipe or a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..clock import SystemClock
from ..config import loading as config_mod
from ..config.settings import Settings
from ..config.types import parse_category
from ..errors import AggregatorError, ConfigError, UsageError
from ..http.report import COLUMNS, SourceRow
from ..models import FetchOutcome, FetchStatus
from . import db as dbtools

if TYPE_CHECKING:
    from ..sources.discover import Candidate, Feed

PLAIN_WIDTH = 4096  # "full width" for output that is not a terminal: nothing is cut


def _console(stderr: bool = False) -> Console:
    """A console fitted to the terminal; full width, no wrapping, when writing to a pipe or a
    file (unless $COLUMNS says otherwise)."""
    stream = sys.stderr if stderr else sys.stdout
    plain = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=PLAIN_WIDTH if plain else None, soft_wrap=plain)


console = _console()
err_console = _console(stderr=True)
CONFIG_HELP = "config file (default: $AGGREGATOR_CONFIG or config/aggregator.toml)"
JSON_HELP = "print the result as JSON on standard output (sources, fetch, check, explain, add)"


def _version() -> str:
    try:
        return version("aggregator")
    except PackageNotFoundError:  # pragma: no cover (running from a source tree)
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator", description="Collect feeds and other sources, clean them, republish them.",
        epilog="exit codes: 0 all ok; 1 some sources (or the entry asked for) failed; "
               "2 usage or config error",
    )
    parser.add_argument("--version", action="version", version=f"aggregator {_version()}")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    sub = parser.add_subparsers(dest="command")
    init = sub.add_parser("init", help="write a commented starter config (default: config/aggregator.toml)")
    init.add_argument("path", nargs="?", help="where to write it")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    run = sub.add_parser("run", help="run the daemon: scheduler and HTTP server")
    run.add_argument(
        "--role", choices=("all", "worker", "web"), default="all",
        help="all: both (default); worker: fetch only (HTTP: /metrics, /healthz, /readyz on "
             "--port or server.worker_port, if set); web: serve feeds only, read-only",
    )
    run.add_argument("--host", help="listen on this address (overrides server.host)")
    run.add_argument(
        "--port", type=_port,
        help="listen on this port (overrides server.port; with --role worker, server.worker_port)",
    )
    # A replacement web process (started by the daemon): its inherited listening socket and pipe.
    run.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    run.add_argument("--parent-fd", type=int, help=argparse.SUPPRESS)
    check = sub.add_parser("check", help="validate the config (exit 0 when valid)")
    check.add_argument("--source", help="also fetch this source once and show what would be stored")
    fetch = sub.add_parser("fetch", help="fetch every source once now, then exit")
    fetch.add_argument("--source", action="append", help="only this source (repeatable)")
    sub.add_parser("sources", help="a table of sources and their status")
    explain = sub.add_parser(
        "explain", help="why an entry has its categories, was merged, or was dropped"
    )
    explain.add_argument("entry", help="an entry id, key, link or canonical URL")
    export = sub.add_parser("export", help="export entries")
    export_sub = export.add_subparsers(dest="export_kind")
    hexo = export_sub.add_parser("hexo", help="write Hexo markdown posts")
    hexo.add_argument("--out", required=True, help="directory for the posts")
    hexo.add_argument("--source", action="append", help="only entries of this source (repeatable)")
    hexo.add_argument("--category", help="only entries under this category path (a / b)")
    hexo.add_argument("--limit", type=int, default=100000, help="at most this many posts")
    add_publish_parsers(sub, export_sub)
    add_add_parser(sub)
    dbtools.add_parser(sub)
    _global_options_everywhere(parser)
    return parser


def _global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--json`` after any subcommand too; a value given there wins, and one
    given only before the subcommand is kept (SUPPRESS: no default overwrites it)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                child.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
                child.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                                   help=JSON_HELP)
                _global_options_everywhere(child)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "init": cmd_init,
        "run": cmd_run,
        "db": cmd_db,
        "check": cmd_check,
        "fetch": cmd_fetch,
        "sources": cmd_sources,
        "explain": cmd_explain,
        "export": cmd_export,
        "import": cmd_import,
        "build": cmd_build,
        "add": cmd_add,
    }
    try:
        return handlers[command](args)
    except ConfigError as exc:
        if args.json:
            problems = [{"file": exc.path, "line": line, "problem": problem}
                        for problem, line in zip(exc.problems, exc.lines)]
            _print_json({"config": exc.path, "ok": False, "problems": problems})
        err_console.print(f"[red]config error[/red] in {exc.path}:", highlight=False)
        for problem, line in zip(exc.problems, exc.lines):
            where = f"{exc.path}:{line}" if line else exc.path
            err_console.print(f"  {where}: {problem}", highlight=False, markup=False)
        return 2
    except UsageError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False)
        return 2
    except AggregatorError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False)
        return 1
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace) -> tuple[Settings, Path]:
    path = config_mod.resolve_path(args.config)
    return config_mod.load(path), path


def cmd_run(args: argparse.Namespace) -> int:
    from ..runtime.daemon import command_line, run, run_web_child

    settings, path = _settings(args)
    role = getattr(args, "role", "all")
    adjust = command_line(getattr(args, "host", None), getattr(args, "port", None), role)
    if getattr(args, "listen_fd", None) is not None and args.parent_fd is not None:
        return run_web_child(settings, path, args.listen_fd, args.parent_fd, _loop_factory(), adjust)
    return run(settings, path, role=role, loop_factory=_loop_factory(), adjust=adjust)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (faster sockets for serving), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_db(args: argparse.Namespace) -> int:
    settings, _ = _settings(args)
    return dbtools.run(args, settings, console, err_console)


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def cmd_init(args: argparse.Namespace) -> int:
    """Write the packaged starter config to PATH (or --config, or the default path)."""
    target = Path(args.path or args.config or config_mod.DEFAULT_CONFIG)
    if target.exists() and not args.force:
        raise AggregatorError(f"{target} exists; use --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(config_mod.starter_config(), encoding="utf-8")
    console.print(f"wrote {target}: add your feeds as [[sources]] tables, then run "
                  f"`aggregator check --config {target}` and `aggregator run --config {target}`",
                  highlight=False, markup=False)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    settings, path = _settings(args)
    if not args.source:
        if args.json:
            _print_json({"config": str(path), "ok": True, "sources": len(settings.sources)})
        else:
            console.print(f"{path}: ok, {len(settings.sources)} sources", highlight=False)
        return 0
    from .commands import dry_run_result

    if not args.json:
        console.print(f"{path}: ok, {len(settings.sources)} sources", highlight=False)
    result = asyncio.run(dry_run_result(settings, args.source, console, quiet=args.json))
    if args.json:
        _print_json({"config": str(path), "ok": True, "sources": len(settings.sources),
                     "dry_run": result.as_json()})
    return result.code


def cmd_fetch(args: argparse.Namespace) -> int:
    from .commands import fetch_all

    settings, _ = _settings(args)
    wanted = set(args.source or [])
    sources = [s for s in settings.source_records() if not wanted or s.id in wanted]
    unknown = wanted - {s.id for s in sources}
    if unknown:
        raise UsageError(f"unknown source(s): {', '.join(sorted(unknown))}")
    with Progress(
        TextColumn("fetching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=err_console, transient=False,
        disable=not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("", total=len(sources))

        def step(outcome: FetchOutcome) -> None:
            progress.update(task, advance=1, description=outcome.source_id)

        outcomes = asyncio.run(fetch_all(settings, sources, step))
    failed = sum(o.status in (FetchStatus.ERROR, FetchStatus.GONE) for o in outcomes)
    added = sum(o.added for o in outcomes)
    if args.json:
        _print_json({"sources": len(outcomes), "added": added, "failed": failed,
                     "outcomes": [outcome_json(o) for o in sorted(outcomes, key=lambda o: o.source_id)]})
    else:
        console.print(outcome_table(outcomes))
        console.print(f"{len(outcomes)} sources, {added} new entries, {failed} failed", highlight=False)
    return 1 if failed else 0


def outcome_json(o: FetchOutcome) -> dict[str, object]:
    return {"source": o.source_id, "outcome": o.status.value, "added": o.added, "updated": o.updated,
            "merged": o.merged, "bytes": o.bytes, "seconds": round(o.elapsed, 3), "error": o.error,
            "next_fetch": o.next_fetch_at.isoformat() if o.next_fetch_at else None}


def outcome_table(outcomes: Sequence[FetchOutcome]) -> Table:
    """One row per fetch; the ``undated`` column (items whose date did not parse) only when some
    fetch had such items."""
    undated = any(o.undated for o in outcomes)
    names = ("source", "outcome", "new", "updated", *(("undated",) if undated else ()), "bytes",
             "seconds", "error")
    table = Table(*names)
    for o in sorted(outcomes, key=lambda o: o.source_id):
        style = "red" if o.status in (FetchStatus.ERROR, FetchStatus.GONE) else None
        table.add_row(
            o.source_id, o.status.value, str(o.added), str(o.updated),
            *((str(o.undated),) if undated else ()), str(o.bytes), f"{o.elapsed:.2f}",
            o.error or "", style=style,
        )
    return table


def cmd_sources(args: argparse.Namespace) -> int:
    from .commands import source_rows

    settings, _ = _settings(args)
    clock = SystemClock()
    rows = source_rows(settings, clock)
    if args.json:
        _print_json([row.as_json() for row in rows])
    else:
        console.print(sources_table(rows, clock.now(), console.width))
    return 0


def sources_table(rows: Sequence[SourceRow], now: datetime, width: int = 80) -> Table:
    """The status page's columns, one line per source, fitted to ``width`` terminal columns: the
    short columns keep their width (ids longer than 16 are cut) and the long ones (url, last
    error) share what is left, cut with an ellipsis."""
    cells = [row.cells(now) for row in rows]
    natural = [max([len(name)] + [len(c[i]) for c in cells]) for i, name in enumerate(COLUMNS)]
    elastic = [i for i, name in enumerate(COLUMNS) if name in ("url", "last error")]
    widths = {i: min(w, 16) if COLUMNS[i] == "id" else w for i, w in enumerate(natural) if i not in elastic}
    left = max(2 * 8, width - sum(widths.values()) - (len(COLUMNS) - 1))
    url, error = elastic
    widths[url] = max(8, min(natural[url], max(left * 2 // 5, left - natural[error])))
    widths[error] = max(8, min(natural[error], left - widths[url]))
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    for index, name in enumerate(COLUMNS):
        table.add_column(name, no_wrap=True, overflow="ellipsis", width=widths[index])
    for row, text in zip(rows, cells):
        table.add_row(*text, style="red" if row.failing else None)
    return table


def cmd_export(args: argparse.Namespace) -> int:
    if args.export_kind == "opml":
        return cmd_export_opml(args)
    if args.export_kind != "hexo":
        raise AggregatorError("say what to export: aggregator export hexo --out DIR, or export opml")
    from .commands import export_hexo

    settings, _ = _settings(args)
    category = parse_category(args.category) if args.category else None
    stats = export_hexo(settings, Path(args.out), args.source, category, args.limit)
    console.print(f"{stats.written} written, {stats.unchanged} unchanged, in {args.out}", highlight=False)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .commands import explain

    settings, _ = _settings(args)
    return explain(settings, args.entry, console, as_json=_print_json if args.json else None)


def add_publish_parsers(sub: Any, export_sub: Any) -> None:
    """``export opml``, ``import opml FILE`` and ``build --out DIR``."""
    opml = export_sub.add_parser("opml", help="write the sources as OPML (what GET /opml serves)")
    opml.add_argument("--out", help="file to write (default: standard output)")
    imp = sub.add_parser("import", help="import sources")
    imp_sub = imp.add_subparsers(dest="import_kind")
    imp_opml = imp_sub.add_parser("opml", help="add the feeds of an OPML file to the config file")
    imp_opml.add_argument("file", help="the OPML file")
    imp_opml.add_argument("--dry-run", action="store_true", help="report, change nothing")
    build = sub.add_parser("build", help="write every feed as static files")
    build.add_argument("--out", required=True,
                       help="directory to write into (feeds/…, opml.xml and index.html)")
    build.add_argument("--no-paging", action="store_true",
                       help="write each feed's first page only, without a next link "
                            "(default: older entries in page files FEED.page-2.FMT, … linked by next)")


def cmd_export_opml(args: argparse.Namespace) -> int:
    from .publishing import opml_of

    settings, _ = _settings(args)
    body = opml_of(settings)
    if args.out:
        Path(args.out).write_bytes(body)
        err_console.print(f"{len(settings.source_records())} sources written to {args.out}", highlight=False)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if args.import_kind != "opml":
        raise AggregatorError("say what to import: aggregator import opml FILE")
    from .publishing import import_opml

    settings, path = _settings(args)
    report = import_opml(settings, path, Path(args.file), dry_run=args.dry_run)
    for source_id, url in report.added:
        console.print(f"added    {source_id}  {url}", highlight=False, markup=False)
    for url, why in report.skipped:
        console.print(f"skipped  {url}  ({why})", highlight=False, markup=False)
    for note in report.notes:
        console.print(f"note     {note}", highlight=False, markup=False)
    verb = "would add" if args.dry_run else "added"
    where = "" if args.dry_run or not report.added else f" to {path}"
    console.print(f"{verb} {len(report.added)} sources{where}, skipped {len(report.skipped)}", highlight=False)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .publishing import build

    settings, _ = _settings(args)
    report = build(settings, Path(args.out), paging=not args.no_paging)
    for feed_id in report.skipped:
        err_console.print(f"skipped feed {feed_id!r}: its name cannot be a file name", highlight=False)
    console.print(f"{len(report.written)} files written, {len(report.unchanged)} unchanged, in {args.out}",
                  highlight=False)
    return 0


def add_add_parser(sub: Any) -> None:
    add = sub.add_parser(
        "add", help="add a feed, or the feed a web page links to, to the config file",
        description="Add a source by its address: a feed URL, or a page whose feeds are found from "
                    "its <link rel=\"alternate\"> (else /feed, /rss, /atom.xml, … of its site). The "
                    "feed is fetched and checked before the [[sources]] table is written.")
    add.add_argument("url", help="a feed URL or a web page URL")
    add.add_argument("--id", dest="source_id", help="the source id (default: from the feed's title or host)")
    add.add_argument("--category", help="category path, e.g. 'Tech / Blogs'")
    add.add_argument("--title", help="the source's title (default: the feed's own)")
    pick = add.add_mutually_exclusive_group()
    pick.add_argument("--choose", type=int, metavar="N", help="when the page offers several feeds, take the Nth")
    pick.add_argument("--yes", "-y", action="store_true", help="when the page offers several feeds, take the first")


def cmd_add(args: argparse.Namespace) -> int:
    """``aggregator add URL``: 0 added, 1 not added (no feed, a fetch failed, already
    configured), 2 several feeds and no way to ask which."""
    from ..sources import discover

    settings, path = _settings(args)
    try:
        existing = discover.configured(settings, args.url)
        if existing is not None:
            raise AggregatorError(f"{args.url} is already configured (source {existing!r})")
        return asyncio.run(_add(args, settings, path))
    except AggregatorError as exc:
        if args.json and not isinstance(exc, ConfigError):
            _print_json({"ok": False, "error": str(exc)})
        raise


async def _add(args: argparse.Namespace, settings: Settings, path: Path) -> int:
    from ..fetch.client import Fetcher
    from ..sources import discover

    async with Fetcher(settings.fetch, SystemClock()) as fetcher:
        found = await discover.discover(fetcher.fetch, args.url)
        feed: Feed | None = found.feed
        if feed is None:
            chosen = _choose(args, found.candidates)
            if chosen is None:
                return 2
            feed = chosen.feed or await discover.check(fetcher.fetch, chosen.url)
    text = path.read_text(encoding="utf-8")
    added = discover.add_source(settings, text, feed, source_id=args.source_id, title=args.title,
                                category=args.category)
    discover.write_config(path, added.text)
    if args.json:
        _print_json({"ok": True, "id": added.source_id, "url": feed.url, "title": feed.title,
                     "entries": feed.entries, "config": str(path),
                     "candidates": [c.as_json() for c in found.candidates]})
    else:
        console.print(f"checked  {feed.url}: {feed.title or '(untitled)'}, {feed.entries} entries",
                      highlight=False, markup=False)
        console.print(f"added    {added.source_id} to {path}", highlight=False, markup=False)
    return 0


def _choose(args: argparse.Namespace, candidates: Sequence[Candidate]) -> Candidate | None:
    """The feed to add: the only one, ``--choose N``, ``--yes`` (the first), or the
    answer to a prompt on a terminal; None when there are several and no way to ask."""
    from ..sources.discover import numbered

    if len(candidates) == 1 or args.yes:
        return candidates[0]
    if args.choose is not None:
        index: int = args.choose
        if not 1 <= index <= len(candidates):
            raise UsageError(f"--choose {index}: the page offers feeds 1 to {len(candidates)}")
        return candidates[index - 1]
    interactive = sys.stdin.isatty() and not args.json
    out = console if interactive else err_console
    out.print(f"{len(candidates)} feeds found:", highlight=False)
    for line in numbered(candidates):
        out.print(line, highlight=False, markup=False)
    if not interactive:
        if args.json:
            _print_json({"ok": False, "error": "several feeds found: choose one with --choose N",
                         "candidates": [c.as_json() for c in candidates]})
        err_console.print("choose one with --choose N (or --yes for the first)", highlight=False)
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
        console.print(f"a number from 1 to {count}, please", highlight=False)


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
