"""The CPU-heavy, pure stages of the pipeline, run in worker processes so a batch uses every core.

Owns the two jobs and where they run:

- ``identify``: an adapter's parse of one fetched document, then each item's key within the source,
  canonical URL and content hash (what the pipeline compares with the store);
- ``prepare``: for new and changed items only, cleaned HTML, plain text, fallback title and the
  near-duplicate signature (fingerprint, band keys, weight).

``Offload`` runs them in a process pool (``[content] processes``: 0 is one per CPU), started on
first use with the ``spawn`` method (the daemon has threads; a fork would copy their locks), or in
a thread of the calling process when there is one process or one CPU. Both give the same results:
they are the same functions of their arguments. A worker that dies (a crash in a C parser, the OOM
killer) fails only the documents it had in hand: the pool is replaced and the error reaches those
sources' outcomes like any other parse error. A worker whose daemon is gone (even by SIGKILL)
exits within half a second.

Bounded work: ``identify`` applies ``sources.limits`` (plausible dates, the newest ``[fetch]
max_entries`` items, capped text fields) inside the worker, so a huge document never crosses to
the daemon whole; ``prepare`` caps the text of enriched items again. A body of
``HAND_OFF_AFTER`` or more crosses to the worker in a temporary file, not pickled through the
pool's pipe, and after it the worker hands the memory back to the system (``release_memory``);
both kinds of process have glibc unmap freed big blocks at once (``map_big_blocks``).

A parse in a worker process has a CPU budget (``[content] parse_cpu_budget``): at the budget a
profiling timer (SIGPROF) stops it between two Python steps, and an ``RLIMIT_CPU`` a few seconds
later kills a worker stuck inside C code. Either way the source fails with ``parse took too
long`` and the pool is replaced (the other workers finish the jobs they hold first). With one
process the parse runs in a thread of the daemon, where it cannot be stopped: the budget applies
only with worker processes.

Does not own: anything that reads or writes the store, extra fetches (``enrich``), categorizing,
or which items are new (decide.py decides from ``identify``'s keys and hashes).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import math
import multiprocessing
import os
import resource
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..content import clean as content
from ..dedupe.canonical import canonical_url
from ..dedupe.fingerprint import document_text, signature
from ..dedupe.keys import content_hash, entry_keys
from ..errors import ParseError
from ..logs import log_to_stderr
from ..models import FetchResult, Identity, Item, ParsedFeed, Source
from ..sources import get_adapter, limits

if TYPE_CHECKING:  # not imported in the workers: the config module alone costs them 30 MB
    from ..config.settings import LoggingSettings

log = logging.getLogger("aggregator.offload")

T = TypeVar("T")
PARENT_CHECK = 0.5  # seconds between a worker's checks that the daemon still lives
HARD_STOP_AFTER = 5.0  # CPU seconds past the budget at which RLIMIT_CPU kills a stuck worker


class ParseTimeout(ParseError):
    """A parse went over its CPU budget and was stopped."""


class _OverBudget(BaseException):
    """Raised into the parse by the SIGPROF handler."""


@dataclass(frozen=True)
class Prepared:
    """What cleaning and fingerprinting made of one item."""

    html: str  # cleaned content; "" for none
    summary: str | None  # cleaned summary
    text: str  # plain text of the content, else of the summary
    title: str  # the item's title, else the start of its text
    image: str | None  # the item's image, else the content's first image
    fingerprint: int | None
    band_keys: tuple[int, ...]
    weight: int  # text_length


def identify(
    source: Source, result: FetchResult, tracking: Sequence[str]
) -> tuple[ParsedFeed, list[tuple[Identity, Item]]]:
    """Parse one document and identify its items (in document order: each with its key, canonical
    URL and content hash; no fingerprint yet); raises the adapter's errors.
    The items are bounded (``sources.limits``) before they are keyed."""
    try:
        return _identify(source, result, tracking)
    finally:
        if len(result.content) >= RELEASE_AFTER:
            gc.collect()  # the parse's cycles, then their memory back to the system
            release_memory()


def identify_spilled(
    source: Source, result: FetchResult, path: Path, tracking: Sequence[str]
) -> tuple[ParsedFeed, list[tuple[Identity, Item]]]:
    """``identify`` of the body ``_spill`` wrote to ``path`` (removed once read). The body is
    referenced only by the call, so the memory given back after it includes the body's."""
    try:
        return _identify(source, replace(result, content=_read_once(path)), tracking)
    finally:
        gc.collect()
        release_memory()


