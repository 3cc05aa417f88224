"""Static build: every published feed written as files, for a plain web server or a static host.

Owns: writing ``DIR/feeds/<path>.<fmt>`` for every feed of the catalog (all, each source, each
category path, each operator feed) in each of its formats, with the bytes the server sends for the
same URL (uncompressed), and ``DIR/opml.xml``. Files whose bytes did not change are left alone (their
times too, so sync tools copy only what changed); files are replaced atomically. Does not own:
rendering (feeds.py) or choosing feeds (catalog.py).

The first page of a long feed links to the next one with a ``?before=`` query that only the live
server can answer; ``paging=False`` leaves those links out (the only difference from the server's
bytes).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import FeedSpec
from .feeds import FeedService
from .opml import export_opml


@dataclass
class BuildReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # feeds whose names cannot be file names


def build_site(feeds: FeedService, out: Path, paging: bool = True) -> BuildReport:
    """Write every feed under ``out``; return what was written, left alone or skipped."""
    report = BuildReport()
    root = out.resolve()
    for spec in feeds.every():
        target = feed_file(root, spec)
        if target is None:
            report.skipped.append(spec.id)
            continue
        for fmt in spec.formats:
            body = feeds.render(spec, fmt, paging=paging).body
            _write(target.with_name(f"{target.name}.{fmt}"), body, report)
    states = feeds.store.list_states(include_disabled=True)
    _write(root / "opml.xml", export_opml(feeds.settings, feeds.sources(), states), report)
    return report


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
