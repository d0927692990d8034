"""QBO budget use (issue #16, items 1 and 4): every exchange any worker has with QuickBooks
is counted per realm in the shared Redis, so the health page shows the last minute against
QBO's budget and the 429s of the last hour, and /metrics exports totals and latencies."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import Client
from django.urls import reverse

from integrations.services.qbo import qbo_client_for, rate_limiter
from integrations.services.qbo_traffic import traffic_store
from qbo_client.client import RequestRecord
from qbo_client.emulator import QboEmulator
from qbo_client.errors import ThrottledError
from tests.conftest import Personas
from tests.fixtures.metrics import metric_samples
from tests.fixtures.qbo import connect_company, control

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"
TOKEN = "metrics-token-traffic"


@pytest.fixture
def shared_redis(settings: Any) -> Iterator[str]:
    """The limiter and the counters in a test-only Redis database under a unique prefix;
    a one-second window so a 429's pause lasts one second."""
    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    settings.RATE_LIMIT_REDIS_URL = REDIS_TEST_URL
    settings.QBO_TRAFFIC_KEY_PREFIX = f"test-traffic-{uuid.uuid4().hex[:10]}"
    settings.QBO_RATE_WINDOW_SECONDS = 1
    yield settings.QBO_TRAFFIC_KEY_PREFIX
    client = redis.Redis.from_url(REDIS_TEST_URL)
    keys = list(client.scan_iter(match=f"{settings.QBO_TRAFFIC_KEY_PREFIX}*"))
    if keys:
        client.delete(*keys)


def test_every_exchange_is_counted_for_the_page_and_the_metrics(
    personas: Personas,
    qbo_emulator: QboEmulator,
    shared_redis: str,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection = connect_company(personas.company)
    seen: list[RequestRecord] = []
    client = qbo_client_for(company=personas.company, on_request=seen.append)
    for _ in range(3):
        client.query("select * from Customer maxresults 1")
    control(qbo_emulator, "POST", "faults", json={"kind": "429", "count": 1})
    with (
        caplog.at_level(logging.INFO, logger="integrations.services.qbo_traffic"),
        pytest.raises(ThrottledError),
    ):
        client.query("select * from Customer maxresults 1")
    client.query("select * from Customer maxresults 1")  # after the realm's pause
    client.close()

    # The caller still gets every exchange, and each one is logged with its intuit_tid.
    assert [r.status for r in seen] == [200, 200, 200, 429, 200]
    throttled_tid = seen[3].intuit_tid
    assert throttled_tid and any(
        "-> 429" in r.getMessage() and throttled_tid in r.getMessage() for r in caplog.records
    )

    store = traffic_store()
    assert store is not None
    recent = store.recent(connection.realm_id)
    assert (recent.requests_last_minute, recent.throttled_last_hour) == (5, 1)

    page = personas.client_for(personas.admin).get(reverse("portfolio:integration_health"))
    text = " ".join(page.content.decode().split())
    assert "Requests in the last minute: <strong>5</strong> of the" in text
    assert "“Too many requests” answers (429) in the last hour: 1;" in text

    settings.METRICS_TOKEN = TOKEN
    metrics = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    samples = metric_samples(metrics.content.decode())
    company = (("company", personas.company.slug),)
    assert samples[("qbo_requests_total", (*company, ("outcome", "ok")))] == 4
    assert samples[("qbo_requests_total", (*company, ("outcome", "throttled")))] == 1
    assert samples[("qbo_request_duration_seconds_count", company)] == 5
    assert samples[("qbo_request_duration_seconds_bucket", (*company, ("le", "+Inf")))] == 5
    assert samples[("qbo_request_duration_seconds_sum", company)] == pytest.approx(
        sum(r.duration_ms for r in seen) / 1000, abs=0.01
    )
    assert samples[("qbo_requests_last_minute", company)] == 5
    assert samples[("qbo_throttled_last_hour", company)] == 1


def test_without_shared_redis_nothing_is_counted_and_the_page_says_so(
    personas: Personas, qbo_emulator: QboEmulator, settings: Any
) -> None:
    settings.RATE_LIMIT_REDIS_URL = None  # the embedded default
    connect_company(personas.company)
    client = qbo_client_for(company=personas.company)
    client.query("select * from Customer maxresults 1")
    client.close()

    assert traffic_store() is None
    page = personas.client_for(personas.admin).get(reverse("portfolio:integration_health"))
    html = page.content.decode()
    assert "QuickBooks request counts are not kept on this installation." in html
    assert "RATE_LIMIT_REDIS_URL" not in html and "Redis" not in html  # the why is in the docs


def test_a_redis_outage_loses_the_count_not_the_exchange(
    personas: Personas, qbo_emulator: QboEmulator, settings: Any
) -> None:
    connect_company(personas.company)
    limiter = rate_limiter()  # the limiter keeps working; only the counters' Redis is down
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    client = qbo_client_for(company=personas.company, limiter=limiter)

    answer = client.query("select * from Customer maxresults 1")
    client.close()

    assert len(answer["Customer"]) == 1
    page = personas.client_for(personas.admin).get(reverse("portfolio:integration_health"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "QuickBooks request counts cannot be read right now." in html
    assert "Redis" not in html
