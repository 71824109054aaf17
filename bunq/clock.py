"""The clocks every process reads, in integer milliseconds: the wall's (timestamps, schedules, what a
client sees) and the monotonic one (deadlines, windows). Parts take a `Clock` as a parameter, so that a
test can hand them a fake one."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000
