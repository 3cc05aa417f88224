"""The band-key table's two shapes side by side on SQLite (issue 22): the rowid table with an index
on each column (migrations 3-11) and the (band_key, entry_id) WITHOUT ROWID table (migration 12).
Per simulated source: the candidate look-up of its entries' band keys (the store's window query,
the newest 5 per key), then its entries' and band rows' insert and a commit, as a cold ingest
does. Prints CPU ms per source and the file size of each.

    .venv/bin/python bench/bands_table.py --sources 600
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time

SHAPES = {
    "rowid + 2 indexes": [
        "CREATE TABLE entry_bands (entry_id INTEGER NOT NULL, band_key BIGINT NOT NULL)",
        "CREATE INDEX ix_entry_bands_key ON entry_bands (band_key)",
        "CREATE INDEX ix_entry_bands_entry ON entry_bands (entry_id)",
    ],
    "WITHOUT ROWID (band_key, entry_id) + 1 index": [
        (
            "CREATE TABLE entry_bands (band_key BIGINT NOT NULL, entry_id INTEGER NOT NULL,"
            " PRIMARY KEY (band_key, entry_id)) WITHOUT ROWID"
        ),
        "CREATE INDEX ix_entry_bands_entry ON entry_bands (entry_id)",
    ],
}
LOOKUP = (
    "SELECT b.band_key, e.id FROM (SELECT band_key, entry_id, row_number() OVER (PARTITION BY"
    " band_key ORDER BY entry_id DESC) AS rank FROM entry_bands JOIN entries ON entries.id ="
    " entry_bands.entry_id WHERE band_key IN ({}) AND entries.source_id != ?) AS b JOIN entries"
    " AS e ON e.id = b.entry_id WHERE b.rank <= 5"
)


def run(ddl: list[str], sources: int, entries: int, keys: int, seed: int) -> tuple[float, int]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bands.db")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, source_id TEXT NOT NULL)")
        for statement in ddl:
            db.execute(statement)
        next_id = 1
        start = time.process_time()
        for s in range(sources):
            bands = [[rng.getrandbits(64) - (1 << 63) for _ in range(keys)] for _ in range(entries)]
            flat = [k for row in bands for k in row]
            for i in range(0, len(flat), 500):
                chunk = flat[i : i + 500]
                db.execute(LOOKUP.format(",".join("?" * len(chunk))), [*chunk, f"s{s}"]).fetchall()
            db.execute("BEGIN")
            for row in bands:
                db.execute("INSERT INTO entries (id, source_id) VALUES (?, ?)", (next_id, f"s{s}"))
                db.executemany(
                    "INSERT INTO entry_bands (entry_id, band_key) VALUES (?, ?)",
                    [(next_id, k) for k in row],
                )
                next_id += 1
            db.execute("COMMIT")
        cpu = time.process_time() - start
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return cpu, os.path.getsize(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=600)
    parser.add_argument("--entries", type=int, default=50, help="entries per source")
    parser.add_argument("--keys", type=int, default=20, help="band keys per entry")
    args = parser.parse_args()
    for name, ddl in SHAPES.items():
        cpu, size = run(ddl, args.sources, args.entries, args.keys, seed=22)
        print(
            f"{name:46} {cpu / args.sources * 1000:6.2f} CPU ms per source,"
            f" {size / 1e6:6.1f} MB for {args.sources * args.entries:,} entries"
        )


if __name__ == "__main__":
    main()
