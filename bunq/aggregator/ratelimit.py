"""The server-wide HTTP rate limit per client IP: a sliding window counter (the current fixed window's
count plus the previous window's, weighted by how much of it still overlaps), O(1) memory per IP and
swept of idle IPs every `RATE_LIMIT_CLEANUP_MS`. A burst inside one window is limited exactly; across a
window boundary the estimate can differ from a true sliding log by a fraction of one window's count."""

from __future__ import annotations

from collections.abc import Callable

MAX_TRACKED = 1_000_000


class RateLimiter:
    def __init__(self, window_ms: int, limit: int, cleanup_ms: int, clock: Callable[[], int]) -> None:
        self.window = window_ms
        self.limit = limit
        self.cleanup_ms = cleanup_ms
        self.clock = clock
        self.entries: dict[str, list[int]] = {}  # ip → [window start, previous count, current count]
        self.last_sweep = clock()

    def check(self, ip: str) -> tuple[bool, int]:
        """Whether this request may pass (and is counted), and seconds until it could otherwise."""
        now = self.clock()
        if now - self.last_sweep >= self.cleanup_ms:
            self.sweep(now)
        start = now - now % self.window
        entry = self.entries.get(ip)
        if entry is None:
            if len(self.entries) >= MAX_TRACKED:
                self.sweep(now, force=True)
            entry = self.entries[ip] = [start, 0, 0]
        elif entry[0] != start:
            entry[1] = entry[2] if start - entry[0] == self.window else 0
            entry[2] = 0
            entry[0] = start
        overlap = (self.window - (now - start)) / self.window
        if entry[1] * overlap + entry[2] >= self.limit:
            return False, max(1, (start + self.window - now + 999) // 1000)
        entry[2] += 1
        return True, 0

    def sweep(self, now: int, *, force: bool = False) -> None:
        """Forget IPs with no request in the last two windows (or, when full, the oldest half)."""
        self.last_sweep = now
        cutoff = now - 2 * self.window
        self.entries = {ip: e for ip, e in self.entries.items() if e[0] >= cutoff}
        if force and len(self.entries) >= MAX_TRACKED:
            keep = sorted(self.entries.items(), key=lambda item: item[1][0])[len(self.entries) // 2 :]
            self.entries = dict(keep)
