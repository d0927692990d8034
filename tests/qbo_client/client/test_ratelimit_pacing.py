"""The limiter's pacing, windows and batch fallback, driven by a fake clock (no wall time).

Both backends run the same algorithm: the in-process one, and the Redis script with the
fake clock passed in instead of Redis' ``TIME``. Several limiter objects on one Redis
prefix stand in for worker processes sharing a realm.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import ExitStack

import pytest

from qbo_client.ratelimit import (
    BatchWindowFull,
    RealmRateLimiter,
    _MemoryBackend,
    _RedisBackend,
)

REALM = "9130357712345678"
QBO_SECOND = 0.1  # QBO's own "second" and window at 6 s compression, no jitter
QBO_WINDOW = 6.0


class FakeClock:
    """Seconds; ``sleep`` advances time and records each sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def make_limiter(
    request: pytest.FixtureRequest, clock: FakeClock
) -> Callable[..., RealmRateLimiter]:
    """Limiters on the fake clock; every call on Redis is another "process" on the same keys."""
    if request.param == "memory":
        shared: dict[str, RealmRateLimiter] = {}

        def build_memory(**kwargs: object) -> RealmRateLimiter:
            if "limiter" not in shared:
                shared["limiter"] = RealmRateLimiter.from_url(
                    None, clock=clock, sleep=clock.sleep, **kwargs
                )
            return shared["limiter"]

        return build_memory
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")

    def build_redis(**kwargs: object) -> RealmRateLimiter:
        return RealmRateLimiter.from_url(
            url, key_prefix=prefix, clock=clock, sleep=clock.sleep, **kwargs
        )

    return build_redis


def send_times(
    limiters: list[RealmRateLimiter], clock: FakeClock, count: int, *, batch: bool = False
) -> list[float]:
    """``count`` requests taking turns over ``limiters``; the moments they are let go."""
    times = []
    for n in range(count):
        with limiters[n % len(limiters)].acquire(REALM, batch=batch):
            times.append(clock.now)
    return times


