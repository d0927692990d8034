"""Fixtures: one live Linarc emulator per session on a free port, reset before each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from linarc_client import LinarcClient
from linarc_client.emulator import LinarcEmulator

API_KEY = "test-linarc-key-5f3a9c"
DEFAULT_PROJECTS = 60
DEFAULT_SEED = 11


class SleepRecorder:
    """Stands in for ``time.sleep``: records each wait, waits for nothing."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="session")
def _linarc_server() -> Iterator[LinarcEmulator]:
    with LinarcEmulator(api_key=API_KEY, projects=DEFAULT_PROJECTS, seed=DEFAULT_SEED) as emulator:
        yield emulator


@pytest.fixture
def linarc_emulator(_linarc_server: LinarcEmulator) -> Iterator[LinarcEmulator]:
    """The running emulator, freshly reset: 60 projects (seed 11) with the hostile cases,
    no faults, no latency, zeroed counters."""
    _linarc_server.reset(projects=DEFAULT_PROJECTS, seed=DEFAULT_SEED, hostile=True)
    _linarc_server.set_latency(0)
    yield _linarc_server
    _linarc_server.clear_faults()
    _linarc_server.set_latency(0)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def linarc_client(linarc_emulator: LinarcEmulator, sleeps: SleepRecorder) -> Iterator[LinarcClient]:
    client = LinarcClient(linarc_emulator.base_url, API_KEY, timeout=5, sleep=sleeps)
    yield client
    client.close()


@pytest.fixture
def control(linarc_emulator: LinarcEmulator) -> Callable[..., requests.Response]:
    """Call the emulator's HTTP control API: ``control("PATCH", "projects/1", json={...})``."""

    def call(method: str, path: str, json: Any = None) -> requests.Response:
        url = f"{linarc_emulator.base_url}/__emulator__/{path}"
        return requests.request(method, url, json=json, timeout=5)

    return call
