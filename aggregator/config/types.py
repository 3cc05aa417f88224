"""Value types the settings and the adapters' option models share: strict numbers and booleans,
durations (``"30m"``), category paths, checked URLs, ``"${NAME}"`` secrets, JSON paths, CSS
selectors, patterns and time zones, and the frozen, closed base of every section.

Owns: how one TOML value becomes one typed value, with the message a mistake gets. Does not own:
which sections and keys exist (``settings.py``, and each adapter for its own kind's options).
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import soupsieve
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30 (seconds), '30m', '2h' or '1d'")  # noqa: TRY004 (pydantic reports ValueError)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(
            f"expected a duration such as 30 (seconds), '30m', '2h' or '1d', got {value!r}"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
# Numbers and booleans as TOML writes them: "8080" or "yes" is a mistake, not a value to convert.
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, Strict()]  # an integer is accepted too


def parse_category(value: Any) -> tuple[str, ...]:
    """A category path from ``"a / b / c"`` or ``["a", "b", "c"]``."""
    if value is None:
        return ()
    if not isinstance(value, (str, list, tuple)):
        raise ValueError("a category path is a string 'a / b' or a list of strings")  # noqa: TRY004 (pydantic reports ValueError)
    parts = value.split("/") if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) for p in parts):
        raise ValueError("a category path is a string 'a / b' or a list of strings")
    return tuple(p.strip() for p in parts if p.strip())


CategoryPath = Annotated[tuple[str, ...], BeforeValidator(parse_category)]


def _paths(value: Any) -> Any:
    """``"a / b"`` alone is one path; a list holds several (each a string or a list)."""
    return [value] if isinstance(value, str) else value


CategoryPaths = Annotated[tuple[CategoryPath, ...], BeforeValidator(_paths)]


_HOST = re.compile(r"^(?:[0-9a-f:.]+:[0-9a-f:.]*|[^\s/?#@:\[\]<>\"{}|\\^`%]+)$")  # IPv6 or a name


def check_http_url(value: str) -> str:
    """An absolute http(s) URL with a well-formed host and port and no spaces."""
    try:
        parts = urlsplit(value)
        well_formed = parts.scheme in ("http", "https") and (parts.port is None or parts.port > 0)
    except ValueError:  # a port that is not a number, a broken [IPv6] host
        well_formed = False
    if not well_formed or not _HOST.match(parts.hostname or "") or any(c.isspace() for c in value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


HttpUrl = Annotated[str, BeforeValidator(lambda v: check_http_url(str(v)) if v is not None else v)]


_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
ENV_ACCESS_KEY = "AGGREGATOR_ACCESS_KEY"


def from_environment(value: Any) -> Any:
    """``"${NAME}"`` read from the environment variable NAME (for secrets kept out of the file)."""
    if not isinstance(value, str) or not (m := _ENV_REFERENCE.match(value.strip())):
        return value
    found = os.environ.get(m.group(1))
    if found is None:
        raise ValueError(f"environment variable {m.group(1)} is not set")
    return found


Secret = Annotated[str, BeforeValidator(from_environment)]  # a value that may be "${NAME}"


class Section(BaseModel):
    """A table of the config: unknown keys are mistakes, and settings never change once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KindOptions(Section):
    """The kind-specific keys of a ``[[sources]]`` table: each adapter owns a subclass (a feed
    has none, so it uses this one)."""

    def ineffective(self) -> list[str]:
        """Keys that validate but would change nothing where they are, one line each."""
        return []


# --- paths, selectors, patterns and zones of the json and html kinds (sources/fields.py and the
# adapters; README "Any site as a source: kinds json and html"). Their syntax is checked here;
# whether they fit a fetched document, the adapters report.

_JSON_KEY = r"""[^.\[\]'"\s]+"""
_JSON_INDEX = r"""\[(?:-?\d+|\*|"[^"]*"|'[^']*')\]"""
_JSON_PATH = re.compile(rf"^(?:(?:{_JSON_KEY}|{_JSON_INDEX})(?:\.{_JSON_KEY}|{_JSON_INDEX})*)?$")
_OFFSET = re.compile(r"^[+-]\d{2}:?\d{2}$")


def check_json_path(value: str) -> str:
    """A path into JSON: keys joined by dots, ``[n]`` indexes, ``[*]`` for every element,
    ``["a.b"]`` for a key with dots or spaces; ``""`` is the document itself."""
    if not _JSON_PATH.match(value):
        raise ValueError(
            f"not a path: {value!r} (keys joined by '.', [n] for an index, [*] for every "
            'element, ["a.b"] for a key with dots)'
        )
    return value


def check_selector(value: str) -> str:
    try:
        soupsieve.compile(value)
    except soupsieve.SelectorSyntaxError as exc:
        reason = str(exc).splitlines()[0]
        raise ValueError(f"not a CSS selector: {value!r}: {reason}") from None
    return value


def check_pattern(value: str) -> str:
    try:
        groups = re.compile(value).groups
    except re.error as exc:
        raise ValueError(f"not a regular expression: {value!r}: {exc}") from None
    if groups > 1:
        raise ValueError(f"a pattern may have at most one group, {value!r} has {groups}")
    return value


def check_zone(value: str) -> str:
    if value.upper() in ("UTC", "Z", "GMT") or _OFFSET.match(value):
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"not a time zone: {value!r} (use '+08:00', 'UTC' or a name such as 'Asia/Shanghai')"
        ) from None
    return value


JsonPath = Annotated[str, AfterValidator(check_json_path)]
Selector = Annotated[str, AfterValidator(check_selector)]
SelectorOrSelf = Annotated[str, AfterValidator(lambda v: check_selector(v) if v else v)]


def one_or_many(value: Any) -> Any:
    """A lone string as a tuple of one (``format = "%Y"`` as ``format = ["%Y"]``)."""
    return (value,) if isinstance(value, str) else value
