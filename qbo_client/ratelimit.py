"""Per-realm rate limiting shared by every worker process, within QBO's published limits
([limits]): one limiter per realm, so a 429 pauses that realm for every worker.

QBO meters each realm (company) + app: 500 requests/min, 10/s, 10 in flight, 40 batch
requests/min; a 429 asks for 60 s of silence. Every worker talking to a realm therefore has
to draw from one budget, kept in Redis (in process memory when there is no Redis, e.g. the
embedded default). One atomic step per request (one Lua script on Redis) decides:

* **pacing**: requests of a realm are admitted at least ``interval_seconds`` apart, the
  slower of the per-second rate and the per-window rate (120 ms at real time). A caller
  reserves the next free moment and sleeps until it, so requests leave evenly spaced
  instead of in bursts: bursts bunch up on their way to Intuit (scheduling, TLS) and trip
  the 10-per-second limit even when each burst was within it;
* the moving windows: ≤ ``requests_per_window`` requests and ≤ ``batch_per_window`` batch
  requests in any window (sorted sets of admission times). A batch request may ask not to
  wait for the batch window (``batch_wait=False``): :class:`BatchWindowFull` lets the
  caller send the work as single requests instead;
* the in-flight cap: a sorted set of leases scored by expiry, so a worker killed mid-call
  frees its slot when the lease runs out instead of leaking it;
* a 429 sets a per-realm pause that every acquirer waits out.

``window_seconds`` compresses time for tests and benchmarks: with a 6 s window the limits
are 500 per 6 s, 10 per 0.1 s, 40 batch per 6 s and the 429 pause is 6 s.
``clock``/``sleep`` can be injected (tests drive the limiter with a fake clock); without a
clock, Redis' own ``TIME`` is the clock, so workers on different hosts agree.

Sources:
[limits] Intuit, limits and throttles:
    https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles
"""

from __future__ import annotations

import copy
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import redis

from qbo_client.errors import ThrottledError, TransientError

# Published QBO limits per realm + app ([limits]).
QBO_REQUESTS_PER_MINUTE = 500
QBO_REQUESTS_PER_SECOND = 10
QBO_MAX_IN_FLIGHT = 10
QBO_BATCH_REQUESTS_PER_MINUTE = 40
QBO_THROTTLE_PAUSE_SECONDS = 60.0
DEFAULT_MARGIN = 1.0  # pacing and the jitter allowance absorb arrival drift (see below)
# Arrival times at Intuit differ from admission times by a varying delay (real time).
DEFAULT_JITTER_SECONDS = 0.05


class BatchWindowFull(Exception):
    """The realm's batch window is full and the caller asked not to wait for it."""

    def __init__(self, realm_id: str, retry_after: float) -> None:
        super().__init__(f"batch window of realm {realm_id} is full for {retry_after:.3f}s")
        self.retry_after = retry_after


class RateLimiter(Protocol):
    """What :class:`qbo_client.client.QboClient` needs from a limiter."""

    @property
    def default_pause_seconds(self) -> float: ...

    def acquire(
        self, realm_id: str, *, batch: bool = False, batch_wait: bool = True
    ) -> AbstractContextManager[None]:
        """Block until one request (a batch request if ``batch``) may be sent; the slot in
        flight is held until the ``with`` block exits. With ``batch_wait=False`` a full
        batch window raises :class:`BatchWindowFull` at once instead of waiting."""
        ...

    def pause(self, realm_id: str, seconds: float | None = None) -> None:
        """Stop every worker from sending to ``realm_id`` for ``seconds`` (after a 429)."""
        ...


class NullRateLimiter:
    """No limiting at all: for tests that don't exercise limits."""

    default_pause_seconds = 0.0

    @contextmanager
    def acquire(
        self, realm_id: str, *, batch: bool = False, batch_wait: bool = True
    ) -> Iterator[None]:
        yield

    def pause(self, realm_id: str, seconds: float | None = None) -> None:
        return None


@dataclass(frozen=True)
class RateLimits:
    """The budget actually enforced, after the safety margin, time compression and the
    jitter allowance (durations in seconds)."""

    window_seconds: float
    requests_per_window: int
    second_seconds: float
    requests_per_second: int
    batch_per_window: int
    max_in_flight: int
    pause_seconds: float
    interval_seconds: float  # pacing: the least time between two admissions of a realm


# Result codes of one admission attempt.
_ADMITTED = 1
_WAIT = 0
_BATCH_FULL = -1

