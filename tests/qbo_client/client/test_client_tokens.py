"""MemoryTokenStore: the reference behaviour the Django TokenStore must match."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from qbo_client.errors import ReconnectRequired
from qbo_client.tokens import MemoryTokenStore, TokenSet


def token_set(n: int) -> TokenSet:
    now = datetime.now(UTC)
    return TokenSet(
        f"access-{n}", f"refresh-{n}", now + timedelta(hours=1), now + timedelta(days=100)
    )


def test_token_set_requires_aware_datetimes_and_hides_tokens() -> None:
    with pytest.raises(ValueError):
        TokenSet("a", "r", datetime(2030, 1, 1))
    assert "access-1" not in repr(token_set(1))
    assert "refresh-1" not in repr(token_set(1))


def test_concurrent_refreshes_call_the_refresher_once() -> None:
    store = MemoryTokenStore(token_set(0))
    calls: list[str] = []

    def refresher(refresh_token: str) -> TokenSet:
        calls.append(refresh_token)
        time.sleep(0.05)  # a slow token endpoint widens the race window
        return token_set(len(calls))

    results: list[TokenSet] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        results.append(store.refresh("access-0", refresher))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["refresh-0"]
    assert {r.access_token for r in results} == {"access-1"}
    assert store.current().refresh_token == "refresh-1"
    assert store.refresh_count == 1


def test_stale_token_after_refresh_gets_stored_tokens_without_calling_refresher() -> None:
    store = MemoryTokenStore(token_set(0))
    store.refresh("access-0", lambda rt: token_set(1))
    assert store.refresh("access-0", lambda rt: pytest.fail("must not refresh")).access_token == (
        "access-1"
    )


def test_invalid_grant_marks_the_connection() -> None:
    store = MemoryTokenStore(token_set(0))

    def refresher(refresh_token: str) -> TokenSet:
        raise ReconnectRequired("Reconnect QuickBooks", code="invalid_grant")

    with pytest.raises(ReconnectRequired):
        store.refresh("access-0", refresher)
    assert store.needs_reconnect
    with pytest.raises(ReconnectRequired):
        store.current()
