"""OAuth through intuit-oauth and token refresh under concurrency, against the emulator."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient

from qbo_client import oauth
from qbo_client.client import QboClient
from qbo_client.config import QboConfig
from qbo_client.emulator import QboEmulator
from qbo_client.errors import ReconnectRequired
from qbo_client.ratelimit import NullRateLimiter
from qbo_client.tokens import MemoryTokenStore
from tests.qbo_client.client_fixtures import REDIRECT_URI, minted_token_set
from tests.qbo_client.conftest import Control


def token_calls(control: Control) -> int:
    return int(control.get("counters")["routes"].get("POST token", 0))


def test_connect_flow_exchange_refresh_and_revoke(
    qbo_config: QboConfig, qbo_emulator: QboEmulator, control: Control
) -> None:
    url = oauth.authorization_url(qbo_config, state="st-9f2")
    query = parse_qs(urlsplit(url).query)
    assert query["state"] == ["st-9f2"]
    assert query["scope"] == ["com.intuit.quickbooks.accounting"]
    assert query["redirect_uri"] == [REDIRECT_URI]
    callback = requests.get(url, allow_redirects=False, timeout=5)
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback.headers["Location"]).query).items()}
    assert params["state"] == "st-9f2"

    before = datetime.now(UTC)
    tokens = oauth.exchange_code(qbo_config, params["code"], params["realmId"])
    assert (
        timedelta(minutes=59) < tokens.access_expires_at - before <= timedelta(hours=1, seconds=5)
    )
    assert tokens.refresh_expires_at is not None
    assert tokens.refresh_expires_at - before > timedelta(days=90)

    rotated = oauth.refresh_tokens(qbo_config, tokens.refresh_token)
    assert rotated.access_token != tokens.access_token

    oauth.revoke(qbo_config, rotated.refresh_token)
    with pytest.raises(ReconnectRequired) as excinfo:
        oauth.refresh_tokens(qbo_config, rotated.refresh_token)
    assert excinfo.value.code == "invalid_grant"
    assert excinfo.value.reason == "Reconnect QuickBooks"


def test_used_authorization_code_is_reconnect_required(qbo_config: QboConfig) -> None:
    with pytest.raises(ReconnectRequired):
        oauth.exchange_code(qbo_config, "not-a-code", "9130357712345678")


def test_cached_auth_client_matches_a_stock_auth_client(
    qbo_config: QboConfig, qbo_emulator: QboEmulator, control: Control
) -> None:
    stock = AuthClient(
        qbo_config.client_id,
        qbo_config.client_secret,
        qbo_config.redirect_uri,
        environment=qbo_config.environment,
        access_token="a",
        refresh_token="r",
        realm_id="1",
    )
    ours = oauth.build_auth_client(qbo_config, access_token="a", refresh_token="r", realm_id="1")
    assert isinstance(ours, AuthClient)
    session_attrs = set(vars(requests.Session()))
    stock_attrs = {k: v for k, v in vars(stock).items() if k not in session_attrs}
    our_attrs = {k: v for k, v in vars(ours).items() if k not in session_attrs}
    assert our_attrs == stock_attrs
    # Constructing more clients does not fetch discovery again.
    discovery_before = control.get("counters")["routes"].get("GET discovery", 0)
    for _ in range(5):
        oauth.build_auth_client(qbo_config)
    assert control.get("counters")["routes"].get("GET discovery", 0) == discovery_before


def test_expired_token_refreshes_once_across_20_threads(
    qbo_emulator: QboEmulator,
    control: Control,
    token_store: MemoryTokenStore,
    make_client: Callable[..., QboClient],
) -> None:
    created = make_client().create_customer({"DisplayName": "Shared Realm"}, "conc-1")
    clients = [make_client(record=False) for _ in range(20)]
    control.post("clock", {"advance_seconds": 3700})  # every access token is now expired
    barrier = threading.Barrier(20)
    results: list[str] = []
    failures: list[BaseException] = []

    def work(client: QboClient) -> None:
        barrier.wait()
        try:
            results.append(client.get_customer(created.id).display_name)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert failures == []
    assert results == ["Shared Realm"] * 20
    assert token_calls(control) == 1
    assert token_store.refresh_count == 1
    assert control.get("counters")["statuses"]["401"] >= 1


def test_token_about_to_expire_is_refreshed_before_the_call(
    qbo_emulator: QboEmulator,
    control: Control,
    token_store: MemoryTokenStore,
    make_client: Callable[..., QboClient],
) -> None:
    token_store.replace(access_expires_at=datetime.now(UTC) + timedelta(seconds=60))
    old = token_store.current().access_token
    make_client().find_customers_by_display_name("Anyone")
    assert token_calls(control) == 1
    assert token_store.current().access_token != old
    assert "401" not in control.get("counters")["statuses"]


def test_invalid_grant_raises_reconnect_required_and_marks_the_store(
    qbo_emulator: QboEmulator,
    control: Control,
    token_store: MemoryTokenStore,
    make_client: Callable[..., QboClient],
) -> None:
    client = make_client()
    control.post("tokens/revoke-all", {})  # the admin disconnected the app in QuickBooks
    with pytest.raises(ReconnectRequired) as excinfo:
        client.find_customers_by_display_name("Anyone")
    assert excinfo.value.code == "invalid_grant"
    assert token_store.needs_reconnect
    with pytest.raises(ReconnectRequired):
        make_client()  # a new task for the realm fails fast, without calling QBO


def test_a_second_store_keeps_working_after_rotation(
    qbo_emulator: QboEmulator, qbo_config: QboConfig, control: Control
) -> None:
    # Refreshing rotates the refresh token; the store must keep the newest one.
    store = MemoryTokenStore(minted_token_set(qbo_emulator))
    first = store.current().refresh_token
    for _ in range(3):
        control.post("clock", {"advance_seconds": 3700})
        with QboClient(qbo_config, qbo_emulator.realm_id, store, NullRateLimiter()) as client:
            client.find_customers_by_display_name("Anyone")
    assert store.refresh_count == 3
    assert store.current().refresh_token != first
