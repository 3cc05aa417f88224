"""Config problems in the config's own terms: one line per problem naming the section, the source or
feed (by index and id) and the key, "did you mean" for a misspelt key, and the problem's line in
the file.

Owns: turning pydantic's validation errors into those lines and finding their lines. Does not own:
which keys exist (the models say; ``describe`` walks them from the root it is given) or reading
the file (``loading.py``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


def describe(
    exc: ValidationError, data: dict[str, Any], root: type[BaseModel]
) -> list[tuple[list[Any], str]]:
    """One line per problem: where it is (section, source id, field) and what is wrong; with the
    error's location in the data (for its line number). ``root`` is the model ``data`` was
    validated against (for the keys an unknown one may be a misspelling of)."""
    lines: list[tuple[list[Any], str]] = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = location(loc, data)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(loc, data, root)
        elif err["type"] in PLAIN_MESSAGES:
            message = PLAIN_MESSAGES[err["type"]]
            if loc in (["sources"], ["feeds"]):
                message = f"write each {str(loc[0])[:-1]} as a [[{loc[0]}]] table (double brackets)"
        # Whole-file checks (cross-references) report several problems in one message.
        lines += (
            [(loc, f"{where}: {message}")]
            if where
            else [(loc_of(m), m) for m in message.split("; ")]
        )
    return lines


# pydantic's wording for a wrong shape, in the config's terms
PLAIN_MESSAGES = {
    "tuple_type": 'expected a list, such as ["a", "b"]',
    "list_type": 'expected a list, such as ["a", "b"]',
    "dict_type": "expected a table ([name] or { key = value })",
    "model_type": "expected a table ([name], [[name]] or { key = value })",
}


def loc_of(message: str) -> list[Any]:
    """The location a whole-file check's message starts with: ``sources[2] (id=x).field: …``."""
    m = re.match(r"^(\w+)\[(\d+)\]", message)
    return [m.group(1), int(m.group(2))] if m else []


def _did_you_mean(loc: list[Any], data: dict[str, Any], root: type[BaseModel]) -> str:
    """`` (did you mean 'port'?)`` for an unknown key close to a known one of its table."""
    return unknown_key(str(loc[-1]), _known_keys(loc[:-1], data, root)).removeprefix("unknown key")


def unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")


def _known_keys(loc: list[Any], data: dict[str, Any], root: type[BaseModel]) -> list[str]:
    """The keys the table at ``loc`` may have: its model's fields, and for a model that takes
    more keys than it declares (a source's kind-specific ones) what its ``option_keys`` says."""
    model: Any = root
    raw: Any = data
    for part in loc:
        if isinstance(part, int):
            raw = raw[part] if isinstance(raw, list) and part < len(raw) else None
            continue
        raw = raw.get(part) if isinstance(raw, dict) else None
        field = (
            model.model_fields.get(part)
            if isinstance(model, type) and issubclass(model, BaseModel)
            else None
        )
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    keys = (
        list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    )
    option_keys = getattr(model, "option_keys", None)
    if option_keys is not None and isinstance(raw, dict):
        keys += option_keys(raw)
    return keys


def _model_in(annotation: Any) -> Any:
    """The settings model a field holds (itself, or the element of a tuple of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


_TABLE = re.compile(r"^\s*\[\s*\[?\s*([A-Za-z0-9_.\s-]+?)\s*\]?\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")


def line_of(text: str, loc: Sequence[Any], data: dict[str, Any]) -> int | None:
    """The line (from 1) of the key or table ``loc`` points at, as far as it can be found by
    reading the file's table headers and keys (the TOML reader keeps no positions)."""
    del data
    tables = [str(p) for p in loc if isinstance(p, str)]
    index = next((p for p in loc if isinstance(p, int)), None)
    table, key = (tables[0], tables[1] if len(tables) > 1 else None) if tables else (None, None)
    if table is None:
        return None
    seen, start = -1, None
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        m = _TABLE.match(line)
        if m and m.group(1).strip() == table:
            seen += 1
            if index is None or seen == index:
                start = number
                break
    if start is None:  # a top-level key (sources = "x")
        return next(
            (
                n
                for n, line in enumerate(lines, 1)
                if (m := _KEY.match(line)) and m.group(1).strip('"') == table
            ),
            None,
        )
    if key is not None:
        for number in range(start, len(lines)):
            if _TABLE.match(lines[number]):
                break
            m = _KEY.match(lines[number])
            if m and m.group(1).strip('"') == key:
                return number + 1
    return start


def location(loc: list[Any], data: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] in ("sources", "feeds") and isinstance(loc[1], int):
        index = loc[1]
        sources = data.get(loc[0]) or []
        sid = (
            sources[index].get("id")
            if index < len(sources) and isinstance(sources[index], dict)
            else None
        )
        field = ".".join(str(p) for p in loc[2:])
        head = f"{loc[0]}[{index}] (id={sid})" if sid else f"{loc[0]}[{index}]"
        return f"{head}.{field}" if field else head
    return ".".join(str(p) for p in loc)