def _read_once(path: Path) -> bytes:
    try:
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def _spill(content: bytes) -> Path:
    """``content`` in a new temporary file, for a worker to read (see ``HAND_OFF_AFTER``)."""
    fd, name = tempfile.mkstemp(prefix="aggregator-body-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _identify(
    source: Source, result: FetchResult, tracking: Sequence[str]
) -> tuple[ParsedFeed, list[tuple[Identity, Item]]]:
    parsed = get_adapter(source.kind).parse(source, result)
    parsed = limits.bounded(parsed, result.fetched_at, source.limits.max_entries)
    keys = entry_keys(parsed.items)
    return parsed, [
        (
            Identity(
                source.id,
                key,
                canonical_url(item.link, tracking) if item.link else None,
                content_hash(item.title, item.content or item.summary, item.link, tracking),
            ),
            item,
        )
        for key, item in zip(keys, parsed.items)
    ]


def prepare(
    items: Sequence[Item], base: str | None, options: content.CleanOptions
) -> list[Prepared]:
    """Clean and fingerprint items; relative URLs resolve against each item's ``base``, else its
    link, else ``base`` (the document's link or URL)."""
    return [_prepare_one(limits.bounded_item(item), base, options) for item in items]


def _prepare_one(item: Item, base: str | None, options: content.CleanOptions) -> Prepared:
    against = item.base or item.link or base
    body = content.clean(item.content, against, options)
    teaser = content.clean(item.summary, against, options) if item.summary else None
    summary = teaser.html if teaser else None
    text = body.text if body.html else (teaser.text if teaser else "")
    title = (item.title or "").strip() or fallback_title(text)
    fingerprint, bands, weight = signature(document_text(title, body.html or summary))
    return Prepared(
        body.html, summary, text, title, item.image or body.image, fingerprint, bands, weight
    )


def fallback_title(text: str) -> str:
    text = " ".join(text.split())
    return (text[:77] + "…") if len(text) > 80 else (text or "(untitled)")


# After a document this large, the memory its handling freed goes back to the system: glibc keeps
# freed heap in its arenas otherwise. A worker that had parsed a 13.6 MB feed held 74 MB, 43 after
# the release (31 before the parse).
RELEASE_AFTER = 1 << 20


# A body this large goes to a worker process through a temporary file, not the pool's pipe: a
# pickled call is a copy of the body in the daemon (while it is sent) and another in the worker
# (while it is read back), 13.5 MB each for the 100,000-item feed.
HAND_OFF_AFTER = 1 << 20


def release_memory() -> None:
    """Return freed heap memory to the system (glibc's ``malloc_trim``; nothing elsewhere)."""
    trim = _libc_function("malloc_trim")
    if trim:
        trim(0)


# Blocks of this size or more are mapped on their own and unmapped when freed (glibc's
# M_MMAP_THRESHOLD). glibc raises its threshold to the size of each mapped block freed (up to
# 32 MB), after which bodies of a few MB come from its heap and stay there: the daemon beside the
# hostile sources peaked at 145 MB with the moving threshold, 129 with this one.
MAP_BLOCKS_FROM = 1 << 20
_M_MMAP_THRESHOLD = -3  # malloc.h


def map_big_blocks() -> None:
    """Have glibc map blocks of ``MAP_BLOCKS_FROM`` or more on their own (nothing elsewhere);
    for the daemon and each worker process, at their start."""
    mallopt = _libc_function("mallopt")
    if mallopt:
        mallopt(_M_MMAP_THRESHOLD, MAP_BLOCKS_FROM)


def _libc_function(name: str) -> Any:
    """A function of the C library, or False where there is none of that name (not glibc)."""
    if name not in _libc:
        try:
            _libc[name] = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
        except (OSError, AttributeError):
            _libc[name] = False
    return _libc[name]


_libc: dict[str, Any] = {}


def process_count(configured: int) -> int:
    """Worker processes for a ``[content] processes`` value: 0 means one per CPU."""
    return configured if configured > 0 else (os.cpu_count() or 1)


