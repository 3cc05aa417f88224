"""The store's database connection: the engine, its transactions, and SQLAlchemy's errors made ours.

Owns: creating the engine (SQLite in WAL mode with its pragmas; PostgreSQL through psycopg with
connect, statement and TCP timeouts), the ``Queries`` base every domain module of the store
builds on (``connect``/``begin``, ``ping``, ``close``), and the one place where a SQLAlchemy error
becomes a ``StoreError``: each query of the store runs inside ``connect()`` or ``begin()``, which
convert whatever SQLAlchemy raises, so no SQLAlchemy exception leaves the store. An outage (the
database refused, dropped the connection, timed out, or a lock wait ran out) becomes
``StoreOutage``, anything else (a bug, a constraint) plain ``StoreError``; the original is the
``__cause__``. Does not own the schema (schema.py) or any domain's SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url

from ..config.settings import StorageSettings
from ..errors import StoreError, StoreOutage

T = TypeVar("T")

# SQLAlchemy's errors that mean the database cannot be reached or did not answer in time (SQLite's
# "database is locked" and "no such table" are OperationalErrors too, as they always were here).
_OUTAGES = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
)


def converted(exc: sa_exc.SQLAlchemyError, what: str = "") -> StoreError:
    """Our error for a SQLAlchemy one (raise it ``from exc``): ``StoreOutage`` for an outage,
    ``StoreError`` otherwise; its message is ``what`` (if given) and the original's first line."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    kind = StoreOutage if isinstance(exc, _OUTAGES) else StoreError
    return kind(f"{what}: {first}" if what else first)


class Queries:
    """What every part of ``SQLStore`` shares: its engine and the transactions that convert
    errors. The domain modules' classes derive from it; ``SQLStore`` composes them."""

    engine: Engine
    dialect: str

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads; a SQLAlchemy error inside the block is raised as ours."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise converted(exc) from exc

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction, committed when the block ends (rolled back when it
        raises); a SQLAlchemy error inside it or at the commit is raised as ours."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise converted(exc) from exc

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except sa_exc.SQLAlchemyError:
            return False


def make_engine(url: str, limits: StorageSettings | None = None) -> Engine:
    """An engine for ``url`` whose waits are bounded by ``limits`` (the [storage] timeouts).

    PostgreSQL: psycopg's ``connect_timeout`` (whole seconds, at least 2), the server's
    ``statement_timeout`` set for every session, TCP keepalives and ``tcp_user_timeout`` (a
    connection into a dead network fails instead of waiting for ever), a bounded wait for a pooled
    connection, and a ping before a pooled connection is reused, so the daemon reconnects by
    itself after an outage. Settings given in the URL's query win over these."""
    if not url.startswith(("sqlite:", "postgresql://", "postgres://")):
        raise StoreError(
            f"unsupported database URL {redact(url)}: use sqlite:///PATH or "
            "postgresql://user@host/db"
        )
    limits = limits or StorageSettings(url=url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, limits)
    url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_timeout=limits.pool_timeout,
        connect_args=_pg_connect_args(make_url(url).query, limits),
    )


def _pg_connect_args(query: Mapping[str, Any], limits: StorageSettings) -> dict[str, Any]:
    waits: dict[str, Any] = {
        "connect_timeout": max(1, math.ceil(limits.connect_timeout)),
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": int((limits.connect_timeout + limits.statement_timeout + 30) * 1000),
    }
    found = {k: v for k, v in waits.items() if k not in query}
    given = query.get("options", "")  # after ours: a -c in the URL wins
    ours = f"-c statement_timeout={round(limits.statement_timeout * 1000)}"
    found["options"] = f"{ours} {given if isinstance(given, str) else ' '.join(given)}".strip()
    return found


def _sqlite_engine(url: str, limits: StorageSettings) -> Engine:
    """SQLite in WAL mode; ``statement_timeout`` bounds the wait for another connection's lock
    (the busy timeout), ``pool_timeout`` the wait for a pooled connection."""
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of {path}: {exc.strerror}") from exc
    busy = limits.statement_timeout or 30.0
    engine = create_engine(
        url,
        pool_timeout=limits.pool_timeout,
        connect_args={"check_same_thread": False, "timeout": busy},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(busy * 1000)}")
        cur.close()

    return engine


def insert_ignoring_conflicts(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def redact(url: str) -> str:
    """``url`` with its user and password hidden, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
