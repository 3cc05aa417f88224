"""Live config reload: watching the config file, validating it, and applying it without a restart.

Owns: noticing that the file changed (its mtime and size, then a hash of its bytes, polled every
couple of seconds; SIGHUP forces a reload), deciding what a new config changes (sources added,
removed, changed; settings that only a restart can change), applying it (the store's source rows,
then every holder of the running settings, then a poke so new sources are fetched at once), and
remembering how the last attempt went for the status page. A config that fails validation is not
applied: the running one stays, and the problems are logged and kept in ``ReloadState``.

Does not own: reading TOML (config/loading.py), what any setting does, or signals (daemon.py wires
SIGHUP). Everything here runs on the daemon's one event loop, between awaits, so a reload is atomic
with respect to a dispatcher tick or a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..config import loading as config_mod
from ..config.settings import Settings
from ..content.urls import redact, redact_text
from ..errors import ConfigError
from ..logs import kv, setup_logging
from ..pipeline.update import Pipeline
from ..publish.feeds import FeedService
from ..store import Store
from .scheduler import Dispatcher, Scheduler

log = logging.getLogger("aggregator.reload")

# (section, field) pairs that are read once at start; field None means the whole section.
RESTART_ONLY: tuple[tuple[str, str | None], ...] = (
    ("server", "host"),
    ("server", "port"),
    ("server", "processes"),  # web processes are forked at start
    # the connection classes and uvicorn's keep-alive are built at start
    ("server", "max_request_line"),
    ("server", "max_header_bytes"),
    ("server", "header_timeout"),
    ("server", "keep_alive_timeout"),
    ("server", "max_connections"),
    ("server", "worker_port"),  # a worker's listener is bound at start
    ("storage", None),  # the engine and its timeouts are built once
    ("fetch", None),  # the HTTP client, its limits and proxy are built once
    ("schedule", "dispatch_every"),  # the scheduler's job interval
    ("publish", "hub"),  # the WebSub client is built at start for the hub it pings
)
# The settings a reload applies, and who takes them: every key of every section is in this table
# or in RESTART_ONLY (tests/test_reload.py checks that no key is in neither).
LIVE: dict[tuple[str, str | None], str] = {
    ("server", "base_url"): "feeds: self links of the next renderings",
    ("server", "admin_token"): "status pages: read at each admin request",
    ("server", "access_key"): "every request: read from the feeds' settings",
    ("server", "private"): "every request: read from the feeds' settings",
    ("retention", "max_entries_per_source"): "retention job: read at each run",
    ("retention", "max_age"): "retention job: read at each run",
    ("retention", "every"): "scheduler: the retention job is rescheduled",
    ("schedule", "interval"): "pipeline: next fetch times computed from now on",
    ("schedule", "jitter"): "pipeline",
    ("schedule", "min_interval"): "pipeline",
    ("schedule", "max_interval"): "pipeline",
    ("schedule", "max_backoff"): "pipeline",
    ("schedule", "backoff_base"): "pipeline",
    ("schedule", "batch_size"): "dispatcher",
    ("schedule", "lease"): "dispatcher",
    ("schedule", "detail_attempts"): "pipeline: detail retries decided from now on",
    ("content", None): "pipeline: cleaning options and parser processes",
    ("dedupe", None): "pipeline",
    ("publish", "title"): "feeds",
    ("publish", "description"): "feeds",
    ("publish", "default_limit"): "feeds",
    ("publish", "max_limit"): "feeds",
    ("logging", None): "logging set up again",
    ("categorize", None): "pipeline: entries stored from now on",
    ("feeds", None): "feeds: the catalog is rebuilt",
}

Applier = Callable[[Settings], None]


@dataclass(frozen=True)
class Change:
    """What a new config changes compared with the running one."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    settings_changed: bool = False
    needs_restart: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.settings_changed)


@dataclass
class ReloadState:
    """How the last reload went: shown on the status page."""

    path: str
    applied_at: datetime | None = None  # when the running config was (last) applied
    error: tuple[str, ...] = ()  # problems of the last attempt; empty when it applied
    error_at: datetime | None = None
    needs_restart: tuple[str, ...] = ()  # settings in the file that the process does not run with
    last_change: Change = field(default_factory=Change)


def diff(old: Settings, new: Settings) -> Change:
    """Sources added, removed and changed, whether other settings changed, and which changes need
    a restart (``new`` as given; ``restart_safe`` makes a config that leaves those alone)."""
    before = {s.id: s for s in old.source_records()}
    after = {s.id: s for s in new.source_records()}
    return Change(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(k for k in after.keys() & before.keys() if after[k] != before[k])),
        settings_changed=old.model_dump(exclude={"sources"}) != new.model_dump(exclude={"sources"}),
        needs_restart=tuple(_restart_only_changes(old, new)),
    )


def _restart_only_changes(old: Settings, new: Settings) -> list[str]:
    lines = []
    for section, name in RESTART_ONLY:
        was: dict[str, Any] = getattr(old, section).model_dump()
        now: dict[str, Any] = getattr(new, section).model_dump()
        for key in [name] if name else sorted(now):
            if was[key] != now[key]:
                old_value, new_value = shown(key, was[key]), shown(key, now[key])
                lines.append(
                    f"{section}.{key}: running with {old_value!r}, the file says {new_value!r}"
                )
    return lines


_SECRET_KEYS = ("token", "key", "password", "secret")


def shown(key: str, value: Any) -> Any:
    """A setting's value as notices and logs may show it: secrets masked, URLs redacted."""
    if isinstance(value, str) and any(word in key for word in _SECRET_KEYS):
        return "***" if value else value
    return redact(value) if isinstance(value, str) and "://" in value else value