# Every script starts by reading the clock into `now` (milliseconds): ARGV[1] when the
# caller injects one (tests), else Redis TIME, so all workers share one clock.
_LUA_NOW = """
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end"""

# One admission attempt, atomically. Times are milliseconds on one clock: Redis TIME, or
# ARGV[1] when the caller injects a clock (tests). Returns {code, ms}: admitted after ms (the
# reserved moment; the caller sleeps until it), or wait ms and try again, or batch window full.
# KEYS: pause, inflight, pace, window, batch. Members are the caller's token.
_ACQUIRE_SCRIPT = (
    _LUA_NOW
    + """
local in_flight_max = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local token = ARGV[4]
local interval = tonumber(ARGV[5])
local horizon = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local window_max = tonumber(ARGV[8])
local batch = ARGV[9] == '1'
local batch_wait = ARGV[10] == '1'
local batch_max = tonumber(ARGV[11])
local poll = tonumber(ARGV[12])
local keep = math.ceil(window + lease) + 1000

local paused_until = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused_until > now then
  return {0, tostring(paused_until - now)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= in_flight_max then
  return {0, tostring(poll)}
end
local start = math.max(now, tonumber(redis.call('GET', KEYS[3]) or '0'))
if start - now > horizon then
  return {0, tostring(start - now - horizon)}
end
local function room(key, max)
  redis.call('ZREM', key, token)  -- a reservation given up (overslept) is replaced
  redis.call('ZREMRANGEBYSCORE', key, '-inf', start - window)
  if redis.call('ZCARD', key) < max then
    return -1
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(poll / 2, tonumber(oldest[2]) + window - now)
end
local wait = room(KEYS[4], window_max)
if batch then
  local batch_wait_ms = room(KEYS[5], batch_max)
  if batch_wait_ms >= 0 and not batch_wait then
    return {-1, tostring(batch_wait_ms)}
  end
  wait = math.max(wait, batch_wait_ms)
end
if wait >= 0 then
  return {0, tostring(wait)}
end
redis.call('SET', KEYS[3], tostring(start + interval), 'PX', keep)
redis.call('ZADD', KEYS[2], start + lease, token)
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('ZADD', KEYS[4], start, token)
redis.call('PEXPIRE', KEYS[4], keep)
if batch then
  redis.call('ZADD', KEYS[5], start, token)
  redis.call('PEXPIRE', KEYS[5], keep)
end
return {1, tostring(start - now)}
"""
)
# Extend a pause, never shorten it: two 429s in a row keep the later deadline.
_PAUSE_SCRIPT = (
    _LUA_NOW
    + """
local ms = tonumber(ARGV[2])
local until_ms = now + ms
if tonumber(redis.call('GET', KEYS[1]) or '0') < until_ms then
  redis.call('SET', KEYS[1], tostring(until_ms), 'PX', math.ceil(ms) + 1000)
end
return 1
"""
)
_PAUSE_REMAINING_SCRIPT = (
    _LUA_NOW
    + """
return tostring(math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now))
"""
)
_IN_FLIGHT_SCRIPT = (
    _LUA_NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)


@dataclass(frozen=True)
class _Attempt:
    """One admission attempt, in milliseconds."""

    token: str
    lease_ms: float
    interval_ms: float
    horizon_ms: float
    window_ms: float
    window_max: int
    batch: bool
    batch_wait: bool
    batch_max: int
    in_flight_max: int
    poll_ms: float


class _Backend(Protocol):
    def try_acquire(self, realm_id: str, now_ms: float | None, a: _Attempt) -> tuple[int, float]:
        """(code, milliseconds): admitted after ms, wait ms, or batch window full."""
        ...

    def leave(self, realm_id: str, token: str) -> None: ...
    def pause(self, realm_id: str, now_ms: float | None, ms: float) -> None: ...
    def pause_remaining(self, realm_id: str, now_ms: float | None) -> float: ...
    def in_flight(self, realm_id: str, now_ms: float | None) -> int: ...
    def reset(self, realm_id: str) -> None: ...


def _now_arg(now_ms: float | None) -> str:
    return "" if now_ms is None else repr(now_ms)


