"""What the commands share besides output: the config file a command reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import loading as config_mod
from ..config.settings import Settings


def load_settings(args: argparse.Namespace) -> tuple[Settings, Path]:
    """The settings of ``--config`` (else ``$AGGREGATOR_CONFIG``, else the default path) and
    that path; a ConfigError names every problem."""
    path = config_mod.resolve_path(args.config)
    return config_mod.load(path), path
