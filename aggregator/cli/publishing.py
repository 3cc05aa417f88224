"""What the publishing commands do: export and import OPML, build the static site.

Owns: opening the store for a one-shot command, running the publish/ functions against it, and
writing the config file back after an import (atomically, validated first). Does not own: argument
parsing and printing (cli.py), OPML or feed syntax (publish/).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..clock import Clock, SystemClock
from ..config.settings import Settings
from ..errors import AggregatorError
from ..publish.build import BuildReport, build_site
from ..publish.feeds import FeedService
from ..publish.opml import ImportReport, Skipped, add_to_config, export_opml, read_opml
from ..runtime.daemon import open_configured_store


def opml_of(settings: Settings, clock: Clock | None = None) -> bytes:
    """The OPML document ``GET /opml`` serves, for the sources of ``settings``."""
    store = open_configured_store(settings, clock or SystemClock())
    try:
        sources = {s.id: s for s in settings.source_records()}
        return export_opml(settings, sources, store.list_states(include_disabled=True))
    finally:
        store.close()


def build(settings: Settings, out: Path, paging: bool = True, clock: Clock | None = None) -> BuildReport:
    """Write every feed under ``out`` with the bytes the server would send."""
    clock = clock or SystemClock()
    store = open_configured_store(settings, clock)
    try:
        sources = {s.id: s for s in settings.source_records()}
        feeds = FeedService(settings, store, lambda: sources, clock)
        return build_site(feeds, out, paging=paging)
    finally:
        store.close()


def import_opml(settings: Settings, config_path: Path, opml_file: Path, dry_run: bool = False) -> ImportReport:
    """Add the feeds of ``opml_file`` to the config file as [[sources]] (unless ``dry_run``)."""
    try:
        data = opml_file.read_bytes()
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AggregatorError(f"cannot read {exc.filename}: {exc.strerror}") from None
    skipped: list[Skipped] = []
    feeds = read_opml(data, skipped)
    report = add_to_config(text, feeds, settings.server.public_base, skipped)
    if report.added and not dry_run:
        replace_text(config_path, report.text)
    return report


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping the file's permissions."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