class _RedisBackend:
    def __init__(self, client: redis.Redis, key_prefix: str) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._acquire = client.register_script(_ACQUIRE_SCRIPT)
        self._pause = client.register_script(_PAUSE_SCRIPT)
        self._pause_remaining = client.register_script(_PAUSE_REMAINING_SCRIPT)
        self._in_flight = client.register_script(_IN_FLIGHT_SCRIPT)

    def _keys(self, realm_id: str, *what: str) -> list[str]:
        # One hash tag per realm keeps a realm's keys in one slot on a Redis cluster.
        return [f"{self._prefix}:{{{realm_id}}}:{w}" for w in what]

    def try_acquire(self, realm_id: str, now_ms: float | None, a: _Attempt) -> tuple[int, float]:
        code, ms = self._acquire(
            keys=self._keys(realm_id, "paused", "inflight", "pace", "window", "batch"),
            args=[
                _now_arg(now_ms),
                a.in_flight_max,
                repr(a.lease_ms),
                a.token,
                repr(a.interval_ms),
                repr(a.horizon_ms),
                repr(a.window_ms),
                a.window_max,
                "1" if a.batch else "0",
                "1" if a.batch_wait else "0",
                a.batch_max,
                repr(a.poll_ms),
            ],
        )
        return int(code), float(ms)

    def leave(self, realm_id: str, token: str) -> None:
        self._redis.zrem(self._keys(realm_id, "inflight")[0], token)

    def pause(self, realm_id: str, now_ms: float | None, ms: float) -> None:
        self._pause(keys=self._keys(realm_id, "paused"), args=[_now_arg(now_ms), repr(ms)])

    def pause_remaining(self, realm_id: str, now_ms: float | None) -> float:
        return float(
            self._pause_remaining(keys=self._keys(realm_id, "paused"), args=[_now_arg(now_ms)])
        )

    def in_flight(self, realm_id: str, now_ms: float | None) -> int:
        return int(self._in_flight(keys=self._keys(realm_id, "inflight"), args=[_now_arg(now_ms)]))

    def reset(self, realm_id: str) -> None:
        self._redis.delete(*self._keys(realm_id, "paused", "inflight", "pace", "window", "batch"))


@dataclass
class _RealmState:
    paused_until: float = 0.0
    next_start: float = 0.0
    leases: dict[str, float] = field(default_factory=dict)
    # token → admission moment, oldest first (like the Redis sorted sets, keyed by token)
    window: dict[str, float] = field(default_factory=dict)
    batches: dict[str, float] = field(default_factory=dict)


