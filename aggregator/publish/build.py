"""Static build: every published feed written as files, for a plain web server or a static host.

Owns: writing ``DIR/feeds/<path>.<fmt>`` for every feed of the catalog (all, each source, each
category path, each operator feed) in each of its formats, ``DIR/opml.xml`` and ``DIR/index.html``
(the page each feed names as its HTML ``alternate``: the public base URL ``/``, listing the feeds).
Files whose bytes did not change are left alone (their times too, so sync tools copy only what
changed); files are replaced atomically. Does not own: rendering (feeds.py) or choosing feeds
(catalog.py).

Paging for a static host, which ignores queries: a long feed's older entries go to page files
``<path>.page-2.<fmt>``, ``.page-3``, … (at most ``max_pages`` pages in all), each linked by the
previous page's ``next`` link; page files a smaller feed no longer needs are removed. Page 1 has the
server's bytes for the same URL except its ``next`` link (the server's is ``?before=…``).
``paging=False`` writes page 1 only, without a ``next`` link.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .catalog import FeedSpec
from .feeds import FeedService
from .opml import export_opml

MAX_PAGES = 100  # pages per feed and format a build writes at most
_PAGE_FILE = re.compile(r"\.page-(\d+)\.([a-z]+)$")


@dataclass
class BuildReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # feeds whose names cannot be file names


def build_site(
    feeds: FeedService, out: Path, paging: bool = True, max_pages: int = MAX_PAGES
) -> BuildReport:
    """Write every feed under ``out``; return what was written, left alone or skipped."""
    report = BuildReport()
    root = out.resolve()
    listed: list[tuple[FeedSpec, Path]] = []
    for spec in feeds.every():
        target = feed_file(root, spec)
        if target is None:
            report.skipped.append(spec.id)
            continue
        listed.append((spec, target))
        for fmt in spec.formats:
            pages = feeds.static_pages(spec, fmt, max_pages if paging else 1)
            count = _write_pages(target, fmt, pages, report)
            _remove_pages_after(target, fmt, count)
    states = feeds.store.list_states(include_disabled=True)
    _write(root / "opml.xml", export_opml(feeds.settings, feeds.sources(), states), report)
    _write(root / "index.html", index_page(feeds.settings.publish.title, root, listed), report)
    return report


def _write_pages(target: Path, fmt: str, pages: Iterable[bytes], report: BuildReport) -> int:
    count = 0
    for count, body in enumerate(pages, start=1):
        name = f"{target.name}.{fmt}" if count == 1 else f"{target.name}.page-{count}.{fmt}"
        _write(target.with_name(name), body, report)
    return count


def _remove_pages_after(target: Path, fmt: str, count: int) -> None:
    """Page files of an earlier build beyond the ``count`` pages written now."""
    if not target.parent.is_dir():
        return
    for path in target.parent.glob(f"{target.name}.page-*.{fmt}"):
        match = _PAGE_FILE.search(path.name)
        if match and path.name == f"{target.name}{match.group(0)}" and int(match.group(1)) > count:
            path.unlink(missing_ok=True)


def index_page(title: str, root: Path, feeds: list[tuple[FeedSpec, Path]]) -> bytes:
    """``index.html``: the feeds of the build, each format a relative link to its file."""
    rows = []
    for spec, target in feeds:
        where = target.relative_to(root).as_posix()
        links = " ".join(
            f'<a href="{html.escape(_href(where, fmt))}">{fmt}</a>' for fmt in spec.formats
        )
        rows.append(
            f"<li>{html.escape(spec.title)} <small>({html.escape(spec.id)})</small> {links}</li>"
        )
    head = html.escape(title)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>' + head + "</title></head>\n"
        f'<body><h1>{head}</h1>\n<p><a href="opml.xml">OPML</a></p>\n<ul>\n'
        + "\n".join(rows)
        + "\n</ul></body></html>\n"
    ).encode("utf-8")


def _href(where: str, fmt: str) -> str:
    return quote(f"{where}.{fmt}")


def feed_file(root: Path, spec: FeedSpec) -> Path | None:
    """``root/feeds/<parts>`` (the format suffix is added by the caller), or None when a part
    could not be a file name or would lead outside ``root``."""
    if any(p in ("", ".", "..") or "/" in p or "\\" in p or "\x00" in p for p in spec.parts):
        return None
    target = root.joinpath("feeds", *spec.parts)
    return target if target.resolve().is_relative_to(root) else None


def _write(path: Path, body: bytes, report: BuildReport) -> None:
    try:
        if path.read_bytes() == body:
            report.unchanged.append(path)
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".build-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    report.written.append(path)
