"""The QBO client with ``allow_private_hosts=False``: the discovery document, the token
endpoint and the Accounting API are all checked before a connect.

The emulator listens on 127.0.0.1 (loopback), so with the guard on it must see nothing.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from typing import Any

import pytest

from qbo_client import oauth
from qbo_client.client import QboClient
from qbo_client.config import QboConfig
from qbo_client.emulator import QboEmulator
from qbo_client.errors import PermanentError, RefusedHostError
from qbo_client.ratelimit import NullRateLimiter
from qbo_client.tokens import MemoryTokenStore
from tests.qbo_client.conftest import Control

REFUSED = "Refused: 127.0.0.1 is a loopback address; outbound requests may only go to public hosts"


def _forbid_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def guarded(qbo_config: QboConfig) -> QboConfig:
    return dataclasses.replace(qbo_config, allow_private_hosts=False)


def _seen(control: Control) -> int:
    return int(control.get("counters")["total_requests"])


def test_discovery_is_refused_before_a_connect(
    guarded: QboConfig, control: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    oauth.clear_discovery_cache()
    before = _seen(control)
    with monkeypatch.context() as patched, pytest.raises(RefusedHostError) as refused:
        _forbid_connects(patched)
        oauth.get_discovery(guarded)
    assert refused.value.reason == REFUSED
    assert isinstance(refused.value, PermanentError)
    assert _seen(control) == before


def test_token_endpoint_is_refused_before_a_connect(
    qbo_config: QboConfig,
    guarded: QboConfig,
    control: Control,
    token_store: MemoryTokenStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oauth.get_discovery(qbo_config)  # cached while private hosts were still allowed
    before = _seen(control)
    refresh_token = token_store.current().refresh_token
    calls: list[Callable[[], Any]] = [
        lambda: oauth.refresh_tokens(guarded, refresh_token),
        lambda: oauth.exchange_code(guarded, "some-code", "123"),
        lambda: oauth.revoke(guarded, refresh_token),
    ]
    with monkeypatch.context() as patched:
        _forbid_connects(patched)
        for call in calls:
            with pytest.raises(RefusedHostError, match=r"127\.0\.0\.1 is a loopback address"):
                call()
    assert _seen(control) == before


def test_api_requests_are_refused_before_a_connect(
    qbo_config: QboConfig,
    guarded: QboConfig,
    qbo_emulator: QboEmulator,
    control: Control,
    token_store: MemoryTokenStore,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    oauth.get_discovery(qbo_config)
    client = QboClient(guarded, qbo_emulator.realm_id, token_store, NullRateLimiter())
    before = _seen(control)
    calls: list[Callable[[], Any]] = [
        lambda: client.get_customer("1"),
        lambda: client.query("SELECT * FROM Customer"),
        lambda: client.create_customer({"DisplayName": "Harbor Tower"}, "req-1"),
    ]
    with client, monkeypatch.context() as patched:
        _forbid_connects(patched)
        for call in calls:
            with pytest.raises(RefusedHostError) as refused:
                call()
            assert refused.value.reason == REFUSED
    assert sleeps == []  # permanent: not retried
    assert _seen(control) == before


def test_a_client_built_without_cached_discovery_is_refused(
    guarded: QboConfig,
    qbo_emulator: QboEmulator,
    token_store: MemoryTokenStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oauth.clear_discovery_cache()
    _forbid_connects(monkeypatch)
    with pytest.raises(RefusedHostError, match="loopback address"):
        QboClient(guarded, qbo_emulator.realm_id, token_store, NullRateLimiter())


def test_the_local_emulator_works_when_private_hosts_are_allowed(
    qbo_config: QboConfig, qbo_emulator: QboEmulator, token_store: MemoryTokenStore
) -> None:
    oauth.clear_discovery_cache()
    allowed = dataclasses.replace(qbo_config, allow_private_hosts=True)
    with QboClient(allowed, qbo_emulator.realm_id, token_store, NullRateLimiter()) as client:
        assert "totalCount" in client.query("SELECT COUNT(*) FROM Customer")
