"""Settings: the only reader of the TOML config file and of the environment.

Owns: locating the config file (``--config``, then ``AGGREGATOR_CONFIG``, then
``config/aggregator.toml``), the packaged starter config (``aggregator init``), validating it into
frozen pydantic settings (strict numbers and booleans, checked URLs), turning every validation
problem into a line that names the source id and the field (with "did you mean" for unknown keys)
and finding its line in the file, all problems in one pass, and turning configured sources into
``models.Source`` records. Does not own: what any setting does (each stage reads its section).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2
import soupsieve
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import ConfigError
from ..models import ParseLimits, RequestOptions, Source

DEFAULT_CONFIG = Path("config/aggregator.toml")
ENV_CONFIG = "AGGREGATOR_CONFIG"

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
        raise ValueError(f"expected a duration such as 30 (seconds), '30m', '2h' or '1d', got {value!r}")
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
    if (not well_formed or not _HOST.match(parts.hostname or "")
            or any(c.isspace() for c in value)):
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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Area = Literal["status", "opml", "feeds", "metrics"]


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Int = Field(8080, ge=0, le=65535)
    base_url: str | None = None  # public URL of the server, for self links; default http://host:port
    admin_token: Secret | None = None
    # HTTP processes on the one port: the daemon itself and processes - 1 web processes it forks
    processes: Int = Field(1, ge=1, le=64)
    # Access control (RSSHub's ACCESS_KEY conventions): with a key set, the areas in ``private``
    # answer only a request with ``?key=KEY``, ``?code=md5(path + KEY)`` or ``X-Access-Key: KEY``.
    # Default: $AGGREGATOR_ACCESS_KEY when set.
    access_key: Secret | None = Field(default_factory=lambda: os.environ.get(ENV_ACCESS_KEY) or None)
    private: tuple[Area, ...] = ("status", "opml", "metrics")
    # Limits against hostile clients, per process
    max_request_line: Int = Field(8 * 1024, ge=256)  # bytes of the request line (414 beyond)
    max_header_bytes: Int = Field(64 * 1024, ge=1024)  # request line and headers together (431)
    header_timeout: Duration = Field(10.0, gt=0)  # from connecting or a request's first byte to its last header
    keep_alive_timeout: Duration = Field(5.0, gt=0)  # idle keep-alive connections are closed after this
    max_connections: Int = Field(1000, ge=2)  # beyond it the oldest connection still waiting for a request is closed
    # a --role worker process serves /metrics, /healthz and /readyz on this port (none: no HTTP)
    worker_port: Int | None = Field(None, ge=0, le=65535)

    @property
    def public_base(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


class StorageSettings(_Section):
    """Where the database is and how long anything waits for it (``store/sql.py`` applies the
    timeouts to connections; ``store/guard.py`` bounds the waits of async code)."""

    url: Secret = "sqlite:///data/aggregator.db"  # or postgresql://user@host/db, or "${NAME}"
    connect_timeout: Duration = Field(5.0, gt=0)  # opening a PostgreSQL connection (psycopg: >= 2 s)
    statement_timeout: Duration = Field(30.0, ge=0)  # one statement (SQLite: lock wait); 0 = none
    pool_timeout: Duration = Field(10.0, gt=0)  # waiting for a free pooled connection
    request_timeout: Duration = Field(5.0, gt=0)  # a web request, /readyz or a tick waiting on it


class RetentionSettings(_Section):
    """How long entries stay; removed ones leave tombstones so they never come back. The defaults
    keep everything."""

    max_entries_per_source: Int | None = Field(None, ge=1)  # keep the newest N of each source
    max_age: Duration | None = None  # remove entries dated (published or first seen) before this
    every: Duration = Field(3600.0, gt=0)  # how often worker processes prune


class FetchSettings(_Section):
    user_agent: str = "aggregator/0.1 (+https://github.com/aggregator; feed fetcher)"
    timeout: Duration = 30.0  # whole request, body included
    connect_timeout: Duration = 10.0
    max_body_bytes: Int = Field(15 * 1024 * 1024, gt=0)
    max_entries: Int = Field(500, ge=1)  # items kept from one document, newest first
    concurrency: Int = Field(20, ge=1)  # requests in flight, all hosts together
    per_host_concurrency: Int = Field(2, ge=1)
    per_host_delay: Duration = 1.0  # minimum gap between two requests to one host
    max_retries: Int = Field(3, ge=0)  # retries within one fetch (connect errors, timeouts, 5xx, 429)
    retry_base_delay: Duration = 1.0
    retry_max_delay: Duration = 60.0
    max_redirects: Int = Field(10, ge=0)
    permanent_redirect_after: Int = Field(3, ge=1)  # consecutive fetches before the URL moves
    retry_after_per_host: Bool = False  # a 429's Retry-After holds back the whole host
    proxy: Secret | None = None  # http://host:port, used for every request; or "${NAME}"
    allow_private_networks: Bool = False


class ScheduleSettings(_Section):
    interval: Duration = 1800.0  # default per-source interval
    jitter: Float = Field(0.1, ge=0, le=1)  # fraction of the interval, random either way
    min_interval: Duration = 300.0
    max_interval: Duration = 86400.0
    max_backoff: Duration = 86400.0
    backoff_base: Duration = 60.0  # first retry after a failed fetch
    dispatch_every: Duration = 5.0  # how often the dispatcher looks for due sources
    batch_size: Int = Field(100, ge=1)  # sources in flight at once (claimed by the dispatcher)
    lease: Duration = 600.0  # how long a claimed source stays claimed
    detail_attempts: Int = Field(5, ge=1)  # fetches of an entry's detail before giving up on it


class ContentSettings(_Section):
    image_proxy: str | None = None  # prefix put before image URLs, e.g. "https://cors.example/?"
    image_proxy_scope: Literal["http", "all"] = "http"
    # worker processes that parse, clean and fingerprint fetched documents; 0 = one per CPU,
    # 1 = none (a thread of the daemon does it)
    processes: Int = Field(0, ge=0, le=64)
    # CPU time one document's parse may take in a worker process before it is stopped; 0: none
    parse_cpu_budget: Duration = 20.0


class DedupeSettings(_Section):
    tracking_params: tuple[str, ...] = (
        "utm_*", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "spm",
        "pv_id", "share_token", "igshid", "yclid", "_hsenc", "_hsmi", "ref_src",
        # names that are tracking on one site and an article id elsewhere: scoped by host
        "key@qktoutiao.com", "content_id@qktoutiao.com", "cid@qktoutiao.com", "cat@qktoutiao.com",
        "key@1sapp.com", "content_id@1sapp.com", "cid@1sapp.com", "cat@1sapp.com",
        # more analytics and share tags (ad platforms, newsletters, Chinese portals and apps)
        "_ga", "_gl", "gclsrc", "gbraid", "wbraid", "twclid", "ttclid", "li_fat_id", "mkt_tok",
        "oly_anon_id", "oly_enc_id", "vero_id", "xtor", "ncid", "cmpid", "wt.mc_id", "s_kwcid",
        "ns_campaign", "ns_mchannel", "ns_source", "ns_linkname", "ns_fee", "scm",
        "share_source", "share_medium", "tt_from", "isappinstalled",
    )
    near_duplicate_threshold: Float = Field(0.8, gt=0, le=1)
    min_text_length: Int = Field(60, ge=0)
    per_source_keeps_duplicates: Bool = True


class PublishSettings(_Section):
    title: str = "aggregator"
    description: str = "Entries collected from many sources"
    default_limit: Int = Field(50, ge=1)
    max_limit: Int = Field(500, ge=1)
    hub: str | None = None  # WebSub hub URL


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["kv", "json"] = "kv"


# --- [categorize]: category aliases, rules and include/exclude filters (stage: categorize.py) ---

MatchField = Literal["title", "content", "author", "link", "categories"]


def check_re2(pattern: str) -> str:
    """A regular expression RE2 accepts (linear time: no backreferences, no lookaround)."""
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"invalid regular expression {pattern!r}: {reason}") from None
    return pattern


class ConditionSettings(_Section):
    """What a rule or a filter looks for: a keyword list or a regular expression in one field."""

    name: str | None = None  # shown by `aggregator explain`
    field: MatchField = "title"
    keywords: tuple[str, ...] | None = None  # any of them; case-insensitive; whole words for Latin
    regex: str | None = None  # RE2 syntax; add (?i) for case-insensitive

    @model_validator(mode="after")
    def _one_condition(self) -> ConditionSettings:
        if (self.keywords is None) == (self.regex is None):
            raise ValueError("give either keywords or regex")
        if self.keywords is not None and not [k for k in self.keywords if k.strip()]:
            raise ValueError("keywords: give at least one keyword")
        if self.regex is not None:
            check_re2(self.regex)
        return self


class RuleSettings(ConditionSettings):
    """``[[categorize.rules]]``: evaluated in order; adds categories or drops the entry."""

    add: tuple[str, ...] = ()
    drop: Bool = False
    sources: tuple[str, ...] = ()  # only entries of these sources; empty: every source

    @model_validator(mode="after")
    def _one_action(self) -> RuleSettings:
        if bool(self.add) == self.drop:
            raise ValueError("a rule either adds categories (add = [...]) or drops (drop = true)")
        return self


class SourceFilterSettings(_Section):
    """``[[categorize.filters]]``: include/exclude filters of one source (SourceSettings stays
    the source's own description)."""

    source: str
    include: tuple[ConditionSettings, ...] = ()
    exclude: tuple[ConditionSettings, ...] = ()


class CategorizeSettings(_Section):
    aliases: dict[str, tuple[str, ...]] = {}  # canonical name -> its variants (case-insensitive)
    rules: tuple[RuleSettings, ...] = ()
    include: tuple[ConditionSettings, ...] = ()  # if any: an entry must match one of them
    exclude: tuple[ConditionSettings, ...] = ()  # an entry matching one of them is dropped
    filters: tuple[SourceFilterSettings, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> CategorizeSettings:
        owner: dict[str, str] = {}
        for canonical, variants in self.aliases.items():
            for name in (canonical, *variants):
                key = name.strip().casefold()
                if owner.setdefault(key, canonical) != canonical:
                    raise ValueError(
                        f"aliases: {name!r} is a variant of both {owner[key]!r} and {canonical!r}"
                    )
        seen = [f.source for f in self.filters]
        if len(seen) != len(set(seen)):
            raise ValueError("filters: one [[categorize.filters]] table per source")
        return self

    def source_ids(self) -> list[tuple[str, str]]:
        """(where, source id) for every source the section names, to check they exist."""
        named = [(f"categorize.filters[{i}].source", f.source) for i, f in enumerate(self.filters)]
        for i, rule in enumerate(self.rules):
            named += [(f"categorize.rules[{i}].sources", s) for s in rule.sources]
        return named


class QutoutiaoOptions(_Section):
    cid: Int = Field(255, ge=1)
    limit: Int = Field(20, ge=1, le=100)


# --- Kinds "json" and "html": any site from the config alone (adapters: sources/json_api.py and
# sources/html_page.py; README "Sources of kind json and html"). The syntax of paths, selectors,
# patterns and zones is checked here; whether they fit a fetched document, the adapters report.

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
            "element, [\"a.b\"] for a key with dots)"
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
        raise ValueError(f"not a time zone: {value!r} (use '+08:00', 'UTC' or a name such as 'Asia/Shanghai')") from None
    return value


JsonPath = Annotated[str, AfterValidator(check_json_path)]
Selector = Annotated[str, AfterValidator(check_selector)]
SelectorOrSelf = Annotated[str, AfterValidator(lambda v: check_selector(v) if v else v)]


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class FieldSpec(_Section):
    # strptime format(s) of a date, e.g. "%Y-%m-%d %H:%M"; the first that matches wins
    format: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = ()
    unit: Literal["s", "ms", "us", "ns"] | None = None  # a date given as a Unix timestamp
    # for dates without a zone (formats without %z, relative dates such as "昨天 09:15")
    timezone: Annotated[str, AfterValidator(check_zone)] = "+08:00"
    pattern: Annotated[str, AfterValidator(check_pattern)] | None = None  # keep the match (or group 1)
    optional: bool = False  # found in no item at all is not a mistake

    @model_validator(mode="after")
    def _one_date_form(self) -> FieldSpec:
        if self.format and self.unit:
            raise ValueError("give either format or unit, not both")
        return self


class JsonField(FieldSpec):
    path: Annotated[tuple[JsonPath, ...], BeforeValidator(_one_or_many)] = ()  # first found wins
    template: str | None = None  # "https://site/p/{id}": {path} placeholders into the item

    @model_validator(mode="after")
    def _path_or_template(self) -> JsonField:
        if bool(self.path) == bool(self.template):
            raise ValueError("give either path or template")
        return self


class HtmlField(FieldSpec):
    selector: SelectorOrSelf = ""  # relative to the item element; "" is the item element itself
    attr: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = ()  # first present wins
    html: bool = False  # the inner HTML instead of the text

    @model_validator(mode="after")
    def _attr_or_html(self) -> HtmlField:
        if self.attr and self.html:
            raise ValueError("give either attr or html, not both")
        return self


def _json_field(value: Any) -> Any:
    return {"path": value} if isinstance(value, (str, list)) else value


def _html_field(value: Any) -> Any:
    return {"selector": value} if isinstance(value, str) else value


JsonFieldSpec = Annotated[JsonField, BeforeValidator(_json_field)]
HtmlFieldSpec = Annotated[HtmlField, BeforeValidator(_html_field)]


def _needs_title_or_link(fields: BaseModel) -> None:
    if not any(getattr(fields, name) for name in ("title", "link", "content")):
        raise ValueError("map at least one of title, link or content")


class JsonFields(_Section):
    id: JsonFieldSpec | None = None
    title: JsonFieldSpec | None = None
    link: JsonFieldSpec | None = None
    published: JsonFieldSpec | None = None
    updated: JsonFieldSpec | None = None
    author: JsonFieldSpec | None = None
    summary: JsonFieldSpec | None = None
    content: JsonFieldSpec | None = None
    image: JsonFieldSpec | None = None
    categories: JsonFieldSpec | None = None

    @model_validator(mode="after")
    def _useful(self) -> JsonFields:
        _needs_title_or_link(self)
        return self


class HtmlFields(_Section):
    id: HtmlFieldSpec | None = None
    title: HtmlFieldSpec | None = None
    link: HtmlFieldSpec | None = None
    published: HtmlFieldSpec | None = None
    updated: HtmlFieldSpec | None = None
    author: HtmlFieldSpec | None = None
    summary: HtmlFieldSpec | None = None
    content: HtmlFieldSpec | None = None
    image: HtmlFieldSpec | None = None
    categories: HtmlFieldSpec | None = None

    @model_validator(mode="after")
    def _useful(self) -> HtmlFields:
        _needs_title_or_link(self)
        return self


class HtmlDetail(_Section):
    selector: Selector  # the full content on the item's own page (its link)
    remove: Annotated[tuple[Selector, ...], BeforeValidator(_one_or_many)] = ()  # dropped inside it


class JsonDetail(_Section):
    url: str | None = None  # template with {path} placeholders into the list item; default its link
    content: JsonPath | None = None  # the full content in a JSON detail document
    selector: Selector | None = None  # ... or in an HTML detail document
    remove: Annotated[tuple[Selector, ...], BeforeValidator(_one_or_many)] = ()

    @model_validator(mode="after")
    def _content_or_selector(self) -> JsonDetail:
        if (self.content is None) == (self.selector is None):
            raise ValueError("give either content (a JSON path) or selector (a CSS selector)")
        return self


class JsonOptions(_Section):
    items: JsonPath  # where the list of items is; "" when the document is the list
    fields: JsonFields
    detail: JsonDetail | None = None


class HtmlOptions(_Section):
    items: Annotated[str, Field(min_length=1), AfterValidator(check_selector)]  # one match per item
    fields: HtmlFields
    detail: HtmlDetail | None = None


class FeedOptions(_Section):
    """Full text for summary-only feeds (sources/feed.py, fulltext.py): each new entry's article
    page (its link) is fetched and its main content becomes the entry's content."""

    fulltext: Bool = False
    fulltext_selector: Selector | None = None  # the content on the article page; default: found

    @field_validator("fulltext_selector")
    @classmethod
    def _selector_needs_fulltext(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("fulltext"):
            raise ValueError("has no effect without fulltext = true")
        return value


# Kind-specific keys of a [[sources]] table, validated by kind. An adapter's own options model.
SOURCE_OPTIONS: dict[str, type[BaseModel]] = {
    "feed": FeedOptions,
    "qutoutiao": QutoutiaoOptions,
    "json": JsonOptions,
    "html": HtmlOptions,
}

SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "qutoutiao": {
        "category": ("新媒体", "趣头条", "分类"),
        "site_name": "趣头条",
        "hexo_placeholder_image": True,
    },
}


# --- Per-source request options: sent by fetch.py with every request of the source (its document,
# details, full text) and no other. Values may be "${NAME}" (read from the environment); the
# password only ever comes from the environment (password_env names the variable).

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name (RFC 9110 token)
_FETCHER_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
    "trailer", "proxy-authorization", "proxy-connection", "accept-encoding", "if-none-match",
    "if-modified-since",
})
_OWN_KEYS = {"user-agent": "user_agent", "referer": "referer", "cookie": "cookies"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BAD_COOKIE_OCTET = re.compile(r'[\s",;\\\x00-\x1f\x7f]')  # RFC 6265 cookie-octet excludes these


def check_header_name(name: str) -> str:
    if not _TOKEN.match(name):
        raise ValueError(f"not a header name: {name!r} (letters, digits and !#$%&'*+-.^_`|~ only)")
    lower = name.lower()
    if lower in _FETCHER_HEADERS:
        raise ValueError(f"{name} is set by the fetcher, not per source")
    if lower in _OWN_KEYS:
        raise ValueError(f"give {name} with the source's {_OWN_KEYS[lower]} key")
    return name


def check_header_value(value: str) -> str:
    """A header value without line breaks or other control characters; the message never
    repeats the value (it may be a secret from the environment)."""
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        raise ValueError("a header value cannot hold line breaks or control characters")
    return value.strip()


def check_cookie_name(name: str) -> str:
    if not _TOKEN.match(name):
        raise ValueError(f"not a cookie name: {name!r} (letters, digits and !#$%&'*+-.^_`|~ only)")
    return name


def check_cookie_value(value: str) -> str:
    if _BAD_COOKIE_OCTET.search(value):
        raise ValueError("a cookie value cannot hold spaces, quotes, commas, semicolons, "
                         "backslashes or control characters")
    return value


def check_env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ValueError(f"not an environment variable name: {name!r}")
    if name not in os.environ:
        raise ValueError(f"environment variable {name} is not set (it should hold the password)")
    return name


HeaderName = Annotated[str, AfterValidator(check_header_name)]
HeaderValue = Annotated[str, BeforeValidator(from_environment), AfterValidator(check_header_value)]
CookieName = Annotated[str, AfterValidator(check_cookie_name)]
CookieValue = Annotated[str, BeforeValidator(from_environment), AfterValidator(check_cookie_value)]
EnvName = Annotated[str, AfterValidator(check_env_name)]


class SourceSettings(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    kind: str = "feed"
    url: HttpUrl | None = None
    title: str | None = None
    interval: Duration | None = None
    category: CategoryPath | None = None
    also_in: CategoryPaths = ()  # more category paths whose feeds show the source's entries
    site_name: str | None = None
    hexo_placeholder_image: Bool | None = None  # None: the kind's default (Qutoutiao: true)
    site_url: HttpUrl | None = None  # the site's home page (OPML htmlUrl), when the feed names none
    enabled: Bool = True
    # request options, for every request of this source only (see above)
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    user_agent: HeaderValue | None = None
    cookies: dict[CookieName, CookieValue] = Field(default_factory=dict)
    referer: HttpUrl | None = None
    username: Annotated[str, Field(pattern=r"^[^:\x00-\x1f]*$")] | None = None  # basic auth
    password_env: EnvName | None = None  # the environment variable holding the password

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
        if self.kind in ("feed", "json", "html") and not self.url:
            raise ValueError(f"a {self.kind} source needs a url")
        return self

    @model_validator(mode="after")
    def _request_options(self) -> SourceSettings:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("basic auth needs both username and password_env")
        names = [name.lower() for name in self.headers]
        if len(set(names)) < len(names):
            raise ValueError("headers: a header name is given twice (names ignore case)")
        if self.username is not None and "authorization" in names:
            raise ValueError("headers: Authorization and basic auth (username) exclude each other")
        return self

    @property
    def options(self) -> dict[str, Any]:
        model = SOURCE_OPTIONS[self.kind]
        # a feed's options only when given: feeds configured before full text keep options {}
        return model.model_validate(self.model_extra or {}).model_dump(
            exclude_defaults=model is FeedOptions
        )


def option_problems(kind: str, extra: dict[str, Any]) -> list[str]:
    """Unknown, mistyped or ineffective kind-specific keys of one source, one line each."""
    model = SOURCE_OPTIONS.get(kind)
    if model is None:
        return []
    try:
        options = model.model_validate(extra)
    except ValidationError as exc:
        known = [*SourceSettings.model_fields, *model.model_fields]
        return [
            f"{'.'.join(str(p) for p in err['loc'])}: "
            + (_unknown(str(err["loc"][-1]), known) if err["type"] == "extra_forbidden"
               else err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]
    fields = getattr(options, "fields", None)
    return ineffective_keys(fields) if isinstance(fields, (JsonFields, HtmlFields)) else []


DATE_FIELDS = frozenset({"published", "updated"})


def ineffective_keys(fields: JsonFields | HtmlFields) -> list[str]:
    """Keys of field specs that would change nothing where they are: date keys (``format``,
    ``unit``, ``timezone``) on a field that is not a date, ``timezone`` with ``unit``."""
    problems: list[str] = []
    for name, spec in fields:
        if spec is None:
            continue
        given = spec.model_fields_set
        if name not in DATE_FIELDS:
            problems += [
                f"fields.{name}.{key}: has no effect: only published and updated are dates"
                for key in ("format", "unit", "timezone") if key in given
            ]
        elif spec.unit and "timezone" in given:
            problems.append(
                f"fields.{name}.timezone: has no effect with unit (a Unix time names an instant)"
            )
    return problems


FeedFormat = Literal["rss", "atom", "json"]
RESERVED_FEED_IDS = frozenset({"all", "source", "category"})  # the built-in feeds' URL names



class FeedSettings(_Section):
    """An operator-defined feed (``[[feeds]]``), served at ``/feeds/ID.FMT``."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=100)
    title: str | None = None
    description: str | None = None
    sources: tuple[str, ...] = ()  # entries of these sources…
    categories: CategoryPaths = ()  # …or under these category paths; neither: every source
    query: str | None = None  # only entries whose title or content contains this text
    exclude_sources: tuple[str, ...] = ()
    exclude_categories: CategoryPaths = ()
    exclude_query: str | None = None  # drop entries whose title, summary or content contains it
    limit: Int | None = Field(None, ge=1)  # entries per document (default publish.default_limit)
    formats: tuple[FeedFormat, ...] = ("rss", "atom", "json")
    merge_duplicates: Bool = True  # one copy of a story found in several sources

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_FEED_IDS:
            raise ValueError(f"{value!r} is a built-in feed name; pick another id")
        return value

    @field_validator("formats")
    @classmethod
    def _some_formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a feed needs at least one format")
        return tuple(dict.fromkeys(value))


def feed_problems(settings: Settings) -> list[str]:
    """Feeds that name unknown sources, repeat an id or ask for more than publish.max_limit."""
    known = {s.id for s in settings.sources}
    problems, seen = [], set()
    for index, feed in enumerate(settings.feeds):
        head = f"feeds[{index}] (id={feed.id})"
        if feed.id in seen:
            problems.append(f"{head}.id: duplicate feed id {feed.id!r}")
        seen.add(feed.id)
        for name in ("sources", "exclude_sources"):
            unknown = [s for s in getattr(feed, name) if s not in known]
            problems += [f"{head}.{name}: unknown source {s!r}" for s in unknown]
        if feed.limit is not None and feed.limit > settings.publish.max_limit:
            problems.append(f"{head}.limit: more than publish.max_limit ({settings.publish.max_limit})")
    return problems


class Settings(_Section):
    server: ServerSettings = Field(default_factory=ServerSettings)  # reads the environment
    storage: StorageSettings = StorageSettings()
    retention: RetentionSettings = RetentionSettings()
    fetch: FetchSettings = FetchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    content: ContentSettings = ContentSettings()
    dedupe: DedupeSettings = DedupeSettings()
    publish: PublishSettings = PublishSettings()
    logging: LoggingSettings = LoggingSettings()
    categorize: CategorizeSettings = CategorizeSettings()
    sources: tuple[SourceSettings, ...] = ()
    feeds: tuple[FeedSettings, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> Settings:
        seen: set[str] = set()
        for index, src in enumerate(self.sources):
            if src.id in seen:
                raise ValueError(f"sources[{index}] (id={src.id}): duplicate source id {src.id!r}")
            seen.add(src.id)
        return self

    @model_validator(mode="after")
    def _feeds(self) -> Settings:
        problems = feed_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _categorize_sources(self) -> Settings:
        known = {s.id for s in self.sources}
        named = self.categorize.source_ids()
        unknown = [f"{where}: unknown source {sid!r}" for where, sid in named if sid not in known]
        if unknown:
            raise ValueError("; ".join(unknown))
        return self

    def source_records(self) -> tuple[Source, ...]:
        limits = ParseLimits(self.fetch.max_entries, self.content.parse_cpu_budget)
        return tuple(to_source(s, self.schedule, limits) for s in self.sources if s.enabled)


def to_source(
    s: SourceSettings, schedule: ScheduleSettings, limits: ParseLimits | None = None
) -> Source:
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
        also_in=s.also_in,
        site_name=s.site_name or defaults.get("site_name"),
        hexo_placeholder_image=(
            s.hexo_placeholder_image
            if s.hexo_placeholder_image is not None
            else bool(defaults.get("hexo_placeholder_image", False))
        ),
        options=options,
        request=request_options(s),
        limits=limits or ParseLimits(),
    )


def request_options(s: SourceSettings) -> RequestOptions | None:
    """The headers the source sends with each request (its cookies as one Cookie header) and
    its basic auth, the password read from the environment now; None when it sets none."""
    headers = list(s.headers.items())
    if s.user_agent:
        headers.append(("User-Agent", s.user_agent))
    if s.referer:
        headers.append(("Referer", s.referer))
    if s.cookies:
        headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in s.cookies.items())))
    if not headers and s.username is None:
        return None
    password = os.environ.get(s.password_env, "") if s.password_env else None
    return RequestOptions(tuple(headers), s.username, password)


def default_url(kind: str, options: dict[str, Any]) -> str:
    if kind == "qutoutiao":
        return (
            "http://api.1sapp.com/content/outList?"
            f"cid={options['cid']}&tn=1&page=1&limit={options['limit']}"
        )
    raise ValueError(f"a {kind} source needs a url")


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
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, [f"not valid TOML: {exc}"]) from None
    shape = _shape_problems(data)
    if shape:
        raise ConfigError(name, shape, [_line_of(text, [p.split(":")[0]], data) for p in shape])
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        # Kind-specific keys are checked after a source's fields, and repeated ids after every
        # field: report them even when a field error stopped those checks, so one run shows
        # every problem.
        joined = _joined_option_problems(data)
        found = [p for p in describe(exc, data) if p[1] not in joined]
        found += _all_option_problems(data) + _duplicate_ids(data)
        unique = {problem: loc for loc, problem in reversed(found)}  # first location, in order
        ordered = list(dict.fromkeys(problem for _, problem in found))
        lines = [_line_of(text, unique[problem], data) for problem in ordered]
        raise ConfigError(name, ordered, lines) from None


def _shape_problems(data: dict[str, Any]) -> list[str]:
    """``[sources]`` or ``[feeds]`` written as one table instead of an array of tables."""
    return [
        f"{key}: write each {key[:-1]} as a [[{key}]] table (double brackets), not [{key}]"
        for key in ("sources", "feeds") if isinstance(data.get(key), dict)
    ]


def _duplicate_ids(data: dict[str, Any]) -> list[tuple[list[Any], str]]:
    sources = data.get("sources")
    seen: set[Any] = set()
    found = []
    for index, raw in enumerate(sources if isinstance(sources, list) else []):
        sid = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(sid, str) and sid in seen:
            found.append((["sources", index], f"sources[{index}] (id={sid}): duplicate source id {sid!r}"))
        seen.add(sid)
    return found


def _all_option_problems(data: dict[str, Any]) -> list[tuple[list[Any], str]]:
    lines: list[tuple[list[Any], str]] = []
    sources = data.get("sources")
    for index, raw in enumerate(sources if isinstance(sources, list) else []):
        if not isinstance(raw, dict):
            continue
        extra = {k: v for k, v in raw.items() if k not in SourceSettings.model_fields}
        head = _location(["sources", index], data)
        lines += [(["sources", index, p.split(":")[0].split(".")[0]], f"{head}: {p}")
                  for p in option_problems(str(raw.get("kind", "feed")), extra)]
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
            joined.add(f"{_location(['sources', index], data)}: {'; '.join(problems)}")
    return joined


def describe(exc: ValidationError, data: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """One line per problem: where it is (section, source id, field) and what is wrong; with the
    error's location in the data (for its line number)."""
    lines: list[tuple[list[Any], str]] = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = _location(loc, data)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(loc, data)
        elif err["type"] in PLAIN_MESSAGES:
            message = PLAIN_MESSAGES[err["type"]]
            if loc in (["sources"], ["feeds"]):
                message = f"write each {str(loc[0])[:-1]} as a [[{loc[0]}]] table (double brackets)"
        # Whole-file checks (cross-references) report several problems in one message.
        lines += [(loc, f"{where}: {message}")] if where else [(_loc_of(m), m) for m in message.split("; ")]
    return lines


# pydantic's wording for a wrong shape, in the config's terms
PLAIN_MESSAGES = {
    "tuple_type": 'expected a list, such as ["a", "b"]',
    "list_type": 'expected a list, such as ["a", "b"]',
    "dict_type": "expected a table ([name] or { key = value })",
    "model_type": "expected a table ([name], [[name]] or { key = value })",
}


def _loc_of(message: str) -> list[Any]:
    """The location a whole-file check's message starts with: ``sources[2] (id=x).field: …``."""
    m = re.match(r"^(\w+)\[(\d+)\]", message)
    return [m.group(1), int(m.group(2))] if m else []


def _did_you_mean(loc: list[Any], data: dict[str, Any]) -> str:
    """`` (did you mean 'port'?)`` for an unknown key close to a known one of its table."""
    return _unknown(str(loc[-1]), _known_keys(loc[:-1], data)).removeprefix("unknown key")


def _unknown(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")


def _known_keys(loc: list[Any], data: dict[str, Any]) -> list[str]:
    model: Any = Settings
    raw: Any = data
    for part in loc:
        if isinstance(part, int):
            raw = raw[part] if isinstance(raw, list) and part < len(raw) else None
            continue
        raw = raw.get(part) if isinstance(raw, dict) else None
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    keys = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    if model is SourceSettings and isinstance(raw, dict):
        keys += list(SOURCE_OPTIONS.get(str(raw.get("kind", "feed")), _Section).model_fields)
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


def _line_of(text: str, loc: Sequence[Any], data: dict[str, Any]) -> int | None:
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
        return next((n for n, line in enumerate(lines, 1)
                     if (m := _KEY.match(line)) and m.group(1).strip('"') == table), None)
    if key is not None:
        for number in range(start, len(lines)):
            if _TABLE.match(lines[number]):
                break
            m = _KEY.match(lines[number])
            if m and m.group(1).strip('"') == key:
                return number + 1
    return start


def _location(loc: list[Any], data: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] in ("sources", "feeds") and isinstance(loc[1], int):
        index = loc[1]
        sources = data.get(loc[0]) or []
        sid = sources[index].get("id") if index < len(sources) and isinstance(sources[index], dict) else None
        field = ".".join(str(p) for p in loc[2:])
        head = f"{loc[0]}[{index}] (id={sid})" if sid else f"{loc[0]}[{index}]"
        return f"{head}.{field}" if field else head
    return ".".join(str(p) for p in loc)
