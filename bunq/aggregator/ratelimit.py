"""The server-wide HTTP rate limit per client IP, kept by the aggregator for every front: an exact sliding
log. A request is admitted iff fewer than `limit` requests of its IP were admitted in the last `window`
ms; refused requests are not counted. Each IP keeps at most `limit` admission times in a ring buffer
(8 bytes each), and IPs idle for a whole window are swept every `RATE_LIMIT_CLEANUP_MS`."""

from __future__ import annotations

from array import array
from collections.abc import Callable

MAX_TRACKED = 1_000_000


class AdmissionLog:
    """The last (at most `limit`) admission times of one IP, oldest first from `head`."""

    __slots__ = ("head", "times")

    def __init__(self) -> None:
        self.times = array("q")
        self.head = 0

    def oldest(self) -> int:
        return self.times[self.head]

    def newest(self) -> int:
        return self.times[self.head - 1]

    def admit(self, now: int, limit: int) -> None:
        if len(self.times) < limit:
            self.times.append(now)  # head stays 0 until the buffer is full
        else:
            self.times[self.head] = now
            self.head = (self.head + 1) % limit


class RateLimiter:
    def __init__(self, window_ms: int, limit: int, cleanup_ms: int, clock: Callable[[], int]) -> None:
        self.window = window_ms
        self.limit = limit
        self.cleanup_ms = cleanup_ms
        self.clock = clock
        self.logs: dict[str, AdmissionLog] = {}
        self.last_sweep = clock()

    def check(self, ip: str) -> tuple[bool, int]:
        """Whether this request may pass (and is counted), and else the seconds until it could."""
        if self.limit <= 0:
            return True, 0
        now = self.clock()
        if now - self.last_sweep >= self.cleanup_ms:
            self.sweep(now)
        log = self.logs.get(ip)
        if log is None:
            if len(self.logs) >= MAX_TRACKED:
                self.sweep(now, force=True)
            log = self.logs[ip] = AdmissionLog()
        # The log holds the last `limit` admissions: `limit` of them lie in the window iff its oldest does.
        if len(log.times) >= self.limit and now - log.oldest() < self.window:
            return False, max(1, -(-(log.oldest() + self.window - now) // 1000))
        log.admit(now, self.limit)
        return True, 0

    def sweep(self, now: int, *, force: bool = False) -> None:
        """Forget IPs with no admission in the last window (or, when still full, the longest idle half)."""
        self.last_sweep = now
        self.logs = {ip: log for ip, log in self.logs.items() if now - log.newest() < self.window}
        if force and len(self.logs) >= MAX_TRACKED:
            keep = sorted(self.logs.items(), key=lambda item: item[1].newest())[len(self.logs) // 2 :]
            self.logs = dict(keep)
