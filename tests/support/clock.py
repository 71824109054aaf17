"""A clock for tests: wall-clock milliseconds that only move when a test says so."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms
