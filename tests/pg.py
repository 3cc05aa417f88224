"""PostgreSQL for tests: one probe per run, and a throwaway schema per test.

The server is the one CI runs on the machine (``postgresql://postgres@127.0.0.1:5432/test``, trust
auth), or whatever ``AGGREGATOR_TEST_PG`` names. When it cannot be reached, tests that need it are
skipped with the reason. Each test gets a fresh schema in that database, selected through the URL's
``options=-csearch_path=…``, and the schema is dropped afterwards.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_URL = os.environ.get("AGGREGATOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def pg_problem() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can (probed once per run)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"PostgreSQL not reachable at {PG_URL} ({first}); set AGGREGATOR_TEST_PG to use another"
        )
    return None


def require_pg() -> None:
    problem = pg_problem()
    if problem:
        pytest.skip(problem)


@contextmanager
def pg_schema() -> Iterator[str]:
    """A store URL whose tables live in a new, empty schema; dropped on exit."""
    import psycopg

    require_pg()
    name = f"agg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def empty_tables(url: str) -> None:
    """Remove every row in the store at ``url``: a clean slate, faster than a new schema."""
    import psycopg

    with psycopg.connect(url) as conn:
        for table in (
            "fetch_log",
            "tombstones",
            "drops",
            "detail_retries",
            "entry_bands",
            "entries",
            "sources",
        ):
            conn.execute(f"DELETE FROM {table}")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        with pg_schema() as url:
            yield url
