"""The per-realm limiter on Redis (shared by processes) and in memory. QBO's limits:
https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

import pytest

from qbo_client.errors import ThrottledError, TransientError
from qbo_client.ratelimit import NullRateLimiter, RealmRateLimiter

REALM = "9130357712345678"


class FakeClock:
    """Seconds; ``sleep`` advances time (the single-threaded tests below wait on it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> Callable[..., RealmRateLimiter]:
    """Builds limiters; on Redis, every limiter built in one test shares the same keys, like
    worker processes on different machines."""
    if request.param == "memory":
        shared: dict[str, RealmRateLimiter] = {}
        lock = threading.Lock()

        def build_memory(**kwargs: object) -> RealmRateLimiter:
            # One process: the in-memory limiter is shared, so hand out the same object.
            with lock:
                if "limiter" not in shared:
                    shared["limiter"] = RealmRateLimiter.from_url(None, **kwargs)
                return shared["limiter"]

        return build_memory
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")

    def build_redis(**kwargs: object) -> RealmRateLimiter:
        return RealmRateLimiter.from_url(url, key_prefix=prefix, **kwargs)

    return build_redis


class VirtualClock:
    """Time shared by several threads, with no wall time in it: it stands still while any
    thread works and, once every thread sleeps, jumps to the earliest wake-up. A moment read
    right after ``acquire`` returns is then exactly the moment the limiter let the caller go.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self._cond = threading.Condition()
        self._running = 0  # worker threads not asleep
        self._wakes: list[float] = []

    def enlist(self, threads: int) -> None:
        """``threads`` workers are about to start: each holds time still until it sleeps."""
        with self._cond:
            self._running += threads

    def __call__(self) -> float:
        with self._cond:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        if seconds == 0:
            return
        with self._cond:
            wake = self.now + seconds
            heapq.heappush(self._wakes, wake)
            self._running -= 1
            self._advance()
            while self.now < wake:
                self._cond.wait(timeout=1)

    def done(self) -> None:
        """A worker thread finished: it no longer holds time still."""
        with self._cond:
            self._running -= 1
            self._advance()

    def _advance(self) -> None:
        if self._running or not self._wakes:
            return
        self.now = max(self.now, self._wakes[0])
        while self._wakes and self._wakes[0] <= self.now:
            heapq.heappop(self._wakes)
            self._running += 1  # the woken thread runs again (it will see ``now``)
        self._cond.notify_all()


def hammer(
    limiter_for: Callable[[int, VirtualClock], RealmRateLimiter],
    *,
    threads: int,
    per_thread: int,
    hold: float = 0.0,
    batch: bool = False,
    realm: str = REALM,
    clock: VirtualClock | None = None,
) -> tuple[list[float], int]:
    """``threads`` workers each acquire ``per_thread`` slots, holding each for ``hold``
    seconds, on one virtual clock; returns the moments they were let go (sorted) and the
    most slots held at once."""
    clock = clock or VirtualClock()
    clock.enlist(threads)
    starts: list[float] = []
    lock = threading.Lock()
    active = 0
    peak = 0

    def worker(index: int) -> None:
        nonlocal active, peak
        try:
            limiter = limiter_for(index, clock)
            for _ in range(per_thread):
                with limiter.acquire(realm, batch=batch):
                    with lock:
                        starts.append(clock())
                        active += 1
                        peak = max(peak, active)
                    clock.sleep(hold)
                    with lock:
                        active -= 1
        finally:
            clock.done()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in pool)
    return sorted(starts), peak


def max_in_any_window(starts: list[float], length: float) -> int:
    """The most moments within any half-open interval (t - length, t]."""
    best = 0
    j = 0
    for i, t in enumerate(starts):
        while starts[j] <= t - length + 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_margin_and_compression_set_the_budget() -> None:
    full = RealmRateLimiter.from_url(None)  # the default margin spends the published budget
    assert full.limits.requests_per_window == 500
    assert full.limits.requests_per_second == 10
    assert full.limits.batch_per_window == 40
    assert full.limits.max_in_flight == 9  # QBO frees a slot a moment after answering
    limiter = RealmRateLimiter.from_url(None, margin=0.95)
    assert limiter.limits.requests_per_window == 475
    assert limiter.limits.requests_per_second == 9
    assert limiter.limits.batch_per_window == 38
    assert limiter.limits.max_in_flight == 9
    assert limiter.default_pause_seconds == 60
    assert limiter.limits.second_seconds == pytest.approx(1.05)  # 50 ms jitter allowance
    fast = RealmRateLimiter.from_url(None, window_seconds=6, margin=1.0, jitter_seconds=0)
    assert fast.limits.second_seconds == pytest.approx(0.1)
    assert fast.limits.window_seconds == pytest.approx(6)
    assert fast.limits.requests_per_second == 10
    assert fast.default_pause_seconds == pytest.approx(6)


def test_per_second_window_holds_under_concurrency(make_limiter) -> None:
    # window 6 s → "one second" is 0.1 s; 9 per 0.1 s after the margin.
    starts, _ = hammer(
        lambda i, clock: make_limiter(window_seconds=6, clock=clock, sleep=clock.sleep),
        threads=8,
        per_thread=6,
    )
    assert len(starts) == 48
    assert max_in_any_window(starts, 0.1) <= 9
    # 48 requests at 9 per 0.1 s cannot all go within 0.5 s.
    assert starts[-1] - starts[0] >= 0.5


def test_request_window_holds(make_limiter) -> None:
    build = lambda i, clock: make_limiter(  # noqa: E731
        window_seconds=0.8,
        requests_per_minute=12,
        requests_per_second=100,
        margin=1.0,
        clock=clock,
        sleep=clock.sleep,
    )
    starts, _ = hammer(build, threads=4, per_thread=4)
    assert len(starts) == 16
    assert max_in_any_window(starts, 0.8) <= 12
    assert starts[-1] - starts[0] >= 0.8  # the 13th had to wait for the window


def test_batch_window_applies_only_to_batch_requests(make_limiter) -> None:
    build = lambda i, clock: make_limiter(  # noqa: E731
        window_seconds=0.6,
        batch_requests_per_minute=3,
        requests_per_second=100,
        margin=1.0,
        clock=clock,
        sleep=clock.sleep,
    )
    clock = VirtualClock()  # one limiter (and so one clock) serves both rounds in memory
    plain, _ = hammer(build, threads=3, per_thread=3, clock=clock)
    # 9 plain requests: no batch limit applies, only the pacing of 100 per "second" (6 ms).
    assert plain[-1] - plain[0] < 0.1
    starts, _ = hammer(build, threads=2, per_thread=2, batch=True, realm="other-realm", clock=clock)
    assert max_in_any_window(starts, 0.6) <= 3
    assert starts[-1] - starts[0] >= 0.6


def test_in_flight_cap(make_limiter) -> None:
    # Pacing spreads 500 per minute 120 ms apart; a budget this large paces 0.6 ms apart, so
    # only the in-flight cap keeps the 8 threads' 50 ms requests from overlapping.
    build = lambda i, clock: make_limiter(  # noqa: E731
        max_in_flight=3,
        requests_per_second=100_000,
        requests_per_minute=100_000,
        margin=1.0,
        clock=clock,
        sleep=clock.sleep,
    )
    starts, peak = hammer(build, threads=8, per_thread=2, hold=0.05)
    assert len(starts) == 16
    assert peak == 3


def test_pause_blocks_every_limiter_for_that_realm_only(make_limiter, clock) -> None:
    first = make_limiter(window_seconds=60, clock=clock, sleep=clock.sleep)
    second = make_limiter(window_seconds=60, clock=clock, sleep=clock.sleep)
    first.pause(REALM, 0.4)
    began = clock()
    with second.acquire("another-realm"):
        assert clock() == began  # another realm is not paused: no wait at all
    with second.acquire(REALM):
        waited = clock() - began
    # The pause, plus at most one poll's jitter (25 ms at a 60 s window).
    assert 0.4 <= waited < 0.45


def test_pause_is_extended_never_shortened(make_limiter, clock) -> None:
    limiter = make_limiter(window_seconds=60, clock=clock, sleep=clock.sleep)
    limiter.pause(REALM, 0.5)
    limiter.pause(REALM, 0.05)
    assert limiter.pause_remaining(REALM) == pytest.approx(0.5)


def test_default_pause_scales_with_window(make_limiter, clock) -> None:
    limiter = make_limiter(window_seconds=0.6, clock=clock, sleep=clock.sleep)
    limiter.pause(REALM)  # default: 60 s scaled by 0.6/60
    assert limiter.pause_remaining(REALM) == pytest.approx(0.6)


def test_waiting_too_long_raises_throttled(make_limiter, clock) -> None:
    limiter = make_limiter(window_seconds=60, max_wait_seconds=0.2, clock=clock, sleep=clock.sleep)
    limiter.pause(REALM, 5)
    began = clock()
    with pytest.raises(ThrottledError), limiter.acquire(REALM):
        pass
    assert clock() - began <= 0.2  # gave up without waiting past max_wait_seconds


def test_slots_are_shared_between_processes_on_redis(redis_url: str, redis_prefix: str) -> None:
    # Separate limiter objects stand in for separate worker processes.
    _, peak = hammer(
        lambda i, clock: RealmRateLimiter.from_url(
            redis_url,
            key_prefix=redis_prefix,
            max_in_flight=2,
            requests_per_second=100_000,
            requests_per_minute=100_000,
            margin=1.0,
            clock=clock,
            sleep=clock.sleep,
        ),
        threads=6,
        per_thread=2,
        hold=0.05,
    )
    assert peak == 2


def test_killed_worker_slot_expires_with_its_lease(
    redis_url: str, redis_prefix: str, clock: FakeClock
) -> None:
    def worker() -> RealmRateLimiter:
        return RealmRateLimiter.from_url(
            redis_url,
            key_prefix=redis_prefix,
            max_in_flight=1,
            lease_seconds=0.4,
            margin=1.0,
            clock=clock,
            sleep=clock.sleep,
        )

    dead = worker()
    slot = dead.acquire(REALM)
    slot.__enter__()  # the worker dies here: never exits the block
    assert dead.in_flight(REALM) == 1
    alive = worker()
    began = clock()
    with alive.acquire(REALM):
        waited = clock() - began
    # The lease, plus at most one poll and its jitter (50 + 25 ms at a 60 s window).
    assert 0.4 <= waited < 0.5
    assert alive.in_flight(REALM) == 0


def test_slot_released_when_the_block_raises(make_limiter) -> None:
    limiter = make_limiter(max_in_flight=1, margin=1.0)
    with pytest.raises(RuntimeError), limiter.acquire(REALM):
        raise RuntimeError("boom")
    assert limiter.in_flight(REALM) == 0


def test_redis_down_is_transient() -> None:
    with pytest.raises(TransientError):
        RealmRateLimiter.from_url("redis://127.0.0.1:1/15").pause(REALM, 1)


def test_null_limiter_never_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    monkeypatch.setattr(time, "sleep", no_sleep)
    limiter = NullRateLimiter()
    limiter.pause(REALM, 100)
    for _ in range(100):
        with limiter.acquire(REALM, batch=True):
            pass
