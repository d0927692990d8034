from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.qbo_client.client_fixtures import *  # noqa: F403


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``time.sleep`` the test's own thread makes (the client's calls run there),
    recorded and skipped. Other threads (the emulator's server) sleep as usual."""
    recorded: list[float] = []
    real_sleep: Callable[[float], None] = time.sleep
    test_thread = threading.get_ident()

    def sleep(seconds: float) -> None:
        if threading.get_ident() == test_thread:
            recorded.append(seconds)
            return
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return recorded
