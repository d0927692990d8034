"""Concurrent workers and a rotating refresh token: exactly one refresh, no lost token."""

from __future__ import annotations

import threading

import pytest
from django.db import connection as db_connection

from integrations.models import QboConnection, QboConnectionStatus
from integrations.services.qbo import qbo_client_for
from qbo_client.emulator import QboEmulator
from tests.conftest import Personas
from tests.fixtures.qbo import connect_company, control


@pytest.mark.django_db(transaction=True)
def test_concurrent_clients_with_an_expired_token_refresh_once(
    personas: Personas, qbo_emulator: QboEmulator
) -> None:
    connect_company(personas.company)
    before = QboConnection.objects.get(company=personas.company)
    control(qbo_emulator, "POST", "clock", json={"advance_seconds": 3700})  # access token expired
    control(qbo_emulator, "DELETE", "counters")
    errors: list[BaseException] = []
    barrier = threading.Barrier(12)

    def worker() -> None:
        try:
            with qbo_client_for(company=personas.company) as client:
                barrier.wait()
                client.get_customer("1")
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    counters = control(qbo_emulator, "GET", "counters")
    token_calls = sum(n for route, n in counters["routes"].items() if "token" in route.lower())
    assert token_calls == 1, counters["routes"]
    after = QboConnection.objects.get(company=personas.company)
    assert after.status == QboConnectionStatus.CONNECTED
    assert after.refresh_token != before.refresh_token  # the rotated token was stored
    assert after.access_expires_at is not None and before.access_expires_at is not None
    assert after.access_expires_at > before.access_expires_at


def test_invalid_grant_marks_the_connection_needs_reconnect(
    personas: Personas, qbo_emulator: QboEmulator
) -> None:
    from qbo_client.errors import ReconnectRequired

    connect_company(personas.company)
    control(qbo_emulator, "POST", "tokens/revoke-all")
    control(qbo_emulator, "POST", "clock", json={"advance_seconds": 3700})
    with pytest.raises(ReconnectRequired), qbo_client_for(company=personas.company) as client:
        client.get_customer("1")
    connection = QboConnection.objects.get(company=personas.company)
    assert connection.status == QboConnectionStatus.NEEDS_RECONNECT
    assert "Reconnect QuickBooks" in connection.last_error
