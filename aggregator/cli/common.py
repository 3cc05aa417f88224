"""What the commands share besides output: the config file a command reads, and writing it back
(``add``, ``import opml``) atomically."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ..config import settings as config_mod
from ..config.settings import Settings


def load_settings(args: argparse.Namespace) -> tuple[Settings, Path]:
    """The settings of ``--config`` (else ``$AGGREGATOR_CONFIG``, else the default path) and
    that path; a ConfigError names every problem."""
    path = config_mod.resolve_path(args.config)
    return config_mod.load(path), path


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping the file's permissions: a daemon that
    reloads the config on change never reads half a file."""
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