class Offload:
    """Runs ``identify`` and ``prepare`` in ``processes`` worker processes (1: in a thread)."""

    def __init__(self, processes: int, logging_settings: LoggingSettings | None = None) -> None:
        self.processes = process_count(processes)
        map_big_blocks()  # the process that fetches and stores big bodies
        self._logging = (
            (logging_settings.format, logging_settings.level) if logging_settings else None
        )
        self._pool: ProcessPoolExecutor | None = None

    async def identify(
        self, source: Source, result: FetchResult, tracking: Sequence[str]
    ) -> tuple[ParsedFeed, list[tuple[Identity, Item]]]:
        if self.processes <= 1:
            return await self._run(identify, source, result, tuple(tracking))
        if len(result.content) < HAND_OFF_AFTER:
            return await self._in_worker(identify, source, _portable(result), tuple(tracking))
        try:
            path = await asyncio.to_thread(_spill, result.content)
        except OSError:  # no room for the file: through the pipe, as a smaller body goes
            return await self._in_worker(identify, source, _portable(result), tuple(tracking))
        try:
            bodiless = replace(_portable(result), content=b"")
            return await self._in_worker(identify_spilled, source, bodiless, path, tuple(tracking))
        finally:
            path.unlink(missing_ok=True)  # the worker removes it once read; not if it died first

    async def _in_worker(self, fn: Callable[..., T], source: Source, *args: object) -> T:
        """``fn(source, *args)`` in a worker process, within the source's CPU budget."""
        budget = source.limits.cpu_budget
        if budget <= 0:
            return await self._run(fn, source, *args)
        return await self._run(within_budget, budget, fn, source, *args, budget=budget)

    async def prepare(
        self, items: Sequence[Item], base: str | None, options: content.CleanOptions
    ) -> list[Prepared]:
        if not items:
            return []
        return await self._run(prepare, list(items), base, options)

    def resize(self, processes: int) -> None:
        """Use another number of processes from the next job on (running jobs finish)."""
        count = process_count(processes)
        if count != self.processes:
            self.processes = count
            self.close(wait=False)

    def close(self, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: object, budget: float = 0.0) -> T:
        if self.processes <= 1:
            return await asyncio.to_thread(fn, *args)
        pool = self._pool or self._start()
        started = time.monotonic()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except ParseTimeout:
            self._replace(pool, cancel=False, event="worker_over_budget")
            raise
        except BrokenProcessPool as exc:
            self._replace(pool, cancel=True, event="worker_died")
            if budget and time.monotonic() - started > budget:  # most likely its RLIMIT_CPU
                raise ParseTimeout(_too_long(budget)) from exc
            raise ParseError(f"the worker process parsing this document died ({exc})") from exc

    def _replace(self, pool: ProcessPoolExecutor, *, cancel: bool, event: str) -> None:
        """A new pool for the next jobs; only the first job to notice replaces the pool. Without
        ``cancel`` the old pool's workers finish the jobs they hold, then exit."""
        if self._pool is pool:
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=cancel)
            log.error("event=%s processes=%d", event, self.processes)

    def _start(self) -> ProcessPoolExecutor:
        self._pool = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_started,
            initargs=(self._logging, os.getpid()),
        )
        return self._pool


def within_budget(
    budget: float, fn: Callable[..., T], *args: object, hard_after: float = HARD_STOP_AFTER
) -> T:
    """``fn(*args)`` in this (worker) process, stopped with ParseTimeout after ``budget`` seconds
    of CPU: by SIGPROF between two Python steps, else by RLIMIT_CPU (SIGXCPU kills the process)
    ``hard_after`` seconds later. Runs in the main thread of a worker process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hard_stop = math.ceil(usage.ru_utime + usage.ru_stime + budget + hard_after)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    previous = signal.signal(signal.SIGPROF, _over_budget)
    try:
        resource.setrlimit(
            resource.RLIMIT_CPU, (min(hard_stop, hard) if hard >= 0 else hard_stop, hard)
        )
        _timer.armed = True
        signal.setitimer(signal.ITIMER_PROF, budget)
        try:
            return fn(*args)
        finally:
            _timer.armed = False  # a signal handled after this point is ignored
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _OverBudget:
        raise ParseTimeout(_too_long(budget)) from None
    finally:
        signal.signal(signal.SIGPROF, previous)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


class _Timer:
    armed = False  # whether SIGPROF means the running parse is over its budget


_timer = _Timer()


def _over_budget(signum: int, frame: object) -> None:
    if _timer.armed:
        raise _OverBudget


def _too_long(budget: float) -> str:
    return f"parse took too long (over {budget:g} s of CPU; [content] parse_cpu_budget)"


def _worker_started(logging: tuple[str, str] | None, parent: int) -> None:
    """In each worker: the daemon's log format, and an exit when the daemon is gone. A worker
    holds both ends of the pool's job queue, so a parent killed with SIGKILL would otherwise
    leave it waiting for jobs forever."""
    if logging is not None:
        log_to_stderr(*logging)
    map_big_blocks()
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os._exit(0)


def _portable(result: FetchResult) -> FetchResult:
    """The result with plain-dict headers (a header class of the HTTP client need not pickle)."""
    if type(result.headers) is dict:
        return result
    return replace(result, headers=dict(result.headers))