def restart_safe(running: Settings, new: Settings) -> Settings:
    """``new`` with the restart-only settings put back to what the process runs with."""
    update: dict[str, Any] = {}
    for section, name in RESTART_ONLY:
        if name is None:
            update[section] = getattr(running, section)
        else:
            base = update.get(section, getattr(new, section))
            update[section] = base.model_copy(
                update={name: getattr(getattr(running, section), name)}
            )
    return new.model_copy(update=update)


class Reloader:
    """Reloads one config file into a running daemon."""

    def __init__(
        self,
        path: Path,
        running: Settings,
        store: Store,
        clock: Clock,
        appliers: Sequence[Applier] = (),
        poke: Callable[[], None] | None = None,
        sync_store: bool = True,
        adjust: Callable[[Settings], Settings] | None = None,
    ) -> None:
        self.path = path
        self.adjust = (
            adjust  # what the command line overrides (--host, --port), applied to each load
        )
        self.sync_store = sync_store  # False in a read-only web process: workers sync the rows
        self.settings = running
        self.store = store
        self.clock = clock
        self.appliers = list(appliers)
        self.poke = poke
        self.state = ReloadState(str(path), applied_at=clock.now())
        self._stat: tuple[int, int] | None = None
        self._hash: str | None = None
        self._seen()

    def check(self) -> bool:
        """Reload when the file's bytes changed since last seen; return whether it was applied."""
        try:
            st = self.path.stat()
        except OSError:
            return False  # mid-save (rename) or deleted: keep running, look again next time
        if (st.st_mtime_ns, st.st_size) == self._stat:
            return False
        old_hash = self._hash
        self._seen()
        if self._hash == old_hash:
            return False
        return self.reload("file changed")

    def reload(self, reason: str) -> bool:
        """Load, validate and apply the file now; return whether it was applied."""
        self._seen()
        try:
            loaded = config_mod.load(self.path)
            if self.adjust is not None:
                loaded = self.adjust(loaded)
        except ConfigError as exc:
            self._rejected(reason, exc.problems)
            return False
        change = diff(self.settings, loaded)
        self._apply(restart_safe(self.settings, loaded), change)
        self._log_applied(reason, change)
        return True

    async def watch(self, every: float = 2.0) -> None:
        """Poll the file forever (until cancelled)."""
        while True:
            await asyncio.sleep(every)  # real time: the file changes in real time
            try:
                self.check()
            except Exception:  # a bug here must not stop the watching or the daemon
                log.exception("%s", kv(event="reload_failed", path=self.path))

    def _apply(self, settings: Settings, change: Change) -> None:
        now = self.clock.now()
        if not change.empty:
            if self.sync_store:  # changed sources become due now, once across all processes
                self.store.sync_sources(settings.source_records(), now)
            self.settings = settings
            for apply in self.appliers:
                apply(settings)
            if self.poke and (change.added or change.changed):
                self.poke()
        self.state.applied_at = now
        self.state.error, self.state.error_at = (), None
        self.state.needs_restart = change.needs_restart
        self.state.last_change = change

    def _rejected(self, reason: str, problems: Sequence[str]) -> None:
        self.state.error = tuple(redact_text(p) for p in problems)
        self.state.error_at = self.clock.now()
        log.error(
            "%s",
            kv(
                event="reload",
                result="rejected",
                reason=reason,
                path=self.path,
                problems=redact_text("; ".join(problems)),
                keeping="the running config",
            ),
        )

    def _log_applied(self, reason: str, change: Change) -> None:
        log.info(
            "%s",
            kv(
                event="reload",
                result="applied" if not change.empty else "unchanged",
                reason=reason,
                path=self.path,
                added=",".join(change.added) or None,
                removed=",".join(change.removed) or None,
                changed=",".join(change.changed) or None,
            ),
        )
        for line in change.needs_restart:
            log.warning("%s", kv(event="reload", result="needs_restart", setting=line))

    def _seen(self) -> None:
        try:
            st = self.path.stat()
            data = self.path.read_bytes()
        except OSError:
            self._stat, self._hash = None, None
            return
        self._stat = (st.st_mtime_ns, st.st_size)
        self._hash = hashlib.sha256(data).hexdigest()


def appliers(
    update_sources: Applier,
    pipeline: Pipeline,
    feeds: FeedService,
    dispatcher: Dispatcher,
    scheduler: Scheduler | None = None,
) -> list[Applier]:
    """Everything in a running daemon that holds the settings, as functions of new settings
    (``update_sources`` first: the retention job reads the live settings it updates)."""

    def to_pipeline(s: Settings) -> None:
        pipeline.use_settings(s)

    def to_feeds(s: Settings) -> None:
        update = getattr(feeds, "update", None)
        if callable(update):  # the feed service re-validates its cache against new settings
            update(s)
            return
        feeds.settings = s
        cache = getattr(feeds, "_cache", None)  # rendered bytes carry titles and links
        if isinstance(cache, dict):
            cache.clear()

    def to_dispatcher(s: Settings) -> None:
        dispatcher.batch_size = s.schedule.batch_size
        dispatcher.lease = s.schedule.lease

    def to_logging(s: Settings) -> None:
        setup_logging(s.logging)

    def to_scheduler(s: Settings) -> None:
        if scheduler is not None:
            scheduler.reschedule_retention()

    return [update_sources, to_pipeline, to_feeds, to_dispatcher, to_logging, to_scheduler]
