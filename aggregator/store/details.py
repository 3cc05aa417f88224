"""The SQL behind retried detail fetches: which entries of a source still miss their detail (full
text), how often their fetch failed, and when to try again.

A mixin of ``SQLStore`` (it uses its ``engine``). The decisions (which keys are due, the next retry
time, when attempts are used up) are the pipeline's (pipeline/details.py, schedule.py); this
module only reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select

from ..models import DetailAttempt
from .engine import Queries
from .schema import detail_retries


class DetailQueries(Queries):
    def detail_attempts(self, source_id: str) -> dict[str, DetailAttempt]:
        """The source's entries whose detail fetch failed, by key."""
        query = select(detail_retries).where(detail_retries.c.source_id == source_id)
        with self.connect() as conn:
            return {
                r["key"]: DetailAttempt(r["key"], r["attempts"], r["error"], r["retry_at"])
                for r in conn.execute(query).mappings()
            }

    def save_detail_attempts(
        self, source_id: str, failed: Sequence[DetailAttempt], cleared: Sequence[str]
    ) -> None:
        """Record failed detail fetches (replacing earlier rows of the same keys) and forget the
        keys in ``cleared`` (their detail arrived, or they left the source's document)."""
        gone = list({*cleared, *(a.key for a in failed)})
        with self.begin() as conn:
            for start in range(0, len(gone), 500):
                conn.execute(
                    delete(detail_retries).where(
                        detail_retries.c.source_id == source_id,
                        detail_retries.c.key.in_(gone[start : start + 500]),
                    )
                )
            if failed:
                conn.execute(
                    detail_retries.insert(),
                    [
                        {
                            "source_id": source_id,
                            "key": a.key,
                            "attempts": a.attempts,
                            "error": a.error,
                            "retry_at": a.retry_at,
                        }
                        for a in failed
                    ],
                )