class _MemoryBackend:
    """Single-process fallback: the same algorithm as the Redis script, under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._realms: dict[str, _RealmState] = {}

    def _state(self, realm_id: str) -> _RealmState:
        return self._realms.setdefault(realm_id, _RealmState())

    @staticmethod
    def _now(now_ms: float | None) -> float:
        return time.monotonic() * 1000 if now_ms is None else now_ms

    def try_acquire(self, realm_id: str, now_ms: float | None, a: _Attempt) -> tuple[int, float]:
        now = self._now(now_ms)
        with self._lock:
            state = self._state(realm_id)
            if state.paused_until > now:
                return _WAIT, state.paused_until - now
            state.leases = {t: until for t, until in state.leases.items() if until > now}
            if len(state.leases) >= a.in_flight_max:
                return _WAIT, a.poll_ms
            start = max(now, state.next_start)
            if start - now > a.horizon_ms:
                return _WAIT, start - now - a.horizon_ms

            def room(stamps: dict[str, float], limit: int) -> float:
                stamps.pop(a.token, None)  # a reservation given up is replaced
                while stamps and next(iter(stamps.values())) <= start - a.window_ms:
                    del stamps[next(iter(stamps))]
                if len(stamps) < limit:
                    return -1.0
                return max(a.poll_ms / 2, next(iter(stamps.values())) + a.window_ms - now)

            wait = room(state.window, a.window_max)
            if a.batch:
                batch_wait = room(state.batches, a.batch_max)
                if batch_wait >= 0 and not a.batch_wait:
                    return _BATCH_FULL, batch_wait
                wait = max(wait, batch_wait)
            if wait >= 0:
                return _WAIT, wait
            state.next_start = start + a.interval_ms
            state.leases[a.token] = start + a.lease_ms
            state.window[a.token] = start
            if a.batch:
                state.batches[a.token] = start
            return _ADMITTED, start - now

    def leave(self, realm_id: str, token: str) -> None:
        with self._lock:
            self._state(realm_id).leases.pop(token, None)

    def pause(self, realm_id: str, now_ms: float | None, ms: float) -> None:
        with self._lock:
            state = self._state(realm_id)
            state.paused_until = max(state.paused_until, self._now(now_ms) + ms)

    def pause_remaining(self, realm_id: str, now_ms: float | None) -> float:
        with self._lock:
            return max(0.0, self._state(realm_id).paused_until - self._now(now_ms))

    def in_flight(self, realm_id: str, now_ms: float | None) -> int:
        now = self._now(now_ms)
        with self._lock:
            return sum(1 for until in self._state(realm_id).leases.values() if until > now)

    def reset(self, realm_id: str) -> None:
        with self._lock:
            self._realms.pop(realm_id, None)


class RealmRateLimiter:
    """Blocks callers until QBO's per-realm budget allows one more request.

    Use :meth:`from_url`. Arrival times at Intuit differ from the moments we admit requests
    (scheduling, TLS, the network): that drift is what can make a budget we kept look
    exceeded to QBO. Two things absorb it:

    * ``jitter_seconds`` (default 50 ms, real time even when ``window_seconds`` compresses
      QBO's time: the delays it stands for do not shrink) lengthens every window we keep,
      so requests admitted a window apart cannot arrive within one window unless delayed
      by more than the jitter;
    * pacing: admissions ``limits.interval_seconds`` apart, the slower of the per-second
      rate ((1 s + jitter) / 10 = 105 ms) and the per-window rate ((60 s + jitter) / 500 =
      120 ms). QBO refuses the 11th request within a second; eleven consecutive requests
      span 1.2 s, so that takes one delayed 200 ms more than another (50 ms, the jitter,
      when a 6 s window compresses the second to 0.1 s and the interval to 15 ms).

    ``margin`` scales every limit further (0.95 → 475/min, 9 per second, 38 batch/min,
    9 in flight, each rounded down) for an operator who wants room beyond that; the
    default 1.0 spends the published budget, except one in-flight slot (9 of 10).
    """

    def __init__(
        self,
        *,
        backend: _Backend,
        window_seconds: float = 60.0,
        margin: float = DEFAULT_MARGIN,
        requests_per_minute: int = QBO_REQUESTS_PER_MINUTE,
        requests_per_second: int = QBO_REQUESTS_PER_SECOND,
        max_in_flight: int | None = None,
        batch_requests_per_minute: int = QBO_BATCH_REQUESTS_PER_MINUTE,
        pause_seconds: float | None = None,
        jitter_seconds: float | None = None,
        lease_seconds: float = 150.0,
        max_wait_seconds: float | None = 300.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        scale = window_seconds / 60.0
        # Not scaled with the window: the delays it allows for (scheduling, the network) do
        # not shrink when a test or benchmark compresses QBO's time.
        jitter = DEFAULT_JITTER_SECONDS if jitter_seconds is None else jitter_seconds
        if window_seconds <= 0 or not 0 < margin <= 1 or jitter < 0:
            raise ValueError("window_seconds must be > 0, margin in (0, 1], jitter >= 0")
        window = window_seconds + jitter
        second = scale + jitter
        per_window = max(1, math.floor(requests_per_minute * margin))
        per_second = max(1, math.floor(requests_per_second * margin))
        self.limits = RateLimits(
            window_seconds=window,
            requests_per_window=per_window,
            second_seconds=second,
            requests_per_second=per_second,
            batch_per_window=max(1, math.floor(batch_requests_per_minute * margin)),
            max_in_flight=max(1, math.floor(max_in_flight * margin))
            if max_in_flight is not None
            # QBO frees a slot once its response is written, a moment after we have read it:
            # one slot short of the cap, so the next request cannot find it still taken.
            else min(math.floor(QBO_MAX_IN_FLIGHT * margin), QBO_MAX_IN_FLIGHT - 1),
            pause_seconds=pause_seconds
            if pause_seconds is not None
            else QBO_THROTTLE_PAUSE_SECONDS * scale,
            interval_seconds=max(second / per_second, window / per_window),
        )
        self._backend = backend
        # Lease: longer than any request can take (the client's timeout, QBO's own 120 s).
        self._lease_seconds = lease_seconds
        self._max_wait = max_wait_seconds
        # Poll often enough to catch a freed in-flight slot in compressed time.
        self._poll_seconds = min(0.05, scale / 4)
        # Reserve at most about a second ahead: a caller then sleeps at most that long
        # holding an in-flight lease, and later callers come back instead of queueing.
        self._horizon_seconds = second
        # A caller that wakes this much after its reserved moment (a busy CPU) gives the
        # moment up and asks again: sent late, its request could arrive together with the
        # ones reserved after it. A share of the jitter allowance, the rest is the network's.
        self._late_seconds = jitter / 4
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_url(
        cls,
        url: str | None,
        *,
        window_seconds: float = 60.0,
        margin: float = DEFAULT_MARGIN,
        key_prefix: str = "qbo-ratelimit",
        **kwargs: object,
    ) -> RealmRateLimiter:
        """``redis://host:port/db`` shares the budget across processes; ``None`` or
        ``memory://`` keeps it in this process (the embedded default with no Redis)."""
        if url is None or url.startswith("memory://"):
            backend: _Backend = _MemoryBackend()
        else:
            backend = _RedisBackend(redis.Redis.from_url(url), key_prefix)
        return cls(
            backend=backend,
            window_seconds=window_seconds,
            margin=margin,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def default_pause_seconds(self) -> float:
        return self.limits.pause_seconds

    def with_max_wait(self, seconds: float) -> RealmRateLimiter:
        """The same limiter (the same budget: the backend is shared) for a caller that
        would rather hear "not now" than wait: when no slot comes within ``seconds``,
        ``acquire`` raises :class:`ThrottledError` with ``retry_after`` set, before anything
        is sent. The sync's lanes use it to give their worker process back."""
        clone = copy.copy(self)
        clone._max_wait = seconds
        return clone

    def _now_ms(self) -> float | None:
        return None if self._clock is None else self._clock() * 1000

    def _monotonic(self) -> float:
        return time.monotonic() if self._clock is None else self._clock()

    def pause(self, realm_id: str, seconds: float | None = None) -> None:
        seconds = self.limits.pause_seconds if seconds is None else seconds
        if seconds > 0:
            with _storage_errors():
                self._backend.pause(realm_id, self._now_ms(), seconds * 1000)

    def pause_remaining(self, realm_id: str) -> float:
        with _storage_errors():
            return self._backend.pause_remaining(realm_id, self._now_ms()) / 1000

    def in_flight(self, realm_id: str) -> int:
        """Slots currently held for ``realm_id`` (diagnostics and tests)."""
        with _storage_errors():
            return self._backend.in_flight(realm_id, self._now_ms())

    @contextmanager
    def acquire(
        self, realm_id: str, *, batch: bool = False, batch_wait: bool = True
    ) -> Iterator[None]:
        token = self._wait_for_slot(realm_id, batch, batch_wait)
        try:
            yield
        finally:
            with _storage_errors():
                self._backend.leave(realm_id, token)

    def _wait_for_slot(self, realm_id: str, batch: bool, batch_wait: bool) -> str:
        limits = self.limits
        attempt = _Attempt(
            token=uuid.uuid4().hex,
            lease_ms=self._lease_seconds * 1000,
            interval_ms=limits.interval_seconds * 1000,
            horizon_ms=self._horizon_seconds * 1000,
            window_ms=limits.window_seconds * 1000,
            window_max=limits.requests_per_window,
            batch=batch,
            batch_wait=batch_wait,
            batch_max=limits.batch_per_window,
            in_flight_max=limits.max_in_flight,
            poll_ms=self._poll_seconds * 1000,
        )
        deadline = None if self._max_wait is None else self._monotonic() + self._max_wait
        while True:
            with _storage_errors():
                code, ms = self._backend.try_acquire(realm_id, self._now_ms(), attempt)
            wait = ms / 1000
            if code == _ADMITTED:
                if wait <= 0:
                    return attempt.token
                moment = self._monotonic() + wait
                self._sleep(wait)  # until the reserved moment; the slot is ours meanwhile
                if self._monotonic() - moment <= self._late_seconds:
                    return attempt.token
                # Overslept. Asking again with the same token replaces this reservation's
                # window entries (the request was never sent) and renews its lease.
                with _storage_errors():
                    self._backend.leave(realm_id, attempt.token)
                continue
            if code == _BATCH_FULL:
                raise BatchWindowFull(realm_id, wait)
            if deadline is not None and self._monotonic() + wait > deadline:
                raise ThrottledError(
                    "Waited too long for a QuickBooks rate-limit slot; will retry",
                    retry_after=wait,
                )
            # Jitter spreads out workers that all wake for the same freed slot.
            self._sleep(wait + random.uniform(0, self._poll_seconds / 2))

    def reset(self, realm_id: str) -> None:
        """Forget ``realm_id``'s windows, leases, pacing and pause (tests and benchmarks)."""
        with _storage_errors():
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
