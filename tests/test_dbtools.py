"""`aggregator db upgrade | copy | prune` and the retention job, through the real CLI and stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from aggregator.cli import parser as cli
from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.runtime.scheduler import Retention
from aggregator.store import SQLStore
from aggregator.store.schema import LATEST, tombstones

from .pg import pg_schema
from .test_store import T0, add, entry, everything, fetched, ok, src


@pytest.fixture
def target_url(empty_url: str) -> str:
    """An empty database to copy into (SQLite and PostgreSQL)."""
    return empty_url


def write_config(tmp: Path, url: str, extra: str = "") -> Path:
    path = tmp / "agg.toml"
    path.write_text(f'[storage]\nurl = "{url}"\n{extra}\n', encoding="utf-8")
    return path


def filled_sqlite(tmp: Path) -> str:
    """A SQLite store with every table in use: sources, entries (one merged into another,
    ids with a gap), tombstones and fetch-log lines."""
    url = f"sqlite:///{tmp / 'source.db'}"
    store = SQLStore(url, T0)
    store.sync_sources([src("a", category=("Tech",)), src("b"), src("c")], T0)
    [first, *_] = add(
        store,
        "a",
        [entry("a", f"{i}", T0 - timedelta(days=i), category=("Tech",)) for i in range(6)],
    )
    add(store, "b", [entry("b", "1", duplicate_of=first), entry("b", "2")])
    store.prune(T0, max_per_source=4, max_age=None)  # two tombstones, a gap in the ids
    [state] = store.claim_due(T0 + timedelta(days=1), 1, "w", 60)
    store.apply(fetched(state, T0), [], [], ok(state.source_id), T0, "w")
    store.close()
    return url


def snapshot(url: str) -> dict[str, object]:
    store = SQLStore(url, T0)
    try:
        with store.engine.connect() as conn:
            graves = sorted(
                tuple(r) for r in conn.execute(select(tombstones.c.source_id, tombstones.c.key))
            )
        return {
            "entries": store.list_entries(everything(merge_duplicates=False)),
            "states": store.list_states(include_disabled=True),
            "history": {s: store.fetch_history(s) for s in ("a", "b", "c")},
            "tombstones": graves,
        }
    finally:
        store.close()


def test_upgrade_prints_the_schema_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db upgrade` migrates a new database to the latest version, and says so; again, nothing."""
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'new.db'}")
    assert cli.main(["--config", str(cfg), "db", "upgrade"]) == 0
    assert f"schema version {LATEST} (applied {LATEST} migration(s))" in capsys.readouterr().out
    assert cli.main(["--config", str(cfg), "db", "upgrade"]) == 0
    assert f"schema version {LATEST} (already up to date)" in capsys.readouterr().out


def test_copy_moves_every_row_with_its_id(
    tmp_path: Path, target_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db copy --to URL` reproduces sources, entries (ids, merges), tombstones and the fetch log
    in the target, reports verified counts, and new entries there continue after the copied ids."""
    source_url = filled_sqlite(tmp_path)
    cfg = write_config(tmp_path, source_url)
    assert cli.main(["--config", str(cfg), "db", "copy", "--to", target_url]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "copied and verified: sources 3, entries 6, entry_bands 0, tombstones 2, fetch_log 3, drops 0"
        in out
    )
    assert snapshot(target_url) == snapshot(source_url)

    target = SQLStore(target_url, T0)
    try:
        top = max(e.id or 0 for e in target.list_entries(everything(merge_duplicates=False)))
        stamp = target.last_change(everything())
        [new_id] = add(target, "c", [entry("c", "1")])
        assert new_id == top + 1
        assert target.last_change(everything()).revisions > stamp.revisions
    finally:
        target.close()


def test_copy_refuses_a_target_with_rows_unless_forced(
    tmp_path: Path, target_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second copy into the same target is refused, naming what is there; --force replaces."""
    source_url = filled_sqlite(tmp_path)
    cfg = write_config(tmp_path, source_url)
    assert cli.main(["--config", str(cfg), "db", "copy", "--to", target_url]) == 0
    capsys.readouterr()
    assert cli.main(["--config", str(cfg), "db", "copy", "--to", target_url]) == 1
    assert "not empty (sources=3, entries=6" in capsys.readouterr().err
    assert cli.main(["--config", str(cfg), "db", "copy", "--to", target_url, "--force"]) == 0
    assert snapshot(target_url) == snapshot(source_url)


def test_prune_command_applies_the_retention_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db prune` removes what [retention] says, reports it, and says so when nothing is set."""
    source_url = filled_sqlite(tmp_path)
    plain = write_config(tmp_path, source_url)
    assert cli.main(["--config", str(plain), "db", "prune"]) == 0
    assert "no [retention] limits are set" in capsys.readouterr().out
    cfg = write_config(tmp_path, source_url, "[retention]\nmax_entries_per_source = 2\n")
    assert cli.main(["--config", str(cfg), "db", "prune"]) == 0
    assert "removed 2 entries from 1 sources" in capsys.readouterr().out


async def test_retention_job_prunes_with_the_current_limits(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The maintenance job does nothing without limits and prunes by age once they are set,
    reading the settings at each run (so a reload applies)."""
    store = SQLStore(f"sqlite:///{tmp_path / 'r.db'}", clock.now())
    store.sync_sources([src("a")], clock.now())
    add(
        store,
        "a",
        [entry("a", f"{d}", clock.now() - timedelta(days=d)) for d in (1, 5, 9)],
        clock.now(),
    )
    settings = config.parse("")
    job = Retention(store, clock, lambda: settings.retention)
    assert await job.run() is None
    settings = config.parse('[retention]\nmax_age = "7d"\n')
    result = await job.run()
    assert result is not None and result.removed == 1
    assert store.tombstoned("a", ["1", "5", "9"]) == {"9"}
    store.close()


def test_copy_back_from_postgresql_to_sqlite(tmp_path: Path) -> None:
    """A store copied to PostgreSQL and back to a new SQLite file is the store it started as."""
    from aggregator.cli.db import copy_store
    from aggregator.clock import SystemClock

    source_url = filled_sqlite(tmp_path)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    with pg_schema() as pg_url:
        copy_store(source_url, pg_url, SystemClock())
        report = copy_store(pg_url, back, SystemClock())
    assert report.rows == {
        "sources": 3,
        "entries": 6,
        "entry_bands": 0,
        "tombstones": 2,
        "fetch_log": 3,
        "drops": 0,
        "detail_retries": 0,
    }
    assert snapshot(back) == snapshot(source_url)


async def test_the_scheduler_runs_retention_as_a_maintenance_job(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A scheduler given the retention job schedules it beside the dispatcher; without, only the
    dispatcher runs."""
    from aggregator.runtime.scheduler import Dispatcher, Scheduler

    store = SQLStore(f"sqlite:///{tmp_path / 's.db'}", clock.now())
    settings = config.parse('[retention]\nmax_age = "7d"\n')
    dispatcher = Dispatcher(store, None, dict, clock, "w", 10, 60)  # type: ignore[arg-type]
    retention = Retention(store, clock, lambda: settings.retention)
    with_job = Scheduler(dispatcher, 3600, retention)
    without = Scheduler(dispatcher, 3600)
    for scheduler in (with_job, without):
        scheduler.start()
    try:
        assert with_job.retention_every() == retention.every
        assert without.retention_every() is None
    finally:
        with_job.shutdown()
        without.shutdown()
        store.close()
