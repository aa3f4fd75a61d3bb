"""Jobs per minute by status for the last hour, kept up to date from the decision stream.

Each refresh counts only the entries added since the previous one (a cursor on the stream id),
newest first, inside Redis (``decision_counts.lua``), in at most ``TRIPS`` calls of ``CAP``
entries: a few milliseconds of Redis time per call, whatever the traffic. When more finished
than that since the last refresh (over ~800 jobs a second at the page's 5 s refresh), the minutes
not read are filled in at the rate of the newest entries read, and listed as ``estimated``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from worker.observe.flow import CAP, DecisionCounter

MINUTES: Final = 60
MINUTE_MS: Final = 60_000
TRIPS: Final = 4
STATUSES: Final = ("succeeded", "failed", "rejected")


@dataclass
class MinuteCounts:
    counter: DecisionCounter
    cursor: str | None = None  # newest entry id counted
    counts: dict[int, Counter[str]] = field(default_factory=dict)  # minute start ms -> status -> n
    estimated: set[int] = field(default_factory=set)  # minutes holding extrapolated counts

    async def refresh(self, now_ms: int) -> dict[str, Any]:
        """The chart's document: minute starts (epoch s) and one series per status."""
        first = (now_ms // MINUTE_MS - MINUTES + 1) * MINUTE_MS
        # Continue after the newest entry counted, unless it is older than the chart (a page
        # left closed for an hour must not make the next refresh count what nobody will see).
        floor_ms = _ms(self.cursor) if self.cursor and _ms(self.cursor) >= first else first
        low = f"({self.cursor}" if self.cursor and _ms(self.cursor) >= first else str(first)
        high, newest, read = "+", None, Counter[str]()
        oldest_ms = None
        for _ in range(TRIPS):
            c = await self.counter.count(low, high, descending=True, cap=CAP, bucket_ms=MINUTE_MS)
            for (bucket, _queue, status), n in c.by_bucket.items():
                self.counts.setdefault(bucket, Counter())[status] += n
                read[status] += n
            newest = newest or c.first_id or None
            oldest_ms = _ms(c.last_id) if c.scanned >= CAP else None
            if oldest_ms is None:
                break
            high = f"({c.last_id}"
        if oldest_ms is not None and newest is not None:
            start = await self.counter.oldest_id(low, high)  # the gap holds data from here on
            if start is not None:
                self._extrapolate(max(floor_ms, _ms(start)), oldest_ms, _ms(newest), read)
        if newest:
            self.cursor = newest
        for bucket in [b for b in self.counts if b < first]:
            del self.counts[bucket]
        self.estimated = {b for b in self.estimated if b >= first}
        starts = [first + i * MINUTE_MS for i in range(MINUTES)]
        seen = {s for c in self.counts.values() for s in c}
        statuses = [*STATUSES, *sorted(seen - set(STATUSES))]
        return {
            "t": [s // 1000 for s in starts],
            "series": {s: [self.counts.get(b, Counter()).get(s, 0) for b in starts] for s in statuses},
            "estimated": [b // 1000 for b in sorted(self.estimated)],
        }

    def _extrapolate(self, gap_start: int, gap_end: int, newest: int, read: Counter[str]) -> None:
        """Fill ``[gap_start, gap_end)``, not read, at the rate of ``read`` over ``[gap_end, newest]``."""
        span = max(1, newest - gap_end)
        start = gap_start
        while start < gap_end:
            bucket = start // MINUTE_MS * MINUTE_MS
            end = min(gap_end, bucket + MINUTE_MS)
            row = self.counts.setdefault(bucket, Counter())
            for status, n in read.items():
                row[status] += round(n * (end - start) / span)
            self.estimated.add(bucket)
            start = end


def _ms(stream_id: str) -> int:
    return int(stream_id.split("-", 1)[0])
