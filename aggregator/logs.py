"""Logging setup: one line per event, key=value by default or JSON, level from the config.

Every line passes ``urls.redact_text`` last: the password (or lone user name) of any URL in a
message or a traceback is written as ``***``, whoever logged it."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .content.urls import redact_text

if TYPE_CHECKING:  # a parser worker process sets up logging without the config module
    from .config.settings import LoggingSettings


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = (
            f"time={ts} level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact_text(line)


class JsonFormatter(logging.Formatter):
    """The message's key=value pairs become JSON fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat()
        doc: dict[str, object] = {
            "time": ts,
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        doc.update(parse_pairs(redact_text(record.getMessage())))
        if record.exc_info:
            doc["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def kv(**pairs: object) -> str:
    """``kv(source="a b", n=1)`` -> ``source='a b' n=1``: a log message that ``parse_pairs`` reads
    back exactly (values are shell-quoted when they need it; None values are left out)."""
    return " ".join(f"{k}={shlex.quote(_text(v))}" for k, v in pairs.items() if v is not None)


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def parse_pairs(message: str) -> dict[str, str]:
    """``a=1 b='x y'`` -> {"a": "1", "b": "x y"}; text that is not a pair goes under "msg"."""
    pairs: dict[str, str] = {}
    loose: list[str] = []
    try:
        tokens = shlex.split(message)
    except ValueError:
        return {"msg": message}
    for token in tokens:
        key, eq, value = token.partition("=")
        if eq and key.isidentifier():
            pairs[key] = value
        else:
            loose.append(token)
    if loose:
        pairs["msg"] = " ".join(loose)
    return pairs


def setup_logging(settings: LoggingSettings) -> None:
    log_to_stderr(settings.format, settings.level)


def log_to_stderr(format: str, level: str) -> None:
    """The root logger writes ``format`` ("kv" or "json") lines from ``level`` up to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
