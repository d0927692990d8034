"""The shared limiter keeps concurrent workers inside the emulator's QBO limits
(https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles).

The emulator enforces 500/window, 10 per window/60 and 10 in flight per realm with the same
time compression as the limiter, and counts every 429 it sends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from qbo_client.client import QboClient
from qbo_client.errors import ThrottledError
from qbo_client.ratelimit import NullRateLimiter, RateLimiter, RealmRateLimiter
from tests.qbo_client.conftest import Control

WINDOW_SECONDS = 6.0  # "one second" = 100 ms
LATENCY_MS = 150  # slow enough for the in-flight cap to bind as well
THREADS = 14
CALLS_PER_THREAD = 8


def run_workers(
    make_client: Callable[..., QboClient], limiter_for: Callable[[int], RateLimiter], **config
) -> list[BaseException]:
    failures: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        client = make_client(limiter=limiter_for(index), record=False, **config)
        barrier.wait()
        try:
            for n in range(CALLS_PER_THREAD):
                client.find_customers_by_display_name(f"Worker {index} call {n}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return failures


@pytest.fixture
def throttled_emulator(control: Control) -> Control:
    control.post("throttle", {"enabled": True, "window_seconds": WINDOW_SECONDS})
    control.post("latency", {"ms": LATENCY_MS})
    return control


def test_unlimited_workers_do_get_throttled(
    throttled_emulator: Control, make_client: Callable[..., QboClient]
) -> None:
    # The control experiment: without the limiter the same load breaks QBO's limits (and the
    # client raises each 429 at once).
    failures = run_workers(make_client, lambda i: NullRateLimiter())
    counters = throttled_emulator.get("counters")
    assert counters["sent_429"] > 0
    assert any(isinstance(f, ThrottledError) for f in failures)


def test_shared_redis_limiter_keeps_workers_under_qbo_limits(
    throttled_emulator: Control,
    make_client: Callable[..., QboClient],
    redis_url: str,
    redis_prefix: str,
) -> None:
    # One limiter object per worker, as in separate processes; Redis is the shared budget.
    failures = run_workers(
        make_client,
        lambda i: RealmRateLimiter.from_url(
            redis_url, key_prefix=redis_prefix, window_seconds=WINDOW_SECONDS
        ),
    )
    assert failures == []
    counters = throttled_emulator.get("counters")
    assert counters["api_requests"] == THREADS * CALLS_PER_THREAD, counters["throttled_by_limit"]
    assert counters["sent_429"] == 0, counters["throttled_by_limit"]
    assert 8 <= counters["max_in_flight"] <= 10  # the in-flight cap was reached, not broken
