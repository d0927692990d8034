"""Fixtures for the qbo_client client and limiter tests.

Imported by ``tests/qbo_client/client/conftest.py``. The emulator itself (``qbo_emulator``,
``control``) comes from ``tests/qbo_client/conftest.py``: one server per session, reset to an
empty company before each test, throttling off unless a test switches it on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from qbo_client.client import QboClient, RequestRecord
from qbo_client.config import QboConfig
from qbo_client.emulator import QboEmulator
from qbo_client.ratelimit import NullRateLimiter, RateLimiter
from qbo_client.tokens import MemoryTokenStore, TokenSet

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"
REDIRECT_URI = "http://localhost:8000/integrations/qbo/callback"


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    return REDIS_TEST_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to the test; every key under it is deleted afterwards."""
    prefix = f"test-qbo-rl-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def config_for(emulator: QboEmulator, **overrides: Any) -> QboConfig:
    """Settings pointing at the emulator, with short timeouts and backoff for fast tests."""
    values: dict[str, Any] = {
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "redirect_uri": REDIRECT_URI,
        "environment": emulator.discovery_url,
        "api_base_url": emulator.api_base_url,
        "timeout_seconds": 2.0,
        "backoff_base_seconds": 0.01,
        "backoff_cap_seconds": 0.05,
    }
    values.update(overrides)
    return QboConfig(**values)


def minted_token_set(emulator: QboEmulator) -> TokenSet:
    body = emulator.mint_tokens()
    now = datetime.now(UTC)
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        access_expires_at=now + timedelta(seconds=int(body["expires_in"])),
        refresh_expires_at=now + timedelta(seconds=int(body["x_refresh_token_expires_in"])),
    )


@pytest.fixture
def qbo_config(qbo_emulator: QboEmulator) -> QboConfig:
    return config_for(qbo_emulator)


@pytest.fixture
def token_store(qbo_emulator: QboEmulator) -> MemoryTokenStore:
    return MemoryTokenStore(minted_token_set(qbo_emulator))


@pytest.fixture
def records() -> list[RequestRecord]:
    return []


@pytest.fixture
def make_client(
    qbo_emulator: QboEmulator,
    qbo_config: QboConfig,
    token_store: MemoryTokenStore,
    records: list[RequestRecord],
) -> Iterator[Callable[..., QboClient]]:
    """Builds QboClients for the emulator's realm; all are closed after the test."""
    built: list[QboClient] = []

    def build(
        *,
        limiter: RateLimiter | None = None,
        config: QboConfig | None = None,
        store: MemoryTokenStore | None = None,
        record: bool = True,
    ) -> QboClient:
        client = QboClient(
            config or qbo_config,
            qbo_emulator.realm_id,
            store or token_store,
            limiter or NullRateLimiter(),
            on_request=records.append if record else None,
        )
        built.append(client)
        return client

    yield build
    for client in built:
        client.close()


@pytest.fixture
def qbo(make_client: Callable[..., QboClient]) -> QboClient:
    return make_client()


__all__ = [
    "make_client",
    "qbo",
    "qbo_config",
    "records",
    "redis_prefix",
    "redis_url",
    "token_store",
]
