"""LinarcClient with ``allow_private_hosts=False``: every request is checked before a connect.

The emulator listens on 127.0.0.1, a loopback address, so with the guard on it must never
see a request; with the guard off (the default, for development) it answers as usual.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from linarc_client import LinarcClient, LinarcError, LinarcRefusedHost
from linarc_client.emulator import LinarcEmulator
from tests.linarc_client.conftest import API_KEY, SleepRecorder


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _requests_seen(emulator: LinarcEmulator) -> int:
    return sum(emulator.counters()["requests"].values())


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.check_connection(),
        lambda client: client.list_page(1),
        lambda client: client.get_project("1"),
        lambda client: list(client.iter_pages()),
    ],
    ids=["check_connection", "list_page", "get_project", "iter_pages"],
)
def test_every_request_to_a_loopback_emulator_is_refused_when_private_hosts_are_not_allowed(
    linarc_emulator: LinarcEmulator,
    sleeps: SleepRecorder,
    no_connect: None,
    call: Callable[[LinarcClient], Any],
) -> None:
    before = _requests_seen(linarc_emulator)
    with (
        LinarcClient(
            linarc_emulator.base_url, API_KEY, sleep=sleeps, allow_private_hosts=False
        ) as client,
        pytest.raises(LinarcRefusedHost) as refused,
    ):
        call(client)
    assert refused.value.reason == (
        "Refused: 127.0.0.1 is a loopback address; outbound requests may only go to public hosts"
    )
    assert not refused.value.transient
    assert isinstance(refused.value, LinarcError)
    assert sleeps.calls == []  # a refusal is permanent: no retries
    assert API_KEY not in repr(refused.value) and API_KEY not in str(refused.value)
    assert _requests_seen(linarc_emulator) == before


def test_a_private_base_url_is_refused_without_a_dns_lookup_or_connect(
    sleeps: SleepRecorder, no_connect: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a DNS lookup was attempted for {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    with (
        LinarcClient("http://0xa9fea9fe/", API_KEY, allow_private_hosts=False) as client,
        pytest.raises(LinarcRefusedHost, match=r"169\.254\.169\.254, a link-local address"),
    ):
        client.check_connection()


def test_the_local_emulator_works_when_private_hosts_are_allowed(
    linarc_emulator: LinarcEmulator, sleeps: SleepRecorder
) -> None:
    with LinarcClient(
        linarc_emulator.base_url, API_KEY, sleep=sleeps, allow_private_hosts=True
    ) as client:
        client.check_connection()
        assert client.get_project(client.list_page(1).records[0].linarc_id)
