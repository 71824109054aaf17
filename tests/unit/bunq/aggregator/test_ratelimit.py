"""The aggregator's HTTP rate limiter: an exact sliding window per IP, driven by a fake clock."""

from __future__ import annotations

import random

import pytest

from bunq.aggregator import ratelimit
from bunq.aggregator.ratelimit import RateLimiter
from tests.support.clock import FakeClock


def limiter(window: int, limit: int, clock: FakeClock, cleanup: int = 60_000) -> RateLimiter:
    return RateLimiter(window, limit, cleanup, clock)


def test_a_client_is_admitted_again_after_a_window_of_silence() -> None:
    clock = FakeClock()
    rl = limiter(60_000, 5, clock)
    assert all(rl.check("a")[0] for _ in range(5))
    assert rl.check("a") == (False, 60)
    clock.advance(59_999)
    assert rl.check("a")[0] is False
    clock.advance(1)
    assert all(rl.check("a")[0] for _ in range(5))
    assert rl.check("a")[0] is False
    assert rl.check("b")[0] is True


def test_retry_after_is_the_time_until_the_oldest_admission_leaves_the_window() -> None:
    clock = FakeClock()
    rl = limiter(10_000, 3, clock)
    for step in (0, 2_500, 4_000):
        clock.advance(step)
        assert rl.check("ip")[0]
    # admitted at 0, 2500 and 6500; now 6500: the one at 0 leaves at 10000
    assert rl.check("ip") == (False, 4)
    clock.advance(3_001)  # 9501: 499 ms left, rounded up to a whole second
    assert rl.check("ip") == (False, 1)
    clock.advance(499)
    assert rl.check("ip") == (True, 0)
    assert rl.check("ip") == (False, 3)  # now the one at 2500 is the oldest: 2500 ms left


def test_refused_requests_are_not_counted() -> None:
    clock = FakeClock()
    rl = limiter(1_000, 2, clock)
    assert rl.check("ip")[0] and rl.check("ip")[0]
    for _ in range(50):
        clock.advance(10)
        assert not rl.check("ip")[0]
    clock.advance(500)  # 1000 ms after both admissions, with 50 refusals in between
    assert rl.check("ip")[0] and rl.check("ip")[0]


def test_never_more_than_the_limit_in_any_window_and_exactly_as_a_sliding_log() -> None:
    rng = random.Random(7)
    for window, limit in ((1_000, 1), (1_000, 3), (60_000, 20), (500, 7)):
        clock = FakeClock()
        rl = limiter(window, limit, clock, cleanup=window // 2 + 1)
        admitted: list[int] = []
        for _ in range(3_000):
            clock.advance(rng.choice((0, 0, 1, 3, window // 50, window // 7, window // 2, window)))
            expected = sum(1 for t in admitted if clock.now - t < window) < limit
            allowed, _ = rl.check("ip")
            assert allowed is expected, (window, limit, clock.now)
            if allowed:
                admitted.append(clock.now)
        assert len(admitted) > limit
        for i in range(len(admitted) - limit):
            assert admitted[i + limit] - admitted[i] >= window  # limit + 1 admissions never fit in one window


def test_the_log_of_an_ip_never_holds_more_than_limit_times() -> None:
    clock = FakeClock()
    rl = limiter(100, 4, clock)
    for _ in range(1_000):
        rl.check("ip")
        clock.advance(7)
    assert len(rl.logs["ip"].times) == 4


def test_idle_ips_are_swept_and_the_tracked_ips_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    rl = limiter(1_000, 2, clock, cleanup=5_000)
    for i in range(10):
        rl.check(f"10.0.0.{i}")
    clock.advance(5_000)
    assert rl.check("10.0.0.99")[0]
    assert set(rl.logs) == {"10.0.0.99"}
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 8)
    for i in range(20):
        clock.advance(1)
        assert rl.check(f"192.0.2.{i}")[0]
    assert len(rl.logs) <= 8 and "192.0.2.19" in rl.logs
