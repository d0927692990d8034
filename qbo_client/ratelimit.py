"""Per-realm rate limiting shared by every worker process (reference §5, DESIGN "Writing to QBO
without duplicates" point 6).

QBO meters each realm (company) + app: 500 requests/min, 10/s, 10 in flight, 40 batch
requests/min; a 429 asks for 60 s of silence. Every worker talking to a realm therefore has
to draw from one budget, kept in Redis:

* the request windows are moving windows from the ``limits`` library (``RedisStorage``; the
  in-process ``MemoryStorage`` when there is no Redis, e.g. the embedded default);
* the in-flight cap is a sorted set of leases scored by expiry, so a worker killed mid-call
  frees its slot when the lease runs out instead of leaking it;
* a 429 sets a per-realm pause key that every acquirer waits out.

``window_seconds`` compresses time for tests and benchmarks: with a 6 s window the limits
are 500 per 6 s, 10 per 0.1 s, 40 batch per 6 s and the 429 pause is 6 s.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import redis
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from qbo_client.errors import ThrottledError, TransientError

# Published QBO limits per realm + app (reference §5).
QBO_REQUESTS_PER_MINUTE = 500
QBO_REQUESTS_PER_SECOND = 10
QBO_MAX_IN_FLIGHT = 10
QBO_BATCH_REQUESTS_PER_MINUTE = 40
QBO_THROTTLE_PAUSE_SECONDS = 60.0


class RateLimiter(Protocol):
    """What :class:`qbo_client.client.QboClient` needs from a limiter."""

    @property
    def default_pause_seconds(self) -> float: ...

    def acquire(self, realm_id: str, *, batch: bool = False) -> AbstractContextManager[None]:
        """Block until one request (a batch request if ``batch``) may be sent; the slot in
        flight is held until the ``with`` block exits."""
        ...

    def pause(self, realm_id: str, seconds: float | None = None) -> None:
        """Stop every worker from sending to ``realm_id`` for ``seconds`` (after a 429)."""
        ...


class NullRateLimiter:
    """No limiting at all: for tests that don't exercise limits."""

    default_pause_seconds = 0.0

    @contextmanager
    def acquire(self, realm_id: str, *, batch: bool = False) -> Iterator[None]:
        yield

    def pause(self, realm_id: str, seconds: float | None = None) -> None:
        return None


class _ScaledWindow(RateLimitItemPerSecond):
    """``amount`` per ``seconds``, where ``seconds`` may be fractional (compressed time)."""

    __slots__ = ("seconds",)  # limits' metaclass gives every item class __slots__

    def __init__(self, amount: int, seconds: float, name: str) -> None:
        # The namespace keeps windows with equal amounts apart in storage.
        super().__init__(amount, 1, namespace=f"QBO-{name}-{seconds:g}s")
        self.seconds = seconds

    def get_expiry(self) -> int:
        # limits types expiries as int, but both moving-window storages used here do float
        # arithmetic with them (MemoryStorage natively; Redis through _RedisWindowStorage).
        return self.seconds  # type: ignore[return-value]


_LIMITS_EXPIRE = b"redis.call('expire', KEYS[1], expiry)"
_MS_EXPIRE = b"redis.call('pexpire', KEYS[1], math.ceil(expiry * 1000))"


class _RedisWindowStorage(RedisStorage):
    """``RedisStorage`` whose moving-window script accepts fractional expiries.

    The stock script ends with ``EXPIRE key <seconds>``, which Redis rejects for anything
    but whole seconds; a compressed window has sub-second ones. Same script, PEXPIRE.
    """

    def initialize_storage(self, _uri: str) -> None:
        super().initialize_storage(_uri)
        script = self.SCRIPT_ACQUIRE_MOVING_WINDOW
        if _LIMITS_EXPIRE not in script:  # fail loudly if a limits upgrade changed it
            raise RuntimeError("limits' acquire_moving_window.lua changed; review ratelimit.py")
        self.lua_acquire_moving_window = self.get_connection().register_script(
            script.replace(_LIMITS_EXPIRE, _MS_EXPIRE)
        )


