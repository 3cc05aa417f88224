"""Shared fixtures: the fake origin server, paths to shared test data, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.clock import FakeClock

from .harness import harness_factory  # noqa: F401  (a fixture, shared by the pipeline tests)
from .origin import Origin
from .pg import empty_url  # noqa: F401  (a fixture: an empty database on each backend)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
FIXTURES = SHARED / "fixtures"


@pytest.fixture
def origin() -> Iterator[Origin]:
    """A real HTTP server on 127.0.0.1 for the duration of one test."""
    server = Origin().start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
