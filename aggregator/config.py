"""Settings: the only reader of the TOML config file and of the environment.

Owns: locating the config file (``--config``, then ``AGGREGATOR_CONFIG``, then
``config/aggregator.toml``), validating it into frozen pydantic settings, turning every validation
problem into a line that names the file, the source id and the field, and turning configured sources
into ``models.Source`` records. Does not own: what any setting does (each stage reads its section).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .models import Source

DEFAULT_CONFIG = Path("config/aggregator.toml")
ENV_CONFIG = "AGGREGATOR_CONFIG"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30 (seconds), '30m', '2h' or '1d'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 30 (seconds), '30m', '2h' or '1d', got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def parse_category(value: Any) -> tuple[str, ...]:
    """A category path from ``"a / b / c"`` or ``["a", "b", "c"]``."""
    if value is None:
        return ()
    parts = value.split("/") if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) for p in parts):
        raise ValueError("a category path is a string 'a / b' or a list of strings")
    return tuple(p.strip() for p in parts if p.strip())


CategoryPath = Annotated[tuple[str, ...], BeforeValidator(parse_category)]


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


HttpUrl = Annotated[str, BeforeValidator(lambda v: check_http_url(str(v)) if v is not None else v)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    base_url: str | None = None  # public URL of the server, for self links; default http://host:port
    admin_token: str | None = None

    @property
    def public_base(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


class StorageSettings(_Section):
    url: str = "sqlite:///data/aggregator.db"  # or postgresql://user@host/db


class FetchSettings(_Section):
    user_agent: str = "aggregator/0.1 (+https://github.com/aggregator; feed fetcher)"
    timeout: Duration = 30.0  # whole request, body included
    connect_timeout: Duration = 10.0
    max_body_bytes: int = Field(15 * 1024 * 1024, gt=0)
    concurrency: int = Field(20, ge=1)  # requests in flight, all hosts together
    per_host_concurrency: int = Field(2, ge=1)
    per_host_delay: Duration = 1.0  # minimum gap between two requests to one host
    max_retries: int = Field(3, ge=0)  # retries within one fetch (connect errors, timeouts, 5xx, 429)
    retry_base_delay: Duration = 1.0
    retry_max_delay: Duration = 60.0
    max_redirects: int = Field(10, ge=0)
    permanent_redirect_after: int = Field(3, ge=1)  # consecutive fetches before the URL moves
    retry_after_per_host: bool = False  # a 429's Retry-After holds back the whole host
    proxy: str | None = None  # http://host:port, used for every request
    allow_private_networks: bool = False


class ScheduleSettings(_Section):
    interval: Duration = 1800.0  # default per-source interval
    jitter: float = Field(0.1, ge=0, le=1)  # fraction of the interval, random either way
    min_interval: Duration = 300.0
    max_interval: Duration = 86400.0
    max_backoff: Duration = 86400.0
    backoff_base: Duration = 60.0  # first retry after a failed fetch
    dispatch_every: Duration = 5.0  # how often the dispatcher looks for due sources
    batch_size: int = Field(100, ge=1)  # sources claimed per dispatcher tick
    lease: Duration = 600.0  # how long a claimed source stays claimed


class ContentSettings(_Section):
    image_proxy: str | None = None  # prefix put before image URLs, e.g. "https://cors.example/?"
    image_proxy_scope: Literal["http", "all"] = "http"


class DedupeSettings(_Section):
    tracking_params: tuple[str, ...] = (
        "utm_*", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "spm", "from",
        "key", "pv_id", "content_id", "cid", "cat", "share_token", "igshid", "yclid", "_hsenc",
        "_hsmi", "ref", "ref_src",
    )
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1)
    min_text_length: int = Field(60, ge=0)
    per_source_keeps_duplicates: bool = True


class PublishSettings(_Section):
    title: str = "aggregator"
    description: str = "Entries collected from many sources"
    default_limit: int = Field(50, ge=1)
    max_limit: int = Field(500, ge=1)
    hub: str | None = None  # WebSub hub URL


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["kv", "json"] = "kv"


class QutoutiaoOptions(_Section):
    cid: int = 255
    limit: int = Field(20, ge=1, le=100)


# Kind-specific keys of a [[sources]] table, validated by kind. An adapter's own options model.
SOURCE_OPTIONS: dict[str, type[BaseModel]] = {
    "feed": _Section,
    "qutoutiao": QutoutiaoOptions,
}

SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "qutoutiao": {"category": ("新媒体", "趣头条", "分类"), "site_name": "趣头条"},
}


class SourceSettings(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    kind: str = "feed"
    url: HttpUrl | None = None
    title: str | None = None
    interval: Duration | None = None
    category: CategoryPath | None = None
    site_name: str | None = None
    enabled: bool = True

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in SOURCE_OPTIONS:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(sorted(SOURCE_OPTIONS))}")
        return kind

    @model_validator(mode="after")
    def _options(self) -> SourceSettings:
        problems = option_problems(self.kind, self.model_extra or {})
        if problems:
            raise ValueError("; ".join(problems))
        if self.kind == "feed" and not self.url:
            raise ValueError("a feed source needs a url")
        return self

    @property
    def options(self) -> dict[str, Any]:
        model = SOURCE_OPTIONS[self.kind]
        return model.model_validate(self.model_extra or {}).model_dump()


def option_problems(kind: str, extra: dict[str, Any]) -> list[str]:
    """Unknown or mistyped kind-specific keys of one source, one line each."""
    model = SOURCE_OPTIONS.get(kind)
    if model is None:
        return []
    try:
        model.model_validate(extra)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in err['loc'])}: "
            + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"])
            for err in exc.errors()
        ]
    return []


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    fetch: FetchSettings = FetchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    content: ContentSettings = ContentSettings()
    dedupe: DedupeSettings = DedupeSettings()
    publish: PublishSettings = PublishSettings()
    logging: LoggingSettings = LoggingSettings()
    sources: tuple[SourceSettings, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> Settings:
        seen: set[str] = set()
        for index, src in enumerate(self.sources):
            if src.id in seen:
                raise ValueError(f"sources[{index}] (id={src.id}): duplicate source id {src.id!r}")
            seen.add(src.id)
        return self

    def source_records(self) -> tuple[Source, ...]:
        return tuple(to_source(s, self.schedule) for s in self.sources if s.enabled)


def to_source(s: SourceSettings, schedule: ScheduleSettings) -> Source:
    defaults = SOURCE_DEFAULTS.get(s.kind, {})
    options = s.options
    url = s.url or default_url(s.kind, options)
    return Source(
        id=s.id,
        url=url,
        kind=s.kind,
        title=s.title,
        interval=s.interval if s.interval is not None else schedule.interval,
        category=s.category if s.category is not None else defaults.get("category", ()),
        site_name=s.site_name or defaults.get("site_name"),
        options=options,
    )


def default_url(kind: str, options: dict[str, Any]) -> str:
    if kind == "qutoutiao":
        return (
            "http://api.1sapp.com/content/outList?"
            f"cid={options['cid']}&tn=1&page=1&limit={options['limit']}"
        )
    raise ValueError(f"a {kind} source needs a url")


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
        raise ConfigError(str(file), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(file), [f"cannot read: {exc}"]) from None
    return parse(text, str(file))


def parse(text: str, name: str = "<config>") -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, [f"not valid TOML: {exc}"]) from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        # Kind-specific keys are checked after a source's fields; report them even when a field
        # error stopped that check, so one run shows every problem.
        problems = describe(exc, data) + _all_option_problems(data)
        raise ConfigError(name, list(dict.fromkeys(problems))) from None


def _all_option_problems(data: dict[str, Any]) -> list[str]:
    lines = []
    sources = data.get("sources")
    for index, raw in enumerate(sources if isinstance(sources, list) else []):
        if not isinstance(raw, dict):
            continue
        extra = {k: v for k, v in raw.items() if k not in SourceSettings.model_fields}
        head = _location(["sources", index], data)
        lines += [f"{head}: {p}" for p in option_problems(str(raw.get("kind", "feed")), extra)]
    return lines


def describe(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    """One line per problem: where it is (section, source id, field) and what is wrong."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = _location(loc, data)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{where}: {message}" if where else message)
    return lines


def _location(loc: list[Any], data: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        index = loc[1]
        sources = data.get("sources") or []
        sid = sources[index].get("id") if index < len(sources) and isinstance(sources[index], dict) else None
        field = ".".join(str(p) for p in loc[2:])
        head = f"sources[{index}] (id={sid})" if sid else f"sources[{index}]"
        return f"{head}.{field}" if field else head
    return ".".join(str(p) for p in loc)