# In-flight leases: members are per-acquire tokens scored by lease expiry (ms, Redis clock,
# so workers on different hosts agree). Expired leases are dropped before counting.
_ENTER_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""
# Extend a pause, never shorten it: two 429s in a row keep the later deadline.
_PAUSE_SCRIPT = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[1]))
end
return 1
"""


class _Backend(Protocol):
    def enter(self, realm_id: str, limit: int, lease_seconds: float) -> str | None: ...
    def leave(self, realm_id: str, token: str) -> None: ...
    def pause(self, realm_id: str, seconds: float) -> None: ...
    def pause_remaining(self, realm_id: str) -> float: ...
    def in_flight(self, realm_id: str) -> int: ...
    def reset(self, realm_id: str) -> None: ...


class _RedisBackend:
    def __init__(self, client: redis.Redis, key_prefix: str) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._enter = client.register_script(_ENTER_SCRIPT)
        self._pause = client.register_script(_PAUSE_SCRIPT)

    def _key(self, realm_id: str, what: str) -> str:
        return f"{self._prefix}:{realm_id}:{what}"

    def enter(self, realm_id: str, limit: int, lease_seconds: float) -> str | None:
        token = uuid.uuid4().hex
        lease_ms = max(1, math.ceil(lease_seconds * 1000))
        ok = self._enter(keys=[self._key(realm_id, "inflight")], args=[limit, lease_ms, token])
        return token if ok else None

    def leave(self, realm_id: str, token: str) -> None:
        self._redis.zrem(self._key(realm_id, "inflight"), token)

    def pause(self, realm_id: str, seconds: float) -> None:
        ms = max(1, math.ceil(seconds * 1000))
        self._pause(keys=[self._key(realm_id, "paused")], args=[ms])

    def pause_remaining(self, realm_id: str) -> float:
        ttl = int(self._redis.pttl(self._key(realm_id, "paused")))
        return ttl / 1000 if ttl > 0 else 0.0

    def in_flight(self, realm_id: str) -> int:
        return int(self._redis.zcard(self._key(realm_id, "inflight")))

    def reset(self, realm_id: str) -> None:
        self._redis.delete(self._key(realm_id, "inflight"), self._key(realm_id, "paused"))


class _MemoryBackend:
    """Single-process fallback: one BoundedSemaphore per realm and a pause deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._paused_until: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def enter(self, realm_id: str, limit: int, lease_seconds: float) -> str | None:
        with self._lock:
            semaphore = self._semaphores.setdefault(realm_id, threading.BoundedSemaphore(limit))
        if not semaphore.acquire(blocking=False):
            return None
        with self._lock:
            self._counts[realm_id] = self._counts.get(realm_id, 0) + 1
        return "memory"

    def leave(self, realm_id: str, token: str) -> None:
        with self._lock:
            self._counts[realm_id] -= 1
            semaphore = self._semaphores[realm_id]
        semaphore.release()

    def pause(self, realm_id: str, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            self._paused_until[realm_id] = max(self._paused_until.get(realm_id, 0.0), until)

    def pause_remaining(self, realm_id: str) -> float:
        with self._lock:
            return max(0.0, self._paused_until.get(realm_id, 0.0) - time.monotonic())

    def in_flight(self, realm_id: str) -> int:
        with self._lock:
            return self._counts.get(realm_id, 0)

    def reset(self, realm_id: str) -> None:
        with self._lock:
            self._paused_until.pop(realm_id, None)


@dataclass(frozen=True)
class RateLimits:
    """The budget actually enforced, after the safety margin, time compression and the
    jitter allowance (window lengths in seconds)."""

    window_seconds: float
    requests_per_window: int
    second_seconds: float
    requests_per_second: int
    batch_per_window: int
    max_in_flight: int
    pause_seconds: float


class RealmRateLimiter:
    """Blocks callers until QBO's per-realm budget allows one more request.

    Use :meth:`from_url`. The ``margin`` scales every limit (0.95 → 475/min, 9 per second,
    38 batch/min, 9 in flight, each rounded down), leaving room for requests whose arrival
    times at Intuit differ from the moments we took their slots, and for a server that
    still counts a request in flight for a moment after we have read its response.

    ``jitter_seconds`` lengthens every window we keep. Requests reach Intuit after a delay
    that varies, so two bursts sent one window apart can arrive less than a window apart and
    be counted together; a count-based margin cannot absorb a whole burst, a longer window
    can. The default (50 ms) costs 5 % of the per-second rate at real time scale.
    """

    def __init__(
        self,
        *,
        storage: MemoryStorage | RedisStorage,
        backend: _Backend,
        window_seconds: float = 60.0,
        margin: float = 0.95,
        requests_per_minute: int = QBO_REQUESTS_PER_MINUTE,
        requests_per_second: int = QBO_REQUESTS_PER_SECOND,
        max_in_flight: int = QBO_MAX_IN_FLIGHT,
        batch_requests_per_minute: int = QBO_BATCH_REQUESTS_PER_MINUTE,
        pause_seconds: float | None = None,
        jitter_seconds: float = 0.05,
        lease_seconds: float = 150.0,
        max_wait_seconds: float | None = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if window_seconds <= 0 or not 0 < margin <= 1 or jitter_seconds < 0:
            raise ValueError("window_seconds must be > 0, margin in (0, 1], jitter >= 0")
        scale = window_seconds / 60.0
        self.limits = RateLimits(
            window_seconds=window_seconds + jitter_seconds,
            requests_per_window=max(1, math.floor(requests_per_minute * margin)),
            second_seconds=scale + jitter_seconds,
            requests_per_second=max(1, math.floor(requests_per_second * margin)),
            batch_per_window=max(1, math.floor(batch_requests_per_minute * margin)),
            max_in_flight=max(1, math.floor(max_in_flight * margin)),
            pause_seconds=pause_seconds
            if pause_seconds is not None
            else QBO_THROTTLE_PAUSE_SECONDS * scale,
        )
        self._strategy = MovingWindowRateLimiter(storage)
        self._storage = storage
        self._backend = backend
        limits = self.limits
        self._second = _ScaledWindow(limits.requests_per_second, limits.second_seconds, "second")
        self._window = _ScaledWindow(limits.requests_per_window, limits.window_seconds, "window")
        self._batch = _ScaledWindow(limits.batch_per_window, limits.window_seconds, "batch")
        # Lease: longer than any request can take (the client's timeout, QBO's own 120 s).
        self._lease_seconds = lease_seconds
        self._max_wait = max_wait_seconds
        # Poll often enough to catch a freed slot in a compressed per-second window.
        self._poll_seconds = min(0.05, scale / 4)
        self._sleep = sleep

    @classmethod
    def from_url(
        cls,
        url: str | None,
        *,
        window_seconds: float = 60.0,
        margin: float = 0.95,
        key_prefix: str = "qbo-ratelimit",
        **kwargs: object,
    ) -> RealmRateLimiter:
        """``redis://host:port/db`` shares the budget across processes; ``None`` or
        ``memory://`` keeps it in this process (the embedded default with no Redis)."""
        if url is None or url.startswith("memory://"):
            storage: MemoryStorage | RedisStorage = MemoryStorage()
            backend: _Backend = _MemoryBackend()
        else:
            storage = _RedisWindowStorage(url, key_prefix=f"{key_prefix}:windows")
            backend = _RedisBackend(redis.Redis.from_url(url), key_prefix)
        return cls(
            storage=storage,
            backend=backend,
            window_seconds=window_seconds,
            margin=margin,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def default_pause_seconds(self) -> float:
        return self.limits.pause_seconds

    def pause(self, realm_id: str, seconds: float | None = None) -> None:
        seconds = self.limits.pause_seconds if seconds is None else seconds
        if seconds > 0:
            with _storage_errors():
                self._backend.pause(realm_id, seconds)

    def pause_remaining(self, realm_id: str) -> float:
        with _storage_errors():
            return self._backend.pause_remaining(realm_id)

    def in_flight(self, realm_id: str) -> int:
        """Slots currently held for ``realm_id`` (diagnostics and tests)."""
        with _storage_errors():
            return self._backend.in_flight(realm_id)

    @contextmanager
    def acquire(self, realm_id: str, *, batch: bool = False) -> Iterator[None]:
        token = self._wait_for_slot(realm_id, batch)
        try:
            yield
        finally:
            with _storage_errors():
                self._backend.leave(realm_id, token)

    def _wait_for_slot(self, realm_id: str, batch: bool) -> str:
        deadline = None if self._max_wait is None else time.monotonic() + self._max_wait
        while True:
            with _storage_errors():
                wait = self._backend.pause_remaining(realm_id)
                if wait <= 0:
                    # Take an in-flight slot first, then the window entries, so window
                    # entries are spent only by requests that are about to be sent.
                    token = self._backend.enter(
                        realm_id, self.limits.max_in_flight, self._lease_seconds
                    )
                    if token is None:
                        wait = self._poll_seconds
                    else:
                        wait = self._take_window_entries(realm_id, batch)
                        if wait <= 0:
                            return token
                        self._backend.leave(realm_id, token)
            if deadline is not None and time.monotonic() + wait > deadline:
                raise ThrottledError(
                    "Waited too long for a QuickBooks rate-limit slot; will retry",
                    retry_after=wait,
                )
            # Jitter spreads out workers that all wake for the same freed slot.
            self._sleep(wait + random.uniform(0, self._poll_seconds))

    def _take_window_entries(self, realm_id: str, batch: bool) -> float:
        """0 when an entry was taken in every window, else seconds until one may free up."""
        windows = [self._second, self._window, *([self._batch] if batch else [])]
        now = time.time()
        wait = 0.0
        for item in windows:
            if not self._strategy.test(item, realm_id):
                reset = self._strategy.get_window_stats(item, realm_id).reset_time
                wait = max(wait, reset - now, self._poll_seconds / 2)
        if wait > 0:
            return wait
        # Tightest window first: if a racing worker beats us to a later window, the entry
        # already spent is a per-second one, the cheapest to waste.
        for item in windows:
            if not self._strategy.hit(item, realm_id):
                return self._poll_seconds
        return 0.0

    def reset(self, realm_id: str) -> None:
        """Forget ``realm_id``'s windows, leases and pause (tests and benchmarks)."""
        with _storage_errors():
            for item in (self._second, self._window, self._batch):
                self._strategy.clear(item, realm_id)
            self._backend.reset(realm_id)


@contextmanager
def _storage_errors() -> Iterator[None]:
    # Redis down must not look like a programming error: the task retries later.
    try:
        yield
    except redis.RedisError as exc:
        raise TransientError(
            f"Rate limiter storage unavailable ({type(exc).__name__}); will retry"
        ) from exc
