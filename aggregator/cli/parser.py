"""The command line's argument tree and dispatch: init, run, check, add, fetch, sources, explain,
export, import, build, db.

Owns: every subcommand and option, the exit codes and how errors are printed (never a traceback
for a user mistake): 0 all went well, 1 some sources (or the entry asked for) failed, 2 a usage or
config error. Global options (``--config``, ``--json``) are accepted before or after the
subcommand. Does not own: what a command does or prints; each command group has its module
(``run``, ``sources``, ``add``, ``publish``, ``db``), imported only when one of its commands runs,
so ``aggregator --help`` loads argparse and little else.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..errors import AggregatorError, ConfigError, UsageError

CONFIG_HELP = "config file (default: $AGGREGATOR_CONFIG or config/aggregator.toml)"
JSON_HELP = "print the result as JSON on standard output (sources, fetch, check, explain, add)"

# command -> (module of its group, handler); a handler takes the parsed arguments, returns the code
HANDLERS: dict[str, tuple[str, str]] = {
    "init": ("run", "cmd_init"),
    "run": ("run", "cmd_run"),
    "check": ("sources", "cmd_check"),
    "fetch": ("sources", "cmd_fetch"),
    "sources": ("sources", "cmd_sources"),
    "explain": ("explain", "cmd_explain"),
    "add": ("add", "cmd_add"),
    "export": ("publish", "cmd_export"),
    "import": ("publish", "cmd_import"),
    "build": ("publish", "cmd_build"),
    "db": ("db", "cmd_db"),
}


def _version() -> str:
    try:
        return version("aggregator")
    except PackageNotFoundError:  # pragma: no cover (running from a source tree)
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Collect feeds and other sources, clean them, republish them.",
        epilog="exit codes: 0 all ok; 1 some sources (or the entry asked for) failed; "
        "2 usage or config error",
    )
    parser.add_argument("--version", action="version", version=f"aggregator {_version()}")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    sub = parser.add_subparsers(dest="command")
    _add_run_parsers(sub)
    _add_sources_parsers(sub)
    export_sub = _add_export_parsers(sub)
    _add_publish_parsers(sub, export_sub)
    _add_add_parser(sub)
    _add_db_parsers(sub)
    _global_options_everywhere(parser)
    return parser


def _add_run_parsers(sub: Any) -> None:
    """``init [PATH]`` and ``run``."""
    init = sub.add_parser(
        "init", help="write a commented starter config (default: config/aggregator.toml)"
    )
    init.add_argument("path", nargs="?", help="where to write it")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    run = sub.add_parser("run", help="run the daemon: scheduler and HTTP server")
    run.add_argument(
        "--role",
        choices=("all", "worker", "web"),
        default="all",
        help="all: both (default); worker: fetch only (HTTP: /metrics, /healthz, /readyz on "
        "--port or server.worker_port, if set); web: serve feeds only, read-only",
    )
    run.add_argument("--host", help="listen on this address (overrides server.host)")
    run.add_argument(
        "--port",
        type=_port,
        help="listen on this port (overrides server.port; with --role worker, server.worker_port)",
    )
    # A replacement web process (started by the daemon): its inherited listening socket and pipe.
    run.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    run.add_argument("--parent-fd", type=int, help=argparse.SUPPRESS)


def _add_sources_parsers(sub: Any) -> None:
    """``check``, ``fetch``, ``sources`` and ``explain``."""
    check = sub.add_parser("check", help="validate the config (exit 0 when valid)")
    check.add_argument("--source", help="also fetch this source once and show what would be stored")
    fetch = sub.add_parser("fetch", help="fetch every source once now, then exit")
    fetch.add_argument("--source", action="append", help="only this source (repeatable)")
    sub.add_parser("sources", help="a table of sources and their status")
    explain = sub.add_parser(
        "explain", help="why an entry has its categories, was merged, or was dropped"
    )
    explain.add_argument("entry", help="an entry id, key, link or canonical URL")


def _add_export_parsers(sub: Any) -> Any:
    """``export hexo``; returns the ``export`` subcommands for ``export opml``."""
    export = sub.add_parser("export", help="export entries")
    export_sub = export.add_subparsers(dest="export_kind")
    hexo = export_sub.add_parser("hexo", help="write Hexo markdown posts")
    hexo.add_argument("--out", required=True, help="directory for the posts")
    hexo.add_argument("--source", action="append", help="only entries of this source (repeatable)")
    hexo.add_argument("--category", help="only entries under this category path (a / b)")
    hexo.add_argument("--limit", type=int, default=100000, help="at most this many posts")
    return export_sub


def _add_publish_parsers(sub: Any, export_sub: Any) -> None:
    """``export opml``, ``import opml FILE`` and ``build --out DIR``."""
    opml = export_sub.add_parser("opml", help="write the sources as OPML (what GET /opml serves)")
    opml.add_argument("--out", help="file to write (default: standard output)")
    imp = sub.add_parser("import", help="import sources")
    imp_sub = imp.add_subparsers(dest="import_kind")
    imp_opml = imp_sub.add_parser("opml", help="add the feeds of an OPML file to the config file")
    imp_opml.add_argument("file", help="the OPML file")
    imp_opml.add_argument("--dry-run", action="store_true", help="report, change nothing")
    build = sub.add_parser("build", help="write every feed as static files")
    build.add_argument(
        "--out", required=True, help="directory to write into (feeds/…, opml.xml and index.html)"
    )
    build.add_argument(
        "--no-paging",
        action="store_true",
        help="write each feed's first page only, without a next link "
        "(default: older entries in page files FEED.page-2.FMT, … linked by next)",
    )


def _add_add_parser(sub: Any) -> None:
    add = sub.add_parser(
        "add",
        help="add a feed, or the feed a web page links to, to the config file",
        description="Add a source by its address: a feed URL, or a page whose feeds are found from "
        'its <link rel="alternate"> (else /feed, /rss, /atom.xml, … of its site). The '
        "feed is fetched and checked before the [[sources]] table is written.",
    )
    add.add_argument("url", help="a feed URL or a web page URL")
    add.add_argument(
        "--id", dest="source_id", help="the source id (default: from the feed's title or host)"
    )
    add.add_argument("--category", help="category path, e.g. 'Tech / Blogs'")
    add.add_argument("--title", help="the source's title (default: the feed's own)")
    pick = add.add_mutually_exclusive_group()
    pick.add_argument(
        "--choose", type=int, metavar="N", help="when the page offers several feeds, take the Nth"
    )
    pick.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="when the page offers several feeds, take the first",
    )


def _add_db_parsers(sub: Any) -> None:
    """``db upgrade``, ``db copy --to URL`` and ``db prune``."""
    db = sub.add_parser("db", help="database: upgrade the schema, copy to PostgreSQL, prune")
    db_sub = db.add_subparsers(dest="db_command")
    upgrade = db_sub.add_parser(
        "upgrade", help="apply pending schema migrations, print the version"
    )
    upgrade.add_argument("--url", help="database URL (default: [storage] url of the config)")
    copy = db_sub.add_parser("copy", help="copy the whole store into another (empty) database")
    copy.add_argument(
        "--to", required=True, metavar="URL", help="target, e.g. postgresql://user@host/db"
    )
    copy.add_argument(
        "--from", dest="source", metavar="URL", help="source (default: [storage] url)"
    )
    copy.add_argument(
        "--force", action="store_true", help="replace the target's rows if it has any"
    )
    db_sub.add_parser("prune", help="apply [retention] now: remove old entries, leave tombstones")


def _global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--json`` after any subcommand too; a value given there wins, and one
    given only before the subcommand is kept (SUPPRESS: no default overwrites it)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                child.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
                child.add_argument(
                    "--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP
                )
                _global_options_everywhere(child)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return int(text)


def handler(command: str) -> Callable[[argparse.Namespace], int]:
    """The function that runs ``command``, importing its group's module only now."""
    module, name = HANDLERS[command]
    found: Callable[[argparse.Namespace], int] = getattr(
        import_module(f"{__package__}.{module}"), name
    )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return handler(args.command or "run")(args)
    except ConfigError as exc:
        _config_error(exc, args.json)
        return 2
    except UsageError as exc:
        _error(exc)
        return 2
    except AggregatorError as exc:
        _error(exc)
        return 1
    except OSError as exc:  # a path the user gave that cannot be made, read or written
        _error(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc)
        return 1
    except KeyboardInterrupt:
        return 130


def _config_error(exc: ConfigError, as_json: bool) -> None:
    """Every problem of the config file, one line each with its file and line number."""
    from . import output

    if as_json:
        problems = [
            {"file": exc.path, "line": line, "problem": problem}
            for problem, line in zip(exc.problems, exc.lines)
        ]
        output.print_json({"config": exc.path, "ok": False, "problems": problems})
    output.err_console.print(f"[red]config error[/red] in {exc.path}:", highlight=False)
    for problem, line in zip(exc.problems, exc.lines):
        where = f"{exc.path}:{line}" if line else exc.path
        output.err_console.print(f"  {where}: {problem}", highlight=False, markup=False)


def _error(exc: AggregatorError | OSError | str) -> None:
    from . import output

    output.err_console.print(f"error: {exc}", highlight=False, markup=False)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