def most_in_any(times: list[float], length: float) -> int:
    """The most moments within any half-open interval (t - length, t]."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - length + 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_interval_is_the_slower_of_the_second_and_window_rates() -> None:
    real = RealmRateLimiter.from_url(None)
    # 500 per 60.05 s (120 ms) is slower than 10 per 1.05 s (105 ms).
    assert real.limits.interval_seconds == pytest.approx(60.05 / 500)
    # Compressed 10x: the 50 ms jitter is not, so 10 per 0.15 s (15 ms) binds.
    fast = RealmRateLimiter.from_url(None, window_seconds=6)
    assert fast.limits.second_seconds == pytest.approx(0.15)
    assert fast.limits.window_seconds == pytest.approx(6.05)
    assert fast.limits.interval_seconds == pytest.approx(0.015)
    margin = RealmRateLimiter.from_url(None, margin=0.95)
    assert margin.limits.interval_seconds == pytest.approx(60.05 / 475)


def test_requests_are_spaced_evenly_across_processes(make_limiter, clock: FakeClock) -> None:
    limiters = [make_limiter(window_seconds=6) for _ in range(3)]
    interval = limiters[0].limits.interval_seconds
    times = send_times(limiters, clock, 60)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(interval)
    assert max(gaps) == pytest.approx(interval)
    # QBO refuses an 11th request within its 100 ms; eleven in a row span 150 ms, so that
    # would take one arriving 50 ms (the jitter allowance) later than another.
    assert most_in_any(times, QBO_SECOND) <= 7
    assert times[10] - times[0] == pytest.approx(0.15)


def test_callers_arriving_together_are_given_successive_moments(
    make_limiter, clock: FakeClock
) -> None:
    limiters = [make_limiter(window_seconds=6) for _ in range(5)]
    interval = limiters[0].limits.interval_seconds
    began = clock.now
    moments = []
    with ExitStack() as held:  # five callers hold their slots at once
        for limiter in limiters:
            held.enter_context(limiter.acquire(REALM))
            moments.append(clock.now - began)
    assert moments == pytest.approx([0, interval, 2 * interval, 3 * interval, 4 * interval])
    # Each caller slept only until its own moment: a reservation, not a poll loop.
    assert clock.sleeps == pytest.approx([interval] * 4)


def test_a_long_run_stays_inside_qbo_limits(make_limiter, clock: FakeClock) -> None:
    limiters = [make_limiter(window_seconds=6) for _ in range(2)]
    times = send_times(limiters, clock, 1200)
    assert most_in_any(times, QBO_SECOND) < 10
    assert most_in_any(times, QBO_WINDOW) <= 500
    # ... and uses the budget the pacing allows: one request every 15 ms.
    assert times[-1] - times[0] == pytest.approx(1199 * 0.015)


def test_the_window_count_binds_when_pacing_allows_more(make_limiter, clock: FakeClock) -> None:
    limiter = make_limiter(
        window_seconds=6, requests_per_minute=12, requests_per_second=100, margin=1.0
    )
    # 12 per 6.05 s paced 0.5 s apart: the window, not the pacing, must stop the 13th.
    times = send_times([limiter], clock, 30)
    assert most_in_any(times, limiter.limits.window_seconds) <= 12


def test_batch_window_and_batch_fallback(make_limiter, clock: FakeClock) -> None:
    limiter = make_limiter(window_seconds=6)
    batches = send_times([limiter], clock, 40, batch=True)
    assert len(batches) == 40
    before = clock.now
    with (
        pytest.raises(BatchWindowFull) as full,
        limiter.acquire(REALM, batch=True, batch_wait=False),
    ):
        pass
    assert clock.now == before  # refused at once, nothing slept
    # The batch slot frees when the first batch leaves the window.
    assert full.value.retry_after == pytest.approx(batches[0] + 6.05 - before)
    # Single requests still go: only the batch window is full.
    with limiter.acquire(REALM):
        pass
    # A batch request that may wait goes when the first batch has left the window.
    with limiter.acquire(REALM, batch=True):
        assert clock.now >= batches[0] + 6.05 - 1e-9
    assert limiter.in_flight(REALM) == 0


def test_in_flight_slots_hold_and_free(make_limiter, clock: FakeClock) -> None:
    limiter = make_limiter(window_seconds=6, max_in_flight=2, margin=1.0)
    with limiter.acquire(REALM), limiter.acquire(REALM):
        assert limiter.in_flight(REALM) == 2
    assert limiter.in_flight(REALM) == 0


def test_a_killed_workers_lease_expires(make_limiter, clock: FakeClock) -> None:
    dead = make_limiter(window_seconds=6, max_in_flight=1, margin=1.0, lease_seconds=30)
    slot = dead.acquire(REALM)
    slot.__enter__()  # the worker dies here, never leaves (``slot`` stays referenced)
    began = clock.now
    with make_limiter(window_seconds=6, max_in_flight=1, margin=1.0, lease_seconds=30).acquire(
        REALM
    ):
        assert clock.now - began >= 30


def test_pause_holds_every_process_back(make_limiter, clock: FakeClock) -> None:
    first, second = make_limiter(window_seconds=6), make_limiter(window_seconds=6)
    first.pause(REALM)  # 60 s scaled: 6 s
    assert second.pause_remaining(REALM) == pytest.approx(6)
    first.pause(REALM, 1)  # never shortened
    began = clock.now
    with second.acquire(REALM):
        assert clock.now - began >= 6
    with second.acquire("another-realm"):
        pass


def test_a_caller_waking_late_gives_its_moment_up(make_limiter, clock: FakeClock) -> None:
    # 41 per 6.05 s: paced 147.6 ms apart, within the 150 ms a caller may reserve ahead.
    limiter = make_limiter(window_seconds=6, requests_per_minute=41, margin=1.0)
    interval = limiter.limits.interval_seconds
    began = clock.now
    with limiter.acquire(REALM):
        pass
    late: list[float] = []

    def sleep_late_once(seconds: float) -> None:
        # The first sleep overruns by 30 ms (a busy CPU), beyond the 12.5 ms allowed.
        clock.sleep(seconds + (0.03 if not late else 0))
        late.append(seconds)

    limiter._sleep = sleep_late_once
    with limiter.acquire(REALM):
        second = clock.now
    # Not sent at began + interval + 30 ms: that moment was given up and the next free one,
    # began + 2 intervals, reserved instead.
    assert second - began == pytest.approx(2 * interval)
    assert len(late) == 2
    assert limiter.in_flight(REALM) == 0
    # The given-up reservation left no entry of its own in the window (white box).
    assert window_entries(limiter) == 2


def window_entries(limiter: RealmRateLimiter) -> int:
    backend = limiter._backend
    if isinstance(backend, _RedisBackend):
        return int(backend._redis.zcard(backend._keys(REALM, "window")[0]))
    assert isinstance(backend, _MemoryBackend)
    return len(backend._realms[REALM].window)
