"""Settings: the sections of the config file as frozen pydantic models, and ``Settings`` itself.

Owns: which sections and keys exist with their defaults and limits (``[server]``, ``[storage]``,
``[retention]``, ``[fetch]``, ``[schedule]``, ``[content]``, ``[dedupe]``, ``[publish]``,
``[logging]``, ``[categorize]``, ``[[sources]]``, ``[[feeds]]``), the checks across sections (a
feed or rule naming an unknown source), and turning configured sources into ``models.Source``
records. A source's kind-specific keys and defaults belong to its adapter (``sources/``); this
module asks the adapter. Does not own: reading the file (``loading.py``), wording problems
(``errors.py``), the value types (``types.py``) or what any setting does (each stage reads its
section).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..models import ParseLimits, RequestOptions, Source
from ..sources import KINDS, get_adapter
from .errors import unknown_key
from .types import (
    ENV_ACCESS_KEY,
    Bool,
    CategoryPath,
    CategoryPaths,
    Duration,
    Float,
    HttpUrl,
    Int,
    KindOptions,
    Secret,
    from_environment,
)
from .types import Section as _Section

Area = Literal["status", "opml", "feeds", "metrics"]


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Int = Field(8080, ge=0, le=65535)
    base_url: str | None = (
        None  # public URL of the server, for self links; default http://host:port
    )
    admin_token: Secret | None = None
    # HTTP processes on the one port: the daemon itself and processes - 1 web processes it forks
    processes: Int = Field(1, ge=1, le=64)
    # Access control (RSSHub's ACCESS_KEY conventions): with a key set, the areas in ``private``
    # answer only a request with ``?key=KEY``, ``?code=md5(path + KEY)`` or ``X-Access-Key: KEY``.
    # Default: $AGGREGATOR_ACCESS_KEY when set.
    access_key: Secret | None = Field(
        default_factory=lambda: os.environ.get(ENV_ACCESS_KEY) or None
    )
    private: tuple[Area, ...] = ("status", "opml", "metrics")
    # Limits against hostile clients, per process
    max_request_line: Int = Field(8 * 1024, ge=256)  # bytes of the request line (414 beyond)
    max_header_bytes: Int = Field(64 * 1024, ge=1024)  # request line and headers together (431)
    header_timeout: Duration = Field(
        10.0, gt=0
    )  # from connecting or a request's first byte to its last header
    keep_alive_timeout: Duration = Field(
        5.0, gt=0
    )  # idle keep-alive connections are closed after this
    max_connections: Int = Field(
        1000, ge=2
    )  # beyond it the oldest connection still waiting for a request is closed
    # a --role worker process serves /metrics, /healthz and /readyz on this port (none: no HTTP)
    worker_port: Int | None = Field(None, ge=0, le=65535)

    @property
    def public_base(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


class StorageSettings(_Section):
    """Where the database is and how long anything waits for it (``store/engine.py`` applies the
    timeouts to connections; ``store/guard.py`` bounds the waits of async code)."""

    url: Secret = "sqlite:///data/aggregator.db"  # or postgresql://user@host/db, or "${NAME}"
    connect_timeout: Duration = Field(
        5.0, gt=0
    )  # opening a PostgreSQL connection (psycopg: >= 2 s)
    statement_timeout: Duration = Field(30.0, ge=0)  # one statement (SQLite: lock wait); 0 = none
    pool_timeout: Duration = Field(10.0, gt=0)  # waiting for a free pooled connection
    request_timeout: Duration = Field(5.0, gt=0)  # a web request, /readyz or a tick waiting on it

    @field_validator("url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        """SQLite or PostgreSQL only: another database is named by ``check``, not met as a
        missing driver when the store is first opened. The URL is not echoed (it may hold a
        password)."""
        if not url.startswith(("sqlite:", "postgresql://", "postgres://")):
            raise ValueError(
                "not a supported database URL: use sqlite:///PATH or postgresql://user@host/db"
            )
        return url


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
    max_retries: Int = Field(
        3, ge=0
    )  # retries within one fetch (connect errors, timeouts, 5xx, 429)
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
        "utm_*",
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "spm",
        "pv_id",
        "share_token",
        "igshid",
        "yclid",
        "_hsenc",
        "_hsmi",
        "ref_src",
        # names that are tracking on one site and an article id elsewhere: scoped by host
        "key@qktoutiao.com",
        "content_id@qktoutiao.com",
        "cid@qktoutiao.com",
        "cat@qktoutiao.com",
        "key@1sapp.com",
        "content_id@1sapp.com",
        "cid@1sapp.com",
        "cat@1sapp.com",
        # more analytics and share tags (ad platforms, newsletters, Chinese portals and apps)
        "_ga",
        "_gl",
        "gclsrc",
        "gbraid",
        "wbraid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "xtor",
        "ncid",
        "cmpid",
        "wt.mc_id",
        "s_kwcid",
        "ns_campaign",
        "ns_mchannel",
        "ns_source",
        "ns_linkname",
        "ns_fee",
        "scm",
        "share_source",
        "share_medium",
        "tt_from",
        "isappinstalled",
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


# --- [categorize]: category aliases, rules and include/exclude filters (categorize.py)

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
    aliases: dict[str, tuple[str, ...]] = Field(
        default_factory=dict
    )  # canonical name -> its variants (case-insensitive)
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


class _KindOptions(Mapping[str, type[KindOptions]]):
    """Each kind's options model, asked of its adapter when a source of the kind is read (the
    adapter owns the model; ``sources.KINDS`` names the kinds)."""

    def __getitem__(self, kind: str) -> type[KindOptions]:
        if kind not in KINDS:
            raise KeyError(kind)
        return get_adapter(kind).options_model

    def __iter__(self) -> Iterator[str]:
        return iter(KINDS)

    def __len__(self) -> int:
        return len(KINDS)


# Kind-specific keys of a [[sources]] table, validated by kind. An adapter's own options model.
SOURCE_OPTIONS = _KindOptions()


# --- Per-source request options: sent by fetch.py with every request of the source (its
# document, details, full text) and no other. Values may be "${NAME}" (read from the environment);
# the password only ever comes from the environment (password_env names the variable).

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name (RFC 9110 token)
_FETCHER_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "accept-encoding",
        "if-none-match",
        "if-modified-since",
    }
)
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
        raise ValueError(
            "a cookie value cannot hold spaces, quotes, commas, semicolons, "
            "backslashes or control characters"
        )
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
        if not self.url and get_adapter(self.kind).default_url(self.options) is None:
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
            exclude_defaults=self.kind == "feed"
        )

    @classmethod
    def option_keys(cls, raw: Mapping[str, Any]) -> list[str]:
        """The kind-specific keys a table of ``raw``'s kind may have (for "did you mean")."""
        return list(SOURCE_OPTIONS.get(str(raw.get("kind", "feed")), KindOptions).model_fields)


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
            + (
                unknown_key(str(err["loc"][-1]), known)
                if err["type"] == "extra_forbidden"
                else err["msg"].removeprefix("Value error, ")
            )
            for err in exc.errors()
        ]
    return options.ineffective()


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
            problems.append(
                f"{head}.limit: more than publish.max_limit ({settings.publish.max_limit})"
            )
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
    adapter = get_adapter(s.kind)
    defaults = adapter.defaults
    options = s.options
    url = s.url or adapter.default_url(options)
    if url is None:
        raise ValueError(f"a {s.kind} source needs a url")
    return Source(
        id=s.id,
        url=url,
        kind=s.kind,
        title=s.title,
        interval=s.interval if s.interval is not None else schedule.interval,
        category=s.category if s.category is not None else defaults.category,
        also_in=s.also_in,
        site_name=s.site_name or defaults.site_name,
        hexo_placeholder_image=(
            s.hexo_placeholder_image
            if s.hexo_placeholder_image is not None
            else defaults.hexo_placeholder_image
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
