"""A tiny run of the benchmark script: it must run end to end and measure what it claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_quick_bench_ingests_then_gets_304s(tmp_path: Path) -> None:
    """Three generated feeds: the cold run stores every one, the warm run sees only 304s."""
    out = tmp_path / "results.json"
    cmd = [
        sys.executable,
        str(REPO / "bench" / "run.py"),
        "--quick",
        "--sources",
        "3",
        "--only",
        "cold,warm",
        "--no-reader",
        "--workdir",
        str(tmp_path),
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["cold_ours"]["statuses"] == {"ok": 3}
    assert results["cold_ours"]["added"] == results["cold_floor"]["entries"] > 0
    assert results["warm_ours"]["statuses"] == {"not_modified": 3}
    assert "cold ingest, sources/s" in proc.stdout and "warm refresh" in proc.stdout


def test_generated_feeds_are_deterministic_and_mixed() -> None:
    """The same seed gives the same bytes; formats and languages are mixed as documented."""
    sys.path.insert(0, str(REPO / "bench"))
    from perf import feedgen

    specs = feedgen.specs(300, seed=7)
    assert feedgen.render(specs[5], 7) == feedgen.render(specs[5], 7)
    assert {s.kind for s in specs} == {"rss", "atom"}
    chinese = sum(s.chinese for s in specs) / len(specs)
    assert 0.25 < chinese < 0.42
    assert all(20 <= s.entries <= 100 and 10_000 <= s.target_bytes <= 300_000 for s in specs)
