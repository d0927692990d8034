"""Per-realm throttling with QBO's published limits ([limits]).

* 500 requests per window (60 s in production), batch requests included;
* 10 requests per second, i.e. 10 per ``window / 60`` seconds, so a compressed window
  compresses the per-second limit with it;
* 10 requests in flight at once;
* 40 batch requests per window.

Windows slide and use the real monotonic clock: advancing the emulator's wall clock (to
expire tokens) must not refill a realm's request budget. Only admitted requests count
against the windows; a rejected request does not extend the penalty (production behaviour
on this point is unverified).

Sources:
[limits] Intuit, limits and throttles:
    https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

REQUESTS_PER_WINDOW = 500
REQUESTS_PER_SECOND = 10
MAX_IN_FLIGHT = 10
BATCHES_PER_WINDOW = 40


@dataclass
class RealmWindow:
    requests: deque[float] = field(default_factory=deque)
    recent: deque[float] = field(default_factory=deque)
    batches: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class Throttler:
    """Thread-safe admission control. ``acquire`` then always ``release`` when admitted."""

    def __init__(
        self,
        window_seconds: float = 60.0,
        *,
        enabled: bool = True,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = float(window_seconds)
        self.enabled = enabled
        self._now = now
        self._lock = threading.Lock()
        self._realms: dict[str, RealmWindow] = {}
        self.max_in_flight = 0
        self.in_flight_total = 0

    def reset(self) -> None:
        with self._lock:
            # Requests still being served keep their in-flight slot until they release it.
            for window in self._realms.values():
                window.requests.clear()
                window.recent.clear()
                window.batches.clear()
            self.max_in_flight = self.in_flight_total

    def configure(
        self, *, window_seconds: float | None = None, enabled: bool | None = None
    ) -> None:
        with self._lock:
            if window_seconds is not None:
                if window_seconds <= 0:
                    raise ValueError("window_seconds must be positive")
                self.window_seconds = float(window_seconds)
            if enabled is not None:
                self.enabled = enabled

    @property
    def second_seconds(self) -> float:
        """The scaled "one second" of the per-second limit."""
        return self.window_seconds / 60.0

    def acquire(self, realm_id: str, *, is_batch: bool) -> str | None:
        """Admit a request (returns None) or name the limit it broke.

        In-flight requests are counted even when rejected for concurrency, so the observed
        maximum (``max_in_flight``) shows what the client actually attempted.
        """
        with self._lock:
            window = self._realms.setdefault(realm_id, RealmWindow())
            window.in_flight += 1
            self.in_flight_total += 1
            self.max_in_flight = max(self.max_in_flight, window.in_flight)
            if not self.enabled:
                return None
            now = self._now()
            self._prune(window.requests, now - self.window_seconds)
            self._prune(window.recent, now - self.second_seconds)
            self._prune(window.batches, now - self.window_seconds)
            verdict: str | None = None
            if window.in_flight > MAX_IN_FLIGHT:
                verdict = "concurrency"
            elif len(window.recent) >= REQUESTS_PER_SECOND:
                verdict = "per_second"
            elif len(window.requests) >= REQUESTS_PER_WINDOW:
                verdict = "per_window"
            elif is_batch and len(window.batches) >= BATCHES_PER_WINDOW:
                verdict = "batch_per_window"
            if verdict is not None:
                window.in_flight -= 1
                self.in_flight_total -= 1
                return verdict
            window.requests.append(now)
            window.recent.append(now)
            if is_batch:
                window.batches.append(now)
            return None

    def release(self, realm_id: str) -> None:
        with self._lock:
            window = self._realms.get(realm_id)
            if window is not None and window.in_flight > 0:
                window.in_flight -= 1
                self.in_flight_total -= 1

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "window_seconds": self.window_seconds,
                "per_second_window_seconds": self.second_seconds,
                "limits": {
                    "requests_per_window": REQUESTS_PER_WINDOW,
                    "requests_per_second": REQUESTS_PER_SECOND,
                    "max_in_flight": MAX_IN_FLIGHT,
                    "batches_per_window": BATCHES_PER_WINDOW,
                },
                "in_flight": self.in_flight_total,
                "max_in_flight": self.max_in_flight,
            }

    @staticmethod
    def _prune(stamps: deque[float], cutoff: float) -> None:
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
