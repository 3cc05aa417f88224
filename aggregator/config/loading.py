"""Loading the config: which file, reading it, the TOML, and the starter config.

Owns: locating the config file (``--config``, then ``AGGREGATOR_CONFIG``, then
``config/aggregator.toml``), the packaged starter config (``aggregator init``), and reading a file
or text into ``Settings`` with every problem reported in one pass (``errors.py`` words them).
Values from the environment (``"${NAME}"``, ``AGGREGATOR_ACCESS_KEY``) are read by the types and
settings that hold them.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .errors import describe, line_of, location
from .settings import Settings, SourceSettings, option_problems

DEFAULT_CONFIG = Path("config/aggregator.toml")
ENV_CONFIG = "AGGREGATOR_CONFIG"


def starter_config() -> str:
    """The commented starter config ``aggregator init`` writes (package data)."""
    return (resources.files("aggregator") / "defaults" / "starter.toml").read_text(encoding="utf-8")


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The config file to read: the explicit path, else $AGGREGATOR_CONFIG, else the default."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    return Path(env) if env else DEFAULT_CONFIG


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate a config file; raise ConfigError naming every problem."""
    file = resolve_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = f"file not found; write a starter config there with `aggregator init {file}`"
        raise ConfigError(str(file), [hint]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(file), [f"cannot read: {exc}"]) from None
    return parse(text, str(file))


def parse(text: str, name: str = "<config>") -> Settings:
    """Validate a config's text (``name`` says where it came from in messages); raise ConfigError
    naming every problem, each with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, [f"not valid TOML: {exc}"]) from None
    shape = _shape_problems(data)
    if shape:
        raise ConfigError(name, shape, [line_of(text, [p.split(":")[0]], data) for p in shape])
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        # Kind-specific keys are checked after a source's fields, and repeated ids after every
        # field: report them even when a field error stopped those checks, so one run shows
        # every problem.
        joined = _joined_option_problems(data)
        found = [p for p in describe(exc, data, Settings) if p[1] not in joined]
        found += _all_option_problems(data) + _duplicate_ids(data)
        unique = {problem: loc for loc, problem in reversed(found)}  # first location, in order
        ordered = list(dict.fromkeys(problem for _, problem in found))
        lines = [line_of(text, unique[problem], data) for problem in ordered]
        raise ConfigError(name, ordered, lines) from None


def _shape_problems(data: dict[str, Any]) -> list[str]:
    """``[sources]`` or ``[feeds]`` written as one table instead of an array of tables."""
    return [
        f"{key}: write each {key[:-1]} as a [[{key}]] table (double brackets), not [{key}]"
        for key in ("sources", "feeds")
        if isinstance(data.get(key), dict)
    ]


def _duplicate_ids(data: dict[str, Any]) -> list[tuple[list[Any], str]]:
    sources = data.get("sources")
    seen: set[Any] = set()
    found = []
    for index, raw in enumerate(sources if isinstance(sources, list) else []):
        sid = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(sid, str) and sid in seen:
            found.append(
                (["sources", index], f"sources[{index}] (id={sid}): duplicate source id {sid!r}")
            )
        seen.add(sid)
    return found


def _all_option_problems(data: dict[str, Any]) -> list[tuple[list[Any], str]]:
    lines: list[tuple[list[Any], str]] = []
    sources = data.get("sources")
    for index, raw in enumerate(sources if isinstance(sources, list) else []):
        if not isinstance(raw, dict):
            continue
        extra = {k: v for k, v in raw.items() if k not in SourceSettings.model_fields}
        head = location(["sources", index], data)
        lines += [
            (["sources", index, p.split(":")[0].split(".")[0]], f"{head}: {p}")
            for p in option_problems(str(raw.get("kind", "feed")), extra)
        ]
    return lines


def _joined_option_problems(data: dict[str, Any]) -> set[str]:
    """The one line a source's several option problems make together (SourceSettings reports
    them so); parse lists them one by one instead."""
    joined = set()
    sources = data.get("sources")
    for index, raw in enumerate(sources if isinstance(sources, list) else []):
        if isinstance(raw, dict):
            extra = {k: v for k, v in raw.items() if k not in SourceSettings.model_fields}
            problems = option_problems(str(raw.get("kind", "feed")), extra)
            joined.add(f"{location(['sources', index], data)}: {'; '.join(problems)}")
    return joined


def write_config(path: Path, text: str) -> None:
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
