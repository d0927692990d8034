"""What every worker sends to QuickBooks, per realm: how much of the budget is in use, how
often QuickBooks said 429, and how long it took to answer.

QBO meters each realm: 500 requests a minute, and a 429 asks for a pause
(https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles). The
health page shows the last minute against that budget and the 429s of the last hour; the
Prometheus endpoint exports totals and a latency histogram. Every process writes to the
same Redis as the shared rate limiter (``RATE_LIMIT_REDIS_URL``), one pipelined round trip
per exchange:

* ``<prefix>:<realm>:<slot>`` a hash per 10-second slot (``requests``, ``throttled``) that
  expires after an hour and a bit: the recent figures are sums over slots;
* ``<prefix>:<realm>`` a hash of running totals: the request count and sum of durations,
  one field per latency bucket (not cumulative; the reader adds them up, as Prometheus
  histograms are cumulative: https://prometheus.io/docs/concepts/metric_types/#histogram),
  and one per outcome.

Without Redis (the embedded default: one worker process, its limiter in memory) nothing is
recorded, and the pages say the figures are not kept. Recording is best effort: a Redis
error is logged and the exchange goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

from qbo_client.client import RequestRecord

logger = logging.getLogger(__name__)

SLOT_SECONDS = 10
RECENT_SECONDS = 60  # QBO's per-minute budget
HOUR_SECONDS = 3600
# Upper bounds in seconds; QBO's own timeout is 120 s.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
OUTCOMES = ("ok", "throttled", "refused", "server_error", "no_answer")


def bucket_label(bound: float) -> str:
    """Prometheus' spelling of a bucket's upper bound ("0.05", "120", "+Inf")."""
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def outcome_of(status: int | None) -> str:
    if status is None:
        return "no_answer"
    if status == 429:
        return "throttled"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "refused"
    return "ok"


@dataclass(frozen=True)
class RecentTraffic:
    requests_last_minute: int
    throttled_last_hour: int


@dataclass(frozen=True)
class TrafficTotals:
    """Running totals since the counters began (Prometheus counters and a histogram)."""

    count: int
    sum_seconds: float
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), +Inf last
    outcomes: dict[str, int]


class TrafficStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def record(self, realm_id: str, status: int | None, duration_seconds: float) -> None:
        slot = int(time.time() // SLOT_SECONDS)
        slot_key = f"{self._prefix}:{realm_id}:{slot}"
        bound = next((b for b in LATENCY_BUCKETS if duration_seconds <= b), math.inf)
        outcome = outcome_of(status)
        totals = f"{self._prefix}:{realm_id}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(slot_key, "requests", 1)
        if outcome == "throttled":
            pipe.hincrby(slot_key, "throttled", 1)
        pipe.expire(slot_key, HOUR_SECONDS + 2 * SLOT_SECONDS)
        pipe.hincrby(totals, "count", 1)
        pipe.hincrbyfloat(totals, "sum", duration_seconds)
        pipe.hincrby(totals, f"le:{bucket_label(bound)}", 1)
        pipe.hincrby(totals, f"outcome:{outcome}", 1)
        pipe.execute()

    def recent(self, realm_id: str) -> RecentTraffic:
        """Requests of the last minute and 429s of the last hour, to the nearest slot."""
        return self.recent_many([realm_id])[realm_id]

    def recent_many(self, realm_ids: Iterable[str]) -> dict[str, RecentTraffic]:
        """:meth:`recent` for several realms in one pipelined round trip."""
        realms = list(realm_ids)
        now_slot = int(time.time() // SLOT_SECONDS)
        slots = range(now_slot - HOUR_SECONDS // SLOT_SECONDS + 1, now_slot + 1)
        minute_from = now_slot - RECENT_SECONDS // SLOT_SECONDS + 1
        pipe = self._redis.pipeline(transaction=False)
        for realm_id in realms:
            for slot in slots:
                pipe.hmget(f"{self._prefix}:{realm_id}:{slot}", "requests", "throttled")
        answers = iter(pipe.execute())
        result = {}
        for realm_id in realms:
            requests = throttled = 0
            for slot in slots:
                req, thr = next(answers)
                if slot >= minute_from:
                    requests += int(req or 0)
                throttled += int(thr or 0)
            result[realm_id] = RecentTraffic(
                requests_last_minute=requests, throttled_last_hour=throttled
            )
        return result

    def totals(self, realm_ids: Iterable[str]) -> dict[str, TrafficTotals]:
        realms = list(realm_ids)
        pipe = self._redis.pipeline(transaction=False)
        for realm_id in realms:
            pipe.hgetall(f"{self._prefix}:{realm_id}")
        result = {}
        for realm_id, raw in zip(realms, pipe.execute(), strict=True):
            if raw:
                result[realm_id] = _totals({k.decode(): v.decode() for k, v in raw.items()})
        return result

    def clear(self, realm_id: str) -> None:
        keys = list(self._redis.scan_iter(match=f"{self._prefix}:{realm_id}*"))
        if keys:
            self._redis.delete(*keys)


def _totals(fields: dict[str, str]) -> TrafficTotals:
    running = 0
    buckets = []
    for bound in (*LATENCY_BUCKETS, math.inf):
        running += int(fields.get(f"le:{bucket_label(bound)}", 0))
        buckets.append((bound, running))
    return TrafficTotals(
        count=int(fields.get("count", 0)),
        sum_seconds=float(fields.get("sum", 0.0)),
        buckets=tuple(buckets),
        outcomes={o: int(fields.get(f"outcome:{o}", 0)) for o in OUTCOMES},
    )


@cache
def _store(url: str, prefix: str) -> TrafficStore:
    return TrafficStore(
        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1), prefix
    )


def traffic_store() -> TrafficStore | None:
    """The shared store, or None where there is no Redis to share (nothing is kept)."""
    url = settings.RATE_LIMIT_REDIS_URL
    if not url or url.startswith("memory://"):
        return None
    return _store(url, settings.QBO_TRAFFIC_KEY_PREFIX)


def exchange_recorder(
    realm_id: str, then: Callable[[RequestRecord], None] | None = None
) -> Callable[[RequestRecord], None]:
    """An ``on_request`` hook for QboClient: log the exchange (with its intuit_tid, so a
    log line leads to Intuit's record of it), count it, then hand it to ``then``."""
    store = traffic_store()

    def record(exchange: RequestRecord) -> None:
        logger.info(
            "QBO %s %s -> %s in %d ms (realm %s, intuit_tid %s)",
            exchange.method,
            exchange.url.split("?", 1)[0],
            exchange.status if exchange.status is not None else exchange.error,
            exchange.duration_ms,
            realm_id,
            exchange.intuit_tid or "-",
        )
        if store is not None:
            try:
                store.record(realm_id, exchange.status, exchange.duration_ms / 1000)
            except redis.RedisError as exc:
                logger.warning("QBO traffic not recorded: %s", exc)
        if then is not None:
            then(exchange)

    return record
